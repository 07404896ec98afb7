//! What the types cannot check: ranges, names, addresses. Each failure is a key path and
//! what was expected there.
use super::sections::valid_iface_name;
use super::Config;
pub use crate::faults::ranges::Invalid;
use crate::faults::ranges::{invalid, range};
use crate::remedy;

/// Splits the engine's `"safety.window_s: expected …"` messages into key and text.
fn split(msg: String) -> Invalid {
    match msg.split_once(": ") {
        Some((k, w)) if !k.contains(' ') => invalid(k, w),
        _ => invalid("", msg),
    }
}

pub fn validate(c: &Config) -> Result<(), Invalid> {
    c.safety.validate().map_err(split)?;
    c.detect.validate()?;
    c.remedies.validate()?;
    let known: Vec<&str> = remedy::RemedyId::ALL.iter().map(|r| r.as_str()).collect();
    for name in c.remedies.modes.keys() {
        if !known.contains(&name.as_str()) {
            return Err(invalid(
                format!("remedies.modes.{name}"),
                format!(
                    "unknown remedy {name:?}; expected one of {}",
                    known.join(", ")
                ),
            ));
        }
    }
    if c.metrics.enabled {
        c.metrics.addr().map_err(split)?;
    }
    for (key, names) in [
        ("interfaces.xdp", &c.interfaces.xdp),
        ("interfaces.keep_up", &c.interfaces.keep_up),
        (
            "interfaces.dns",
            c.interfaces.dns.as_ref().unwrap_or(&Vec::new()),
        ),
    ] {
        if let Some(bad) = names.iter().find(|n| !valid_iface_name(n)) {
            return Err(invalid(
                key,
                format!("{bad:?} is not an interface name; expected 1 to 15 bytes without '/', ':' or spaces"),
            ));
        }
    }
    if c.sinks.max_bytes != 0 && c.sinks.max_bytes < 4096 {
        return Err(invalid(
            "sinks.max_bytes",
            format!(
                "{} is too small; expected 0 (never rotate) or at least 4096 bytes",
                c.sinks.max_bytes
            ),
        ));
    }
    range("sinks.keep", c.sinks.keep.into(), 0, 1000, "files")?;
    if c.sinks
        .file
        .as_ref()
        .is_some_and(|f| f.as_os_str().is_empty())
    {
        return Err(invalid("sinks.file", "expected a file path, not \"\""));
    }
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&c.log.level) {
        return Err(invalid(
            "log.level",
            format!(
                "{:?} is not a log filter ({e}); expected e.g. \"info\" or \"guardian=debug\"",
                c.log.level
            ),
        ));
    }
    let sock = &c.control.socket;
    if !sock.is_absolute() || sock.as_os_str().len() > 107 {
        return Err(invalid(
            "control.socket",
            format!(
                "{:?} is not usable; expected an absolute path of at most 107 bytes",
                sock.display().to_string()
            ),
        ));
    }
    range(
        "daemon.interval_ms",
        c.daemon.interval_ms,
        10,
        3_600_000,
        "ms",
    )?;
    range(
        "daemon.verify_timeout_ms",
        c.daemon.verify_timeout_ms,
        1,
        600_000,
        "ms",
    )?;
    // Written into every event, whose schema wants a non-empty string on one line.
    if let Some(h) = &c.daemon.host {
        if h.is_empty() || h.len() > 255 || h.chars().any(char::is_control) {
            return Err(invalid(
                "daemon.host",
                format!(
                    "{h:?} is not a host name; expected 1 to 255 bytes without control characters"
                ),
            ));
        }
    }
    if c.daemon.state_dir.as_os_str().is_empty() {
        return Err(invalid(
            "daemon.state_dir",
            "expected a directory, not \"\"",
        ));
    }
    Ok(())
}
