//! Who owns a network namespace: the host, a systemd unit, a container or a Kubernetes pod.
//! Found from the processes inside it (`/proc/PID/ns/net`), their cgroup path
//! (`/proc/PID/cgroup`, [`cgroup`]) and the runtimes' and the kubelet's state files ([`meta`]).
//!
//! [`Owners`] resolves each namespace once and caches the answer by namespace inode: the event
//! path only takes a lock and reads a map. A namespace not in the map (a new one) triggers one
//! scan of `/proc` that fills the map for every namespace present, at most every
//! [`RESCAN_EVERY`] (a `fault` or `remedy` event about a namespace no scan has looked for yet
//! scans at once: [`Owners::get_now`]); answers are kept [`KEEP`] (an inode number can be
//! reused later), a namespace nobody could be found in is asked again after [`RETRY`], and the
//! map holds at most [`MAX`] namespaces. The kernel gives a freed namespace's inode number to
//! the next namespace made: a pod replaced by another (a rollout) often hands its number to
//! the new one. So an answer is checked again at most every [`CHECK_EVERY`], by one `stat`:
//! the process it was read from must still be in that namespace, or the answer is dropped and
//! looked for again.
pub mod cgroup;
pub mod meta;
pub mod metric;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use meta::Roots;

pub const RESCAN_EVERY: Duration = Duration::from_millis(250);
pub const KEEP: Duration = Duration::from_secs(300);
pub const RETRY: Duration = Duration::from_secs(5);
pub const MAX: usize = 4096;
pub const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Processes of one namespace whose cgroup is read, lowest pids first (the container's init
/// or the pod's sandbox is usually the first).
const PIDS_PER_NS: usize = 8;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The host's namespace (the one PID 1 is in).
    Host,
    /// A systemd unit's own namespace (`PrivateNetwork=yes`, a session's `unshare`).
    Systemd,
    Container,
    Pod,
}

/// The `owner` object of events; every field but `kind` is optional (absent when unknown).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Owner {
    pub kind: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
}

impl Owner {
    fn host() -> Self {
        Self::of_kind(Kind::Host)
    }

    fn of_kind(kind: Kind) -> Self {
        Self {
            kind,
            unit: None,
            runtime: None,
            container_id: None,
            container_name: None,
            pod_namespace: None,
            pod_name: None,
            pod_uid: None,
        }
    }

    /// The owner a cgroup path and the names found for it describe; None when the path names
    /// nothing (a process in the root cgroup).
    pub fn from_cgroup(c: cgroup::Cgroup, n: meta::Names) -> Option<Self> {
        let kind = if c.pod_uid.is_some() || n.pod_uid.is_some() {
            Kind::Pod
        } else if c.container_id.is_some() || c.container_name.is_some() {
            Kind::Container
        } else if c.unit.is_some() {
            Kind::Systemd
        } else {
            return None;
        };
        Some(Self {
            unit: c.unit,
            runtime: c.runtime.map(str::to_owned),
            container_id: c.container_id,
            container_name: n.container_name.or(c.container_name),
            pod_namespace: n.pod_namespace,
            pod_name: n.pod_name,
            pod_uid: c.pod_uid.or(n.pod_uid),
            ..Self::of_kind(kind)
        })
    }

    /// How specific a process's cgroup is: a pod or container beats a unit.
    fn rank(&self) -> u8 {
        match self.kind {
            Kind::Pod | Kind::Container => 2,
            Kind::Systemd => 1,
            Kind::Host => 0,
        }
    }
}

/// The owner of one process from its `/proc/PID/cgroup` content.
pub fn of_process(roots: &Roots, cgroup_file: &str) -> Option<Owner> {
    let c = cgroup::parse(cgroup::path_of(cgroup_file)?);
    let n = if c.container_id.is_some() || c.pod_uid.is_some() {
        meta::lookup(
            roots,
            c.runtime,
            c.container_id.as_deref(),
            c.pod_uid.as_deref(),
        )
    } else {
        meta::Names::default()
    };
    Owner::from_cgroup(c, n)
}

