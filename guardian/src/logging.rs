//! The daemon's own diagnostics (tracing) on stderr: human lines or JSON objects. The filter
//! is `GUARDIAN_LOG` if set, else `[log] level`. Colours only on a terminal: under systemd
//! (the journal), a container runtime or a pipe, stderr is not one, and ANSI codes would end
//! up in the log lines.
use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber; a second call is a no-op (tests, reloads).
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_env("GUARDIAN_LOG")
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(colour(std::io::stderr().is_terminal()))
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

/// Whether human lines get ANSI colours: on a terminal only, and never with `NO_COLOR` set
/// (no-color.org).
fn colour(terminal: bool) -> bool {
    terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    #[test]
    fn no_colour_off_a_terminal() {
        assert!(!super::colour(false));
    }
}
