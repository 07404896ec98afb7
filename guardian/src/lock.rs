//! One guardian per network namespace: an exclusive flock on
//! `/run/guardian/netns-<inode>.lock`, taken by `guardian run` (observe and enforce alike)
//! before anything is attached, and held until it exits (the kernel drops it when the process
//! dies, even on SIGKILL).
//!
//! The probes, the root-cgroup sock_ops program, XDP and the enforcer are per namespace, so a
//! second daemon there would double every one of them, whatever its `--socket` or
//! `--state-dir`. The directory must be root's and writable by nobody else; the file is opened
//! with `O_NOFOLLOW` (never through a symlink), truncated only through the locked descriptor,
//! and removed at exit. A lock taken on a file that was unlinked meanwhile is retried, so two
//! daemons never hold two different files of one path.
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// Where the per-namespace locks live (systemd's `RuntimeDirectory=guardian`).
pub const DIR: &str = "/run/guardian";
/// `guardian run`'s exit code when another guardian runs in its namespace (EX_TEMPFAIL).
pub const EXIT_HELD: u8 = 75;

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another guardian (pid {pid}) already runs in this network namespace (netns {netns}, lock {}): stop it first, one guardian per namespace", path.display())]
    Held {
        pid: String,
        netns: u32,
        path: PathBuf,
    },
    #[error("the lock directory {} is {why}: guardian keeps its locks only in a directory that root owns and nobody else can write", dir.display())]
    UnsafeDir { dir: PathBuf, why: String },
    #[error("cannot create the lock directory {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot open the lock file {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl LockError {
    /// 75 (EX_TEMPFAIL) when another guardian holds the lock, 78 (EX_CONFIG) otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            LockError::Held { .. } => EXIT_HELD,
            _ => 78,
        }
    }
}

/// The lock file of namespace `netns` in `dir`.
pub fn path(dir: &Path, netns: u32) -> PathBuf {
    dir.join(format!("netns-{netns}.lock"))
}

/// Why a lock directory with this owner and mode is unsafe, if it is: it must belong to root
/// (or to `euid`, the user the daemon runs as) and be writable by no group and no other user.
pub fn unsafe_dir(uid: u32, mode: u32, euid: u32) -> Option<String> {
    if uid != 0 && uid != euid {
        return Some(format!("owned by uid {uid}"));
    }
    if mode & 0o022 != 0 {
        return Some(format!("writable by others (mode {:o})", mode & 0o7777));
    }
    None
}

fn check_dir(dir: &Path) -> Result<(), LockError> {
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| LockError::CreateDir {
                path: dir.to_path_buf(),
                source,
            }),
        Err(source) => Err(LockError::CreateDir {
            path: dir.to_path_buf(),
            source,
        }),
        Ok(m) if !m.is_dir() => Err(LockError::UnsafeDir {
            dir: dir.to_path_buf(),
            why: "not a directory (or a symlink)".into(),
        }),
        Ok(m) => match unsafe_dir(m.uid(), m.mode(), nix::unistd::geteuid().as_raw()) {
            Some(why) => Err(LockError::UnsafeDir {
                dir: dir.to_path_buf(),
                why,
            }),
            None => Ok(()),
        },
    }
}

fn open(path: &Path, create: bool) -> io::Result<File> {
    let f = OpenOptions::new()
        .create(create)
        .truncate(false)
        .read(true)
        .write(create)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    Ok(f)
}

/// The pid written in a held lock file ("?" when it cannot be read).
fn pid_in(file: &mut File) -> String {
    let mut s = String::new();
    let _ = file.rewind().and_then(|()| file.read_to_string(&mut s));
    match s.trim() {
        "" => "?".into(),
        p => p.to_string(),
    }
}

/// Exclusive use of one network namespace by this process; the file is removed on drop.
#[derive(Debug)]
pub struct NetnsLock {
    file: Flock<File>,
    path: PathBuf,
}