struct Entry {
    owner: Option<Arc<Owner>>,
    at: Instant,
    /// The process the owner was read from (with `owner`), and when it was last seen in the
    /// namespace.
    pid: Option<(u32, Instant)>,
    /// False while no scan has looked for the namespace yet (it was first asked within
    /// [`RESCAN_EVERY`] of a scan): [`Owners::get_now`] scans for it.
    looked: bool,
}

impl Entry {
    fn unknown(at: Instant) -> Self {
        Self {
            owner: None,
            at,
            pid: None,
            looked: true,
        }
    }

    /// False when the process the answer came from has left namespace `ino` (it exited, and
    /// the number may now be a new namespace's), checked at most every [`CHECK_EVERY`].
    fn still_true(&mut self, ino: u32, now: Instant) -> bool {
        let Some((pid, seen)) = &mut self.pid else {
            return true;
        };
        if now.duration_since(*seen) < CHECK_EVERY {
            return true;
        }
        let there = crate::netns::inode(Path::new(&format!("/proc/{pid}/ns/net"))).ok();
        *seen = now;
        there == Some(ino)
    }
}

#[derive(Default)]
struct State {
    map: HashMap<u32, Entry>,
    scanned: Option<Instant>,
}

/// The cache of namespace owners (see the module documentation). Share it with an `Arc`.
pub struct Owners {
    roots: Roots,
    /// PID 1's namespace: its owner is the host.
    host: Option<u32>,
    state: Mutex<State>,
}

impl Owners {
    pub fn new(roots: Roots) -> Self {
        Self {
            roots,
            host: crate::netns::inode(Path::new("/proc/1/ns/net")).ok(),
            state: Mutex::new(State::default()),
        }
    }

    /// The owner of namespace `ino`, from the cache, or after one `/proc` scan when the
    /// namespace is new (and the last scan is older than [`RESCAN_EVERY`]).
    pub fn get(&self, ino: u32) -> Option<Arc<Owner>> {
        self.lookup(ino, false)
    }

    /// The owner for a `fault` or `remedy` event: as [`Owners::get`], but a namespace no scan
    /// has looked for yet (first asked within [`RESCAN_EVERY`] of another scan, as a burst of
    /// new namespaces is) is scanned for now rather than at the next event, so that a fault is
    /// not left unnamed for that. These events are few (each detector rate-limits its
    /// subjects), and a namespace is scanned for this way once.
    pub fn get_now(&self, ino: u32) -> Option<Arc<Owner>> {
        self.lookup(ino, true)
    }

