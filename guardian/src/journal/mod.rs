//! Write-ahead journal of changes: `<state_dir>/journal.ndjson`, one JSON record per line.
//!
//! Every change guardian makes is journaled (and fsynced) with its inverse *before* it is
//! applied, then its outcome is appended: `intent` → `applied` → `verified`, or `failed`, or
//! `rolled_back`. All records of one change share its `id` (the `rollback_id` reported in
//! `remedy` events); ids are unique per change and sort by creation time. A replay on start
//! (`read_all`) finds changes that were applied but never verified.
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

mod auth;
mod read;
mod state;
pub use auth::{Key, KeyError, KEY_NAME};
pub use read::{read_all, read_checked, Loaded, Rejected};
pub use state::{compact, fold, ChangeState};

/// The journal's file name inside the state directory.
pub const FILE_NAME: &str = "journal.ndjson";
/// The lock a daemon holds on its state directory.
pub const LOCK_NAME: &str = "guardian.lock";
/// Journals larger than this are compacted at start.
pub const ROTATE_BYTES: u64 = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot create the state directory {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot open the journal {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write the journal {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read the journal {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("{} is {why}: anyone who can write it could forge what guardian rolls back; run `chmod go-w {}` (and make it root's)", path.display(), path.display())]
    UnsafeDir { path: PathBuf, why: String },
    #[error("cannot encode a journal record: {0}")]
    Encode(#[source] serde_json::Error),
    #[error("another guardian (pid {pid}) is using the state directory {}: stop it first", dir.display())]
    Locked { dir: PathBuf, pid: String },
}

/// Exclusive use of a state directory, held while a daemon (or `guardian rollback`) runs.
#[derive(Debug)]
pub struct Lock(#[allow(dead_code)] nix::fcntl::Flock<File>);

/// Takes the state directory's lock (creating the directory, mode 0700), or says who holds it.
pub fn lock(dir: &Path) -> Result<Lock, JournalError> {
    create_dir(dir)?;
    let path = dir.join(LOCK_NAME);
    let open = |path: &Path| {
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o600)
            .open(path)
            .map_err(|source| JournalError::Open {
                path: path.to_path_buf(),
                source,
            })
    };
    let file = open(&path)?;
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(mut f) => {
            let _ = f.set_len(0);
            let _ = writeln!(f, "{}", std::process::id());
            Ok(Lock(f))
        }
        Err((_, _)) => Err(JournalError::Locked {
            dir: dir.to_path_buf(),
            pid: std::fs::read_to_string(&path)
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "?".into()),
        }),
    }
}

fn create_dir(dir: &Path) -> Result<(), JournalError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| JournalError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })
}

/// Refuses a state (or socket) directory that someone other than its owner (root, or the
/// daemon's own user) could write: a forged journal or key, or a socket swapped in, would
/// steer a root daemon.
pub fn check_dir(dir: &Path) -> Result<(), JournalError> {
    let Ok(meta) = std::fs::metadata(dir) else {
        return Ok(());
    };
    let euid = nix::unistd::geteuid().as_raw();
    let mode = meta.mode() & 0o7777;
    let why = if mode & 0o002 != 0 {
        format!("world-writable (mode {mode:o})")
    } else if mode & 0o020 != 0 {
        format!("group-writable (mode {mode:o})")
    } else if meta.uid() != 0 && meta.uid() != euid {
        format!("owned by uid {}", meta.uid())
    } else {
        return Ok(());
    };
    Err(JournalError::UnsafeDir {
        path: dir.to_path_buf(),
        why,
    })
}

/// Where a change is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JournalPhase {
    /// About to be applied (written and fsynced before the change).
    Intent,
    Applied,
    Verified,
    /// Applying failed, or the rollback failed.
    Failed,
    /// Verification failed and the inverse was applied.
    RolledBack,
    /// A temporary mitigation's time ran out (or its fault cleared) and it was reverted.
    Expired,
    /// Reverted by hand (`guardian rollback`) or at shutdown.
    Reverted,
    /// Someone else changed what guardian set after guardian set it: guardian left their
    /// value in place and let the change go (no rollback over theirs).
    Superseded,
}

impl JournalPhase {
    /// The change is over: nothing of it is (meant to be) in the kernel any more, or it
    /// never got there.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JournalPhase::Failed
                | JournalPhase::RolledBack
                | JournalPhase::Expired
                | JournalPhase::Reverted
                | JournalPhase::Superseded
        )
    }
}

