//! Finds a path that enters a namespace given its inode: `/run/netns/NAME` first, then
//! `/proc/PID/ns/net`. Paths are cached and checked with one `stat` per lookup; a namespace
//! that no path leads to (gone, most often) is remembered as absent, so that lookups of dead
//! namespaces cost nothing and do not rescan `/proc` on every tick.
use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
    time::{Duration, Instant},
};

use super::inode;

/// Full rescans (every process's `ns/net`) at most this often.
const RESCAN_EVERY: Duration = Duration::from_secs(1);
/// An absent namespace is looked for again after this long (an inode number can be reused by a
/// namespace created later, which is then found at the next rescan after this delay).
const ABSENT_RETRY: Duration = Duration::from_secs(10);

/// Maps namespace inodes to a file that enters them.
pub struct Index {
    paths: HashMap<u32, PathBuf>,
    /// Inodes no path led to, with when that was found (first) and last confirmed.
    absent: HashMap<u32, (Instant, Instant)>,
    scanned: Option<Instant>,
}

impl Default for Index {
    fn default() -> Self {
        Self::new()
    }
}

impl Index {
    pub fn new() -> Self {
        Self {
            paths: HashMap::new(),
            absent: HashMap::new(),
            scanned: None,
        }
    }

    pub fn path(&mut self, ino: u32) -> Option<PathBuf> {
        if let Some(p) = self.paths.get(&ino) {
            if inode(p).ok() == Some(ino) {
                return Some(p.clone());
            }
            self.paths.remove(&ino);
        }
        let now = Instant::now();
        if let Some((_, checked)) = self.absent.get(&ino) {
            if now.duration_since(*checked) < ABSENT_RETRY {
                return None;
            }
        }
        // New namespaces are usually named (`ip netns add`, CNI plugins): /run/netns is a
        // handful of entries, cheaper than every process.
        self.scan_named();
        if !self.paths.contains_key(&ino) && self.scanned.is_none_or(|t| t.elapsed() > RESCAN_EVERY)
        {
            self.rescan();
        }
        match self.paths.get(&ino) {
            Some(p) => {
                self.absent.remove(&ino);
                Some(p.clone())
            }
            None => {
                let since = self.absent.get(&ino).map_or(now, |a| a.0);
                self.absent.insert(ino, (since, now));
                None
            }
        }
    }

    /// How long no path has led to `ino`, if none did at its last lookup.
    pub fn absent_for(&self, ino: u32) -> Option<Duration> {
        self.absent.get(&ino).map(|(since, _)| since.elapsed())
    }

    /// Forgets that no path led to `ino`, so that the next lookup looks again now rather than
    /// after [`ABSENT_RETRY`]: the kernel gives a freed namespace's inode number to the next
    /// namespace made, and a sign of life under a number found absent is that new namespace.
    pub fn revive(&mut self, ino: u32) {
        self.absent.remove(&ino);
    }

    /// Forgets everything about the inodes not in `keep` (namespaces no longer of interest).
    pub fn retain(&mut self, keep: &HashSet<u32>) {
        self.paths.retain(|k, _| keep.contains(k));
        self.absent.retain(|k, _| keep.contains(k));
    }

    /// How many namespaces are remembered (paths and absent ones).
    pub fn len(&self) -> usize {
        self.paths.len() + self.absent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn scan_named(&mut self) {
        let named = std::fs::read_dir("/run/netns")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path());
        self.add(named);
    }

    fn rescan(&mut self) {
        self.scanned = Some(Instant::now());
        let procs = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .bytes()
                    .all(|b| b.is_ascii_digit())
            })
            .map(|e| e.path().join("ns/net"));
        self.add(procs);
    }

    fn add(&mut self, paths: impl Iterator<Item = PathBuf>) {
        for p in paths {
            if let Ok(ino) = inode(&p) {
                self.paths.entry(ino).or_insert(p);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn finds_the_own_namespace_and_remembers_a_missing_one() {
        let own = super::super::current().unwrap();
        let mut ix = Index::new();
        let p = ix.path(own).expect("the own namespace has a /proc path");
        assert_eq!(inode(Path::new(&p)).unwrap(), own);
        assert_eq!(ix.absent_for(own), None);
        // No namespace has inode 1: remembered as absent, not rescanned for a while.
        assert_eq!(ix.path(1), None);
        let scanned = ix.scanned;
        assert!(ix.absent_for(1).is_some());
        assert_eq!(ix.path(1), None);
        assert_eq!(
            ix.scanned, scanned,
            "an absent namespace does not rescan /proc"
        );
        // A sign of life under that number: looked for again at the next lookup.
        ix.revive(1);
        assert_eq!(ix.absent_for(1), None);
        ix.scanned = None;
        assert_eq!(ix.path(1), None);
        assert!(ix.scanned.is_some(), "a revived number is looked for again");
        assert!(ix.absent_for(1).is_some());
        ix.retain(&HashSet::from([own]));
        assert_eq!(ix.absent_for(1), None);
        assert!(!ix.is_empty());
    }
}