    fn lookup(&self, ino: u32, now_if_unlooked: bool) -> Option<Arc<Owner>> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let mut stale = false;
        let unlooked = now_if_unlooked && s.map.get(&ino).is_none_or(|e| !e.looked);
        if let Some(e) = s.map.get_mut(&ino).filter(|_| !unlooked) {
            let keep = if e.owner.is_some() { KEEP } else { RETRY };
            if now.duration_since(e.at) < keep {
                if e.still_true(ino, now) {
                    return e.owner.clone();
                }
                s.map.remove(&ino);
                stale = true;
            }
        }
        // A stale answer is replaced at once (at most once a CHECK_EVERY per namespace): an
        // event about the new namespace must not wait for the next scan, nor go unnamed.
        if stale
            || unlooked
            || s.scanned
                .is_none_or(|t| now.duration_since(t) >= RESCAN_EVERY)
        {
            s.scanned = Some(now);
            self.scan(&mut s.map, now);
            // The scan looked for every namespace: one it found nobody in counts as asked now.
            // (Otherwise an unresolved namespace past RETRY would ask for a scan on every call,
            // a /proc scan every RESCAN_EVERY for as long as it lives.)
            for e in s.map.values_mut() {
                if e.owner.is_none() {
                    e.at = now;
                    e.looked = true;
                }
            }
            s.map.entry(ino).or_insert(Entry::unknown(now));
            bound(&mut s.map, ino, now);
        } else if let std::collections::hash_map::Entry::Vacant(slot) = s.map.entry(ino) {
            // Not scanned again so soon: asked again once RESCAN_EVERY has passed (by then
            // through an entry, so that one scan answers every namespace asked meanwhile,
            // rather than one scan each, a tick apart, for a burst of new namespaces).
            if let Some(at) = now.checked_sub(RETRY.saturating_sub(RESCAN_EVERY)) {
                slot.insert(Entry {
                    looked: false,
                    ..Entry::unknown(at)
                });
                bound(&mut s.map, ino, now);
            }
        }
        s.map.get(&ino).and_then(|e| e.owner.clone())
    }

    /// Reads every process's namespace, then the cgroups of the namespaces not known yet.
    fn scan(&self, map: &mut HashMap<u32, Entry>, now: Instant) {
        let mut by_ns: HashMap<u32, Vec<u32>> = HashMap::new();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Ok(ino) = crate::netns::inode(&e.path().join("ns/net")) {
                by_ns.entry(ino).or_default().push(pid);
            }
        }
        // The scan checks every answer at once (so that pods deleted together cost one scan,
        // not one each): an answer whose namespace no process is in any more is unknown from
        // now, and one whose process left its namespace is looked for again below.
        for (ino, e) in map.iter_mut() {
            if e.owner.is_some() && !by_ns.contains_key(ino) {
                *e = Entry::unknown(now);
            }
        }
        for (ino, mut pids) in by_ns {
            let fresh = map.get_mut(&ino).is_some_and(|e| {
                let stays = match &mut e.pid {
                    Some((pid, seen)) if pids.contains(pid) => {
                        *seen = now;
                        true
                    }
                    Some(_) => false,
                    None => true,
                };
                e.owner.is_some() && now.duration_since(e.at) < KEEP && stays
            });
            if fresh {
                continue;
            }
            let found = if Some(ino) == self.host {
                Some((1, Owner::host()))
            } else {
                pids.sort_unstable();
                pids.iter()
                    .take(PIDS_PER_NS)
                    .filter_map(|&p| {
                        let c = std::fs::read_to_string(format!("/proc/{p}/cgroup")).ok()?;
                        Some((p, of_process(&self.roots, &c)?))
                    })
                    .max_by_key(|(_, o)| o.rank())
            };
            map.insert(
                ino,
                Entry {
                    pid: found.as_ref().map(|(p, _)| (*p, now)),
                    owner: found.map(|(_, o)| Arc::new(o)),
                    at: now,
                    looked: true,
                },
            );
        }
    }

    /// Forgets the answer about `ino`: the namespace is gone, or the number now belongs to a
    /// new one (the counters saw it come back, `source/counters_gone.rs`). The next event
    /// about it looks again.
    pub fn forget(&self, ino: u32) {
        if let Ok(mut s) = self.state.lock() {
            s.map.remove(&ino);
        }
    }

    /// How many namespaces are remembered.
    pub fn len(&self) -> usize {
        self.state.lock().map_or(0, |s| s.map.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Keeps at most [`MAX`] entries: expired ones go first, then unresolved ones, then the oldest
/// (never `keep`, the one just asked for).
fn bound(map: &mut HashMap<u32, Entry>, keep: u32, now: Instant) {
    if map.len() <= MAX {
        return;
    }
    map.retain(|k, e| {
        *k == keep || now.duration_since(e.at) < if e.owner.is_some() { KEEP } else { RETRY }
    });
    if map.len() > MAX {
        map.retain(|k, e| *k == keep || e.owner.is_some());
    }
    if map.len() > MAX {
        let mut ages: Vec<(Instant, u32)> = map.iter().map(|(k, e)| (e.at, *k)).collect();
        ages.sort_unstable();
        for (_, k) in ages.into_iter().take(map.len() - MAX) {
            if k != keep {
                map.remove(&k);
            }
        }
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
