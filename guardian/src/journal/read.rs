//! Reading the journal: every line is checked against the host's key. A line that is torn,
//! malformed or not authenticated (forged, copied from another host, written by a version
//! before authentication) is skipped and reported; the other lines still count, so one bad
//! line never disables recovery or `guardian rollback`.
use std::io::Read as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::{JournalError, Key, Record};

/// A line that was skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// 1-based line number.
    pub line: usize,
    pub why: String,
}

/// What a journal file holds: its authenticated records, oldest first, and the skipped lines.
#[derive(Debug, Default)]
pub struct Loaded {
    pub records: Vec<Record>,
    pub rejected: Vec<Rejected>,
}

/// Reads a journal file (never through a symlink), keeping the records `key` authenticates.
/// Without a key nothing is authenticated: every line is rejected.
pub fn read_checked(path: &Path, key: Option<&Key>) -> Result<Loaded, JournalError> {
    let read_err = |source| JournalError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut text = String::new();
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(read_err)?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).map_err(read_err)?;
    text.push_str(&String::from_utf8_lossy(&bytes));
    Ok(parse(&text, key))
}

/// Parses journal text (see [`read_checked`]).
pub fn parse(text: &str, key: Option<&Key>) -> Loaded {
    let complete = text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Loaded::default();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let torn = !complete && i + 1 == lines.len();
        let checked = match key {
            Some(k) => k.verify(line).map_err(str::to_string),
            None => Err("no journal key to authenticate it".to_string()),
        };
        let parsed = checked.and_then(|body| {
            serde_json::from_str::<Record>(&body).map_err(|e| format!("malformed record: {e}"))
        });
        match parsed {
            Ok(r) => out.records.push(r),
            Err(why) => out.rejected.push(Rejected {
                line: i + 1,
                why: if torn {
                    format!("torn last line ({why})")
                } else {
                    why
                },
            }),
        }
    }
    out
}

/// The authenticated records of a journal file, with the key of its directory (none there:
/// none are). Skipped lines are logged; [`read_checked`] returns them.
pub fn read_all(path: &Path) -> Result<Vec<Record>, JournalError> {
    let key = match path.parent() {
        Some(dir) => Key::load(dir)?,
        None => None,
    };
    let loaded = read_checked(path, key.as_ref())?;
    for r in &loaded.rejected {
        tracing::warn!(path = %path.display(), line = r.line, "skipping a journal line: {}", r.why);
    }
    Ok(loaded.records)
}

#[cfg(test)]
mod tests {
    use super::super::tests::record;
    use super::super::{signed_line, JournalPhase};
    use super::*;

    fn line(k: &Key, id: &str, p: JournalPhase) -> String {
        String::from_utf8(signed_line(k, &record(id, p)).unwrap()).unwrap() + "\n"
    }

    #[test]
    fn torn_forged_and_foreign_lines_are_skipped_and_the_rest_counts() {
        let k = Key::fixed(1);
        let mut text = line(&k, "a", JournalPhase::Intent);
        // a torn line in the middle (a crash, then more appends)
        text.push_str("{\"id\":\"b\",\"ts\":\n");
        // an attacker's line: no MAC
        let forged = serde_json::to_string(&record("evil", JournalPhase::Applied)).unwrap();
        text.push_str(&forged);
        text.push('\n');
        // a line signed with another host's key
        text.push_str(&line(&Key::fixed(2), "other", JournalPhase::Intent));
        // signed garbage
        text.push_str(&String::from_utf8(k.sign(b"{\"x\":1}")).unwrap());
        text.push('\n');
        text.push_str(&line(&k, "a", JournalPhase::Applied));
        // a torn last line
        text.push_str("{\"id\":\"c\"");
        let l = parse(&text, Some(&k));
        let ids: Vec<_> = l.records.iter().map(|r| (r.id.as_str(), r.phase)).collect();
        assert_eq!(
            ids,
            [("a", JournalPhase::Intent), ("a", JournalPhase::Applied)]
        );
        let lines: Vec<usize> = l.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, [2, 3, 4, 5, 7]);
        assert_eq!(l.rejected[1].why, "no MAC");
        assert!(l.rejected[2].why.contains("does not match"));
        assert!(l.rejected[3].why.starts_with("malformed record"));
        assert!(l.rejected[4].why.starts_with("torn last line"));
        // without the key, nothing is trusted
        let none = parse(&text, None);
        assert!(none.records.is_empty());
        assert_eq!(none.rejected.len(), 7);
    }

    #[test]
    fn read_all_uses_the_directory_key_and_never_follows_symlinks() {
        let dir = std::env::temp_dir().join(format!(
            "guardian-read-{}-{}",
            std::process::id(),
            super::super::new_id()
        ));
        let mut j = super::super::Journal::open(&dir).unwrap();
        j.append(&record("a", JournalPhase::Intent)).unwrap();
        let path = j.path().to_path_buf();
        drop(j);
        {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap();
            f.write_all(b"{\"id\":\"forged\"}\n").unwrap();
        }
        let recs = read_all(&path).unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].id, "a");
        let link = dir.join("link.ndjson");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(matches!(read_all(&link), Err(JournalError::Read { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
