//! The daemon's own diagnostics (tracing) on stderr: human lines or JSON objects. The filter
//! is `GUARDIAN_LOG` if set, else `[log] level`. Colours only on a terminal: under systemd
//! (the journal), a container runtime or a pipe, stderr is not one, and ANSI codes would end
//! up in the log lines.
//!
//! JSON lines speak the event vocabulary (docs/events.md): `ts` as the events write it,
//! `level` in lowercase (`warning`, as the events' `severity`), `target`, `message`, then the
//! fields, arrays as JSON arrays. Values of the event model are logged through [`json`], so
//! that a mode is `observe` in a log line as in an event, never its Rust name.
use std::fmt;
use std::io::{IsTerminal, Write as _};

use serde::Serialize;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing_subscriber::fmt::{format, FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber, JSON lines when `json` (`[log] format = "json"`), else
/// human lines; a second call is a no-op (tests, reloads). (A flag rather than the config's
/// `LogFormat`: the engine logs through [`json`], and the config imports the engine.)
pub fn init(json: bool, level: &str) {
    let filter = EnvFilter::try_from_env("GUARDIAN_LOG")
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(colour(std::io::stderr().is_terminal()))
        .with_env_filter(filter);
    let _ = match json {
        false => builder.try_init(),
        true => builder.event_format(JsonLines).try_init(),
    };
}

/// Prints the sentence of an error that ends the process (before or after [`init`]): as
/// `guardian: SENTENCE` or, in JSON, as one log object with `level` `error` and `exit_code`.
pub fn fatal(json: bool, sentence: &str, exit_code: u8) {
    let line = match json {
        false => format!("guardian: {sentence}"),
        true => {
            let mut fields = Map::new();
            fields.insert("exit_code".into(), exit_code.into());
            Line::new("error", "guardian", Some(sentence.to_string()), fields).to_json()
        }
    };
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Whether human lines get ANSI colours: on a terminal only, and never with `NO_COLOR` set
/// (no-color.org).
fn colour(terminal: bool) -> bool {
    terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// A value of the event model as a log field: its serde form, so `mode = %json(&mode)` logs
/// `observe` and `detectors = %json(&faults)` logs `["syn_flood"]` (a JSON array in JSON
/// lines). A string is written bare; anything else as compact JSON.
pub fn json<T: Serialize + ?Sized>(v: &T) -> AsJson {
    AsJson(match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(e) => format!("<{e}>"),
    })
}

/// See [`json`].
pub struct AsJson(String);

impl fmt::Display for AsJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for AsJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One JSON log line. Hand-written rather than tracing-subscriber's `json()`: that one writes
/// every `?`/`%` value as a string (arrays too), its `level` in capitals and its time under
/// another name than the events' `ts`.
#[derive(Serialize)]
struct Line {
    ts: String,
    level: &'static str,
    target: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(flatten)]
    fields: Map<String, Value>,
}

impl Line {
    fn new(
        level: &'static str,
        target: &str,
        message: Option<String>,
        fields: Map<String, Value>,
    ) -> Line {
        Line {
            ts: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            level,
            target: target.to_string(),
            message,
            fields,
        }
    }

    fn to_json(&self) -> String {
        // Strings, numbers and JSON values only: serialization cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The events' severity words for tracing's levels.
fn level_name(level: &tracing::Level) -> &'static str {
    match *level {
        tracing::Level::ERROR => "error",
        tracing::Level::WARN => "warning",
        tracing::Level::INFO => "info",
        tracing::Level::DEBUG => "debug",
        tracing::Level::TRACE => "trace",
    }
}

struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let message = match fields.0.remove("message") {
            Some(Value::String(s)) => Some(s),
            Some(other) => Some(other.to_string()),
            None => None,
        };
        let line = Line::new(level_name(meta.level()), meta.target(), message, fields.0);
        writeln!(writer, "{}", line.to_json())
    }
}

/// Collects an event's fields with their JSON types.
#[derive(Default)]
struct Fields(Map<String, Value>);

impl Fields {
    fn put(&mut self, field: &Field, v: Value) {
        self.0.insert(field.name().to_string(), v);
    }
}

impl Visit for Fields {
    /// `?x` and `%x`: a text that is a JSON array or object (what [`json`] writes, or the
    /// `Debug` of a list of strings) stays structured; anything else is a string.
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        let structured =
            field.name() != "message" && (text.starts_with('[') || text.starts_with('{'));
        let v = structured
            .then(|| serde_json::from_str(&text).ok())
            .flatten()
            .unwrap_or(Value::String(text));
        self.put(field, v);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, value.to_string().into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Mode;

    #[test]
    fn no_colour_off_a_terminal() {
        assert!(!super::colour(false));
    }

    #[test]
    fn model_values_log_as_the_events_write_them() {
        assert_eq!(json(&Mode::Observe).to_string(), "observe");
        assert_eq!(json(&vec![Mode::Enforce]).to_string(), r#"["enforce"]"#);
        assert_eq!(json(&Some(7u32)).to_string(), "7");
        assert_eq!(json(&None::<u32>).to_string(), "null");
    }

    /// Renders one event through the JSON formatter, as `init` would install it.
    fn render(f: impl FnOnce()) -> Value {
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let out = buf.clone();
        let sub = tracing_subscriber::fmt()
            .with_writer(move || Sink(out.clone()))
            .event_format(JsonLines)
            .finish();
        tracing::subscriber::with_default(sub, f);
        let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        serde_json::from_str(&text).unwrap()
    }

    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_lines_carry_typed_fields_and_lowercase_words() {
        let files = vec![std::path::PathBuf::from("/etc/guardian/guardian.toml")];
        let v = render(|| {
            tracing::warn!(
                files = ?files,
                mode = %json(&Mode::Observe),
                detectors = %json(&["syn_flood"]),
                links = 3,
                ok = true,
                "configuration {}",
                "loaded"
            )
        });
        assert_eq!(v["level"], "warning");
        assert_eq!(v["message"], "configuration loaded");
        assert_eq!(v["mode"], "observe");
        assert_eq!(
            v["files"],
            serde_json::json!(["/etc/guardian/guardian.toml"])
        );
        assert_eq!(v["detectors"], serde_json::json!(["syn_flood"]));
        assert_eq!(v["links"], 3);
        assert_eq!(v["ok"], true);
        assert!(v["target"].as_str().unwrap().starts_with("guardian"), "{v}");
        assert!(v["ts"].as_str().unwrap().ends_with('Z'), "{v}");
    }

    #[test]
    fn a_debug_text_that_is_not_json_stays_a_string() {
        let v = render(|| tracing::info!(x = ?Some(3), y = %"[not json", "m"));
        assert_eq!(v["x"], "Some(3)");
        assert_eq!(v["y"], "[not json");
    }
}
