//! One lab at a time: an exclusive `flock` on /run/guardian-lab.lock, held for the life of the
//! returned guard (and released by the kernel if the lab dies).
use std::fs::{File, OpenOptions};

use nix::fcntl::{Flock, FlockArg};

/// Where the one-lab-at-a-time lock lives.
const LOCK_PATH: &str = "/run/guardian-lab.lock";

/// Takes the lab lock, or says that another lab runs.
pub fn take() -> Result<Flock<File>, String> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(LOCK_PATH)
        .map_err(|e| format!("cannot open the lab lock {LOCK_PATH}: {e}."))?;
    Flock::lock(f, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| match errno {
        nix::errno::Errno::EWOULDBLOCK => format!(
            "another guardian-lab is running (it holds {LOCK_PATH}); wait for it to finish."
        ),
        e => format!("cannot lock {LOCK_PATH}: {e}."),
    })
}