impl NetnsLock {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for NetnsLock {
    fn drop(&mut self) {
        // Only while it is still our file (held: nobody else can have replaced it).
        let ours = std::fs::symlink_metadata(&self.path)
            .ok()
            .zip(self.file.metadata().ok())
            .is_some_and(|(p, f)| p.ino() == f.ino() && p.dev() == f.dev());
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Takes namespace `netns`'s lock in `dir` (creating the directory 0700 when missing), or says
/// which pid holds it.
pub fn lock_netns(dir: &Path, netns: u32) -> Result<NetnsLock, LockError> {
    check_dir(dir)?;
    let path = path(dir, netns);
    let open_err = |source| LockError::Open {
        path: path.clone(),
        source,
    };
    // A holder that exits unlinks the file after we opened it: lock again on the new one.
    for _ in 0..8 {
        let file = open(&path, true).map_err(open_err)?;
        let mut locked = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err((mut file, _)) => {
                let mut pid = pid_in(&mut file);
                if pid == "?" {
                    // Between the holder's lock and its write: look once more.
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    pid = pid_in(&mut file);
                }
                return Err(LockError::Held { pid, netns, path });
            }
        };
        let same = std::fs::symlink_metadata(&path)
            .ok()
            .zip(locked.metadata().ok())
            .is_some_and(|(p, f)| p.ino() == f.ino() && p.dev() == f.dev());
        if !same {
            continue;
        }
        locked.set_len(0).map_err(open_err)?;
        writeln!(locked, "{}", std::process::id()).map_err(open_err)?;
        return Ok(NetnsLock { file: locked, path });
    }
    Err(open_err(io::Error::other(
        "it was replaced 8 times while being locked",
    )))
}

/// Who holds namespace `netns`'s lock, without creating anything: `Ok(None)` when nobody does.
pub fn holder(dir: &Path, netns: u32) -> Result<Option<String>, LockError> {
    if let Ok(m) = std::fs::symlink_metadata(dir) {
        if let Some(why) = (!m.is_dir())
            .then(|| "not a directory (or a symlink)".to_string())
            .or_else(|| unsafe_dir(m.uid(), m.mode(), nix::unistd::geteuid().as_raw()))
        {
            return Err(LockError::UnsafeDir {
                dir: dir.to_path_buf(),
                why,
            });
        }
    }
    let path = path(dir, netns);
    let file = match open(&path, false) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(LockError::Open { path, source }),
    };
    match Flock::lock(file, FlockArg::LockSharedNonblock) {
        Ok(_) => Ok(None),
        Err((mut file, _)) => Ok(Some(pid_in(&mut file))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("guardian-lock-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_second_lock_names_the_holder_and_the_file_goes_with_the_first() {
        let dir = tmp("held").join("run");
        let first = lock_netns(&dir, 4026531840).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700, "created 0700");
        let e = lock_netns(&dir, 4026531840).unwrap_err();
        assert_eq!(e.exit_code(), 75);
        let pid = std::process::id().to_string();
        assert!(
            e.to_string().starts_with(&format!(
                "another guardian (pid {pid}) already runs in this network namespace (netns 4026531840"
            )),
            "{e}"
        );
        assert_eq!(holder(&dir, 4026531840).unwrap(), Some(pid));
        // Another namespace is another lock.
        let other = lock_netns(&dir, 4026531841).unwrap();
        drop(other);
        let p = first.path().to_path_buf();
        drop(first);
        assert!(!p.exists(), "removed on drop");
        assert_eq!(holder(&dir, 4026531840).unwrap(), None);
        let again = lock_netns(&dir, 4026531840).unwrap();
        drop(again);
        let _ = std::fs::remove_dir_all(dir.parent().unwrap());
    }

    #[test]
    fn a_symlink_is_never_followed_nor_truncated() {
        let dir = tmp("link");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        let target = dir.join("precious");
        std::fs::write(&target, "keep me\n").unwrap();
        std::os::unix::fs::symlink(&target, path(&dir, 7)).unwrap();
        let e = lock_netns(&dir, 7).unwrap_err();
        assert!(matches!(e, LockError::Open { .. }), "{e}");
        assert_eq!(e.exit_code(), 78);
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me\n");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_directory_others_can_write_is_refused() {
        assert_eq!(unsafe_dir(0, 0o40700, 0), None);
        assert_eq!(unsafe_dir(0, 0o40755, 0), None);
        assert_eq!(
            unsafe_dir(1000, 0o40700, 1000),
            None,
            "the daemon's own user"
        );
        assert_eq!(unsafe_dir(1000, 0o40700, 0).unwrap(), "owned by uid 1000");
        assert_eq!(
            unsafe_dir(0, 0o41777, 0).unwrap(),
            "writable by others (mode 1777)"
        );
        assert!(unsafe_dir(0, 0o40770, 0).is_some(), "group-writable");
        let dir = tmp("open");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .unwrap();
        let e = lock_netns(&dir, 9).unwrap_err();
        assert!(
            e.to_string().ends_with(
                "is writable by others (mode 777): guardian keeps its locks only in a directory that root owns and nobody else can write"
            ),
            "{e}"
        );
        assert!(holder(&dir, 9).is_err());
        assert!(!path(&dir, 9).exists(), "nothing created");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
