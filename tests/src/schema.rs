//! Validation of event lines against docs/schema/events.schema.json (JSON Schema 2020-12).
use std::path::PathBuf;
use std::sync::OnceLock;

use jsonschema::Validator;
use serde_json::Value;

/// Env var overriding the schema's path.
pub const SCHEMA_ENV: &str = "GUARDIAN_SCHEMA";

/// `$GUARDIAN_SCHEMA`, or the workspace's docs/schema/events.schema.json.
pub fn schema_path() -> PathBuf {
    std::env::var_os(SCHEMA_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join("docs/schema/events.schema.json"))
}

/// Reads and parses the schema file.
pub fn load_schema() -> Value {
    let path = schema_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read the event schema {}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("the event schema {} is not JSON: {e}", path.display()))
}

/// The compiled schema (draft 2020-12, `format` asserted), built once per process.
pub fn validator() -> &'static Validator {
    static V: OnceLock<Validator> = OnceLock::new();
    V.get_or_init(|| {
        let schema = load_schema();
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&schema)
            .unwrap_or_else(|e| {
                panic!(
                    "the event schema {} does not compile: {e}",
                    schema_path().display()
                )
            })
    })
}

/// Checks one event: the envelope by hand (schema == 1, ts, host, type), then the schema.
pub fn validate_event(ev: &Value) -> Result<(), String> {
    let mut errs = Vec::new();
    if ev.get("schema").and_then(Value::as_u64) != Some(1) {
        errs.push("`schema` is not 1".to_owned());
    }
    for key in ["ts", "host", "type"] {
        if !ev.get(key).is_some_and(Value::is_string) {
            errs.push(format!("`{key}` missing or not a string"));
        }
    }
    for e in validator().iter_errors(ev) {
        errs.push(format!("at {}: {e}", e.instance_path));
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("; "))
    }
}

/// Checks that every line parses as JSON and validates; the error lists the first 20 bad lines.
pub fn validate_lines<S: AsRef<str>>(lines: &[S]) -> Result<(), String> {
    let mut bad = Vec::new();
    let mut n_bad = 0;
    for (i, line) in lines.iter().enumerate() {
        let line = line.as_ref();
        let res = serde_json::from_str::<Value>(line)
            .map_err(|e| format!("not JSON: {e}"))
            .and_then(|v| validate_event(&v));
        if let Err(e) = res {
            n_bad += 1;
            if bad.len() < 20 {
                bad.push(format!("line {}: {e}\n    {line}", i + 1));
            }
        }
    }
    if n_bad == 0 {
        Ok(())
    } else {
        Err(format!(
            "{n_bad} of {} lines invalid against {}:\n{}",
            lines.len(),
            schema_path().display(),
            bad.join("\n")
        ))
    }
}

/// Panics unless every line parses and validates (see [`validate_lines`]).
pub fn validate_all<S: AsRef<str>>(lines: &[S]) {
    if let Err(e) = validate_lines(lines) {
        panic!("{e}");
    }
}

/// Panics unless every event validates.
pub fn validate_values(events: &[Value]) {
    let lines: Vec<String> = events.iter().map(Value::to_string).collect();
    validate_all(&lines);
}
