//! Config errors: the file, the line and column, the key path and what was expected, in one
//! sentence, e.g. `/etc/guardian/guardian.toml:12:14: safety.max_targets: expected at least 1`.
use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file at fault; `None` when the value came from a command-line flag.
    pub file: Option<PathBuf>,
    /// 1-based line and column of the offending key or value.
    pub at: Option<(usize, usize)>,
    /// Dotted key path, e.g. `safety.max_targets`.
    pub key: Option<String>,
    /// What is wrong / what was expected.
    pub what: String,
}

impl std::error::Error for ConfigError {}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.location())?;
        match &self.key {
            Some(k) if !k.is_empty() => write!(f, ": {k}: {}", self.what),
            _ => write!(f, ": {}", self.what),
        }
    }
}

impl ConfigError {
    pub fn new(file: Option<&Path>, what: impl Into<String>) -> Self {
        ConfigError {
            file: file.map(Path::to_path_buf),
            at: None,
            key: None,
            what: what.into(),
        }
    }

    /// EX_CONFIG of sysexits.h: what `guardian run` exits with on a config error.
    pub fn exit_code(&self) -> u8 {
        78
    }

    /// What is wrong, with its key path: the sentence after the location.
    pub fn reason(&self) -> String {
        match &self.key {
            Some(k) if !k.is_empty() => format!("{k}: {}", self.what),
            _ => self.what.clone(),
        }
    }

    /// `FILE:LINE:COL`, `FILE`, or `command line`.
    pub fn location(&self) -> String {
        match (&self.file, self.at) {
            (Some(f), Some((l, c))) => format!("{}:{l}:{c}", f.display()),
            (Some(f), None) => f.display().to_string(),
            (None, _) => "command line".into(),
        }
    }

    /// A parse or type error from the toml deserializer (wrapped by serde_path_to_error).
    pub fn from_toml(file: &Path, text: &str, key: Option<String>, e: &toml::de::Error) -> Self {
        ConfigError {
            file: Some(file.to_path_buf()),
            at: e.span().map(|s| line_col(text, s.start)),
            key: key.filter(|k| !k.is_empty() && k != "."),
            what: e.message().trim_end().replace('\n', " "),
        }
    }
}

/// 1-based line and column (in characters) of byte offset `at`.
pub fn line_col(text: &str, at: usize) -> (usize, usize) {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns_are_one_based() {
        let t = "a = 1\nbb = 2\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 6), (2, 1));
        assert_eq!(line_col(t, 11), (2, 6));
        assert_eq!(line_col(t, 999), (3, 1));
    }

    #[test]
    fn display_is_one_sentence() {
        let e = ConfigError {
            file: Some("/etc/g.toml".into()),
            at: Some((3, 1)),
            key: Some("safety.max_targets".into()),
            what: "expected at least 1".into(),
        };
        assert_eq!(
            e.to_string(),
            "/etc/g.toml:3:1: safety.max_targets: expected at least 1"
        );
        assert_eq!(e.exit_code(), 78);
    }
}