/// One journal line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The change's id, shared by all its records.
    pub id: String,
    /// RFC 3339 UTC with nanoseconds.
    pub ts: String,
    pub remedy: String,
    pub subject: Value,
    pub incident: String,
    pub phase: JournalPhase,
    pub action: Value,
    pub inverse: Value,
    pub before: Value,
    pub after: Value,
    /// Why a change failed (phase `failed` or `rolled_back`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The network namespace (inode) of the daemon that made the change: interface indexes
    /// and routes in it mean something only there. 0 in journals of older versions.
    #[serde(default)]
    pub netns: u32,
    /// The fault and detector key the change answered.
    #[serde(default)]
    pub fault: String,
    #[serde(default)]
    pub key: String,
    /// How to tell the change is in place (a serialized `remedy::Verify`).
    #[serde(default)]
    pub verify: Value,
    /// How to tell the change helped (a serialized `remedy::Effect`).
    #[serde(default)]
    pub effect: Value,
    /// When a temporary mitigation must be reverted (Unix milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
    /// Revert when the fault clears (`Lifetime::UntilClear`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub until_clear: bool,
}

/// An open journal, appending (every line authenticated with the host's key).
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    key: Key,
}

impl Journal {
    /// Opens (creating if needed) `<dir>/journal.ndjson` (never through a symlink) and the
    /// host's key (created at first start); creates `dir` with mode 0700 if it is missing and
    /// refuses it when others can write it.
    pub fn open(dir: &Path) -> Result<Self, JournalError> {
        create_dir(dir)?;
        check_dir(dir)?;
        let key = Key::load_or_create(dir)?;
        let path = dir.join(FILE_NAME);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|source| JournalError::Open {
                path: path.clone(),
                source,
            })?;
        Ok(Journal { path, file, key })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every authenticated record, and the lines that were skipped.
    pub fn read(&self) -> Result<Loaded, JournalError> {
        read_checked(&self.path, Some(&self.key))
    }

    /// Appends one record and waits until it is on disk (`fdatasync`).
    pub fn append(&mut self, rec: &Record) -> Result<(), JournalError> {
        let mut line = signed_line(&self.key, rec)?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|()| self.file.sync_data())
            .map_err(|source| JournalError::Write {
                path: self.path.clone(),
                source,
            })
    }
}

/// A record as one authenticated line (without the newline).
pub(crate) fn signed_line(key: &Key, rec: &Record) -> Result<Vec<u8>, JournalError> {
    let body = serde_json::to_vec(rec).map_err(JournalError::Encode)?;
    Ok(key.sign(&body))
}

/// A new id, unique within this process and sortable by creation time:
/// `<unix-nanos, 16 hex digits>-<sequence, 4 hex digits>`.
pub fn new_id() -> String {
    static LAST: AtomicU64 = AtomicU64::new(0);
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    // Strictly increasing even if the clock stalls or steps back.
    let mut prev = LAST.load(Ordering::Relaxed);
    let t = loop {
        let next = now.max(prev + 1);
        match LAST.compare_exchange_weak(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => break next,
            Err(p) => prev = p,
        }
    };
    let seq = SEQ.fetch_add(1, Ordering::Relaxed) & 0xffff;
    format!("{t:016x}-{seq:04x}")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "guardian-journal-{tag}-{}-{}",
            std::process::id(),
            new_id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    pub(crate) fn record(id: &str, phase: JournalPhase) -> Record {
        Record {
            id: id.into(),
            ts: "2026-11-22T08:20:07.123456789Z".into(),
            remedy: "link_up".into(),
            subject: json!({"iface": "va", "ifindex": 3}),
            incident: "inc".into(),
            phase,
            action: json!({"op": "set_link_up", "ifindex": 3, "name": "va"}),
            inverse: json!({"op": "set_link_down", "ifindex": 3, "name": "va"}),
            before: json!({"admin_up": false}),
            after: json!({"admin_up": true}),
            error: None,
            netns: 0,
            fault: "link_down".into(),
            key: "link:3".into(),
            verify: json!({"check": "link_up", "ifindex": 3}),
            effect: json!({"kind": "in_place"}),
            expires_at_ms: None,
            until_clear: false,
        }
    }

    #[test]
    fn append_then_read_all_round_trips() {
        let dir = temp_dir("rt").join("nested");
        let mut j = Journal::open(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let id = new_id();
        let recs = [
            record(&id, JournalPhase::Intent),
            record(&id, JournalPhase::Applied),
            record(&id, JournalPhase::Verified),
        ];
        for r in &recs {
            j.append(r).unwrap();
        }
        drop(j);
        // reopening appends
        let mut j = Journal::open(&dir).unwrap();
        j.append(&record("x", JournalPhase::RolledBack)).unwrap();
        let back = read_all(j.path()).unwrap();
        assert_eq!(back.len(), 4);
        assert_eq!(&back[..3], &recs);
        assert_eq!(back[3].phase, JournalPhase::RolledBack);
        let line = std::fs::read_to_string(j.path()).unwrap();
        assert!(line
            .lines()
            .next()
            .unwrap()
            .contains("\"phase\":\"intent\""));
        std::fs::remove_dir_all(dir.parent().unwrap()).unwrap();
    }

    #[test]
    fn ids_are_unique_and_sorted() {
        let ids: Vec<String> = (0..1000).map(|_| new_id()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, ids);
        assert_eq!(ids[0].len(), 16 + 1 + 4);
    }
}
