//! What the journal says about each change: folding its records by id, and compaction.
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use std::os::unix::fs::OpenOptionsExt;

use super::{read_checked, signed_line, JournalError, JournalPhase, Key, Record, FILE_NAME};

/// One change as the journal tells it: its first record (which carries the action, inverse,
/// verification and lifetime) and the phase it last reached.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeState {
    pub first: Record,
    pub last: JournalPhase,
    /// The last record's time (RFC 3339) and error.
    pub last_ts: String,
    pub last_error: Option<String>,
}

impl ChangeState {
    /// Something of this change may still be in the kernel.
    pub fn is_open(&self) -> bool {
        !self.last.is_terminal()
    }
}

/// Folds records into one state per change id, ordered by id (= by creation time).
pub fn fold(records: &[Record]) -> Vec<ChangeState> {
    let mut by_id: BTreeMap<&str, ChangeState> = BTreeMap::new();
    for r in records {
        by_id
            .entry(r.id.as_str())
            .and_modify(|c| {
                c.last = r.phase;
                c.last_ts = r.ts.clone();
                c.last_error = r.error.clone();
            })
            .or_insert_with(|| ChangeState {
                first: r.clone(),
                last: r.phase,
                last_ts: r.ts.clone(),
                last_error: r.error.clone(),
            });
    }
    by_id.into_values().collect()
}

/// Rotates the journal in `dir` when it is larger than `max_bytes`: the records of changes
/// that are still open are rewritten to a fresh journal (fsynced, then renamed into place)
/// and the old file is kept as `journal.ndjson.1`. Lines that are not authenticated are not
/// carried over (they stay in `journal.ndjson.1`). Returns whether it rotated.
pub fn compact(dir: &Path, max_bytes: u64) -> Result<bool, JournalError> {
    let path = dir.join(FILE_NAME);
    let len = match std::fs::metadata(&path) {
        Ok(m) => m.len(),
        Err(_) => return Ok(false),
    };
    if len <= max_bytes {
        return Ok(false);
    }
    let key = Key::load_or_create(dir)?;
    let records = read_checked(&path, Some(&key))?.records;
    let open: std::collections::HashSet<String> = fold(&records)
        .into_iter()
        .filter(ChangeState::is_open)
        .map(|c| c.first.id)
        .collect();
    let write_err = |source| JournalError::Write {
        path: path.clone(),
        source,
    };
    let tmp = dir.join(format!("{FILE_NAME}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .map_err(write_err)?;
    for r in records.iter().filter(|r| open.contains(&r.id)) {
        let mut line = signed_line(&key, r)?;
        line.push(b'\n');
        f.write_all(&line).map_err(write_err)?;
    }
    f.sync_all().map_err(write_err)?;
    std::fs::rename(&path, dir.join(format!("{FILE_NAME}.1"))).map_err(write_err)?;
    std::fs::rename(&tmp, &path).map_err(write_err)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::super::tests::record;
    use super::super::{read_all, Journal};
    use super::*;

    #[test]
    fn fold_keeps_the_first_record_and_the_last_phase() {
        let recs = vec![
            record("a", JournalPhase::Intent),
            record("b", JournalPhase::Intent),
            record("a", JournalPhase::Applied),
            record("b", JournalPhase::Applied),
            record("a", JournalPhase::Verified),
            record("b", JournalPhase::RolledBack),
        ];
        let f = fold(&recs);
        assert_eq!(f.len(), 2);
        assert_eq!(
            (f[0].first.id.as_str(), f[0].last),
            ("a", JournalPhase::Verified)
        );
        assert!(f[0].is_open());
        assert_eq!(f[0].first.phase, JournalPhase::Intent);
        assert_eq!(
            (f[1].first.id.as_str(), f[1].last),
            ("b", JournalPhase::RolledBack)
        );
        assert!(!f[1].is_open());
    }

    #[test]
    fn compaction_keeps_open_changes_only() {
        let dir = std::env::temp_dir().join(format!("guardian-compact-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut j = Journal::open(&dir).unwrap();
        for (id, phases) in [
            (
                "a",
                &[
                    JournalPhase::Intent,
                    JournalPhase::Applied,
                    JournalPhase::Verified,
                ][..],
            ),
            ("b", &[JournalPhase::Intent, JournalPhase::Failed][..]),
            (
                "c",
                &[
                    JournalPhase::Intent,
                    JournalPhase::Applied,
                    JournalPhase::Expired,
                ][..],
            ),
        ] {
            for p in phases {
                j.append(&record(id, *p)).unwrap();
            }
        }
        drop(j);
        assert!(!compact(&dir, 1 << 20).unwrap(), "small journals stay");
        assert!(compact(&dir, 10).unwrap());
        let kept = read_all(&dir.join(FILE_NAME)).unwrap();
        assert_eq!(kept.len(), 3);
        assert!(kept.iter().all(|r| r.id == "a"));
        assert_eq!(read_all(&dir.join("journal.ndjson.1")).unwrap().len(), 8);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
