//! The daemon's own diagnostics (tracing) on stderr: human lines or JSON objects. The filter
//! is `GUARDIAN_LOG` if set, else `[log] level`.
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber; a second call is a no-op (tests, reloads).
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_env("GUARDIAN_LOG")
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
}
