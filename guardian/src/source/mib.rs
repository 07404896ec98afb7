//! Per-namespace MIB counters, sysctls and socket-table aggregates, at a cost per tick that
//! does not grow with the number of sockets on the node.
//!
//! On every tick one long-lived worker thread ([`netns::Worker`]) reads each active namespace
//! ([`procnet`]):
//! - the namespace's TCP MIB (`/proc/thread-self/net/snmp`, `netstat`: `TcpOutSegs`,
//!   `TcpRetransSegs`, `TcpExtListenOverflows`, ...) and its sysctls under `/proc/sys/net`;
//! - `sockstat` / `sockstat6`: the TCP sockets in use and the TIME_WAIT count of that namespace
//!   (per namespace since Linux 4.11; on older kernels the TIME_WAIT gauge comes from a dump).
//!
//! It enters a namespace (`setns`) only once, when the namespace is first sampled, to open
//! those files ([`NetFiles`]) and, at its first dump, a NETLINK_SOCK_DIAG socket; both stay
//! bound to the namespace, so later ticks read every namespace with one `pread` per file and
//! no `setns` or `open`. They are closed as soon as no path leads to the namespace (an open
//! one keeps the namespace alive; the kernel destroys a deleted namespace asynchronously
//! anyway, and this adds at most a tick). Namespaces beyond the descriptor budget
//! ([`FDS_PER_NS`] each, half of the soft `RLIMIT_NOFILE`, which [`MibSampler::new`] raises to
//! the hard limit) are entered and their files opened on every tick instead, as before.
//!
//! INET_DIAG dumps walk hash tables that all namespaces share, so they are taken only when
//! they tell something new:
//! - listeners: a listener-only dump (it walks the listening hash, not the established one),
//!   per address family with sockets, when that family's socket count or the listen drop
//!   counters moved since the last dump, and every [`LISTENER_REFRESH`] ticks otherwise;
//! - TIME_WAIT per destination: only under pressure, when TIME_WAIT reaches a quarter of the
//!   ephemeral range or half of `tcp_max_tw_buckets`; the count is then the dump's own (what
//!   `ss` shows), otherwise `sockstat`'s (which also counts orphaned FIN_WAIT2 sockets, like
//!   the limit `tcp_max_tw_buckets` does);
//! - ephemeral ports per destination: only when connects failed with EADDRNOTAVAIL since the
//!   last tick or the namespace's TCP sockets reach half of the range;
//! - zero-window stalls ([`zero_window`]): only when the namespace's `TcpExtTCPWinProbe` moved
//!   since the last tick, or stalled flows were found there on the last one (through the
//!   namespace's same NETLINK_SOCK_DIAG socket).
//!
//! Only the top [`TOP_N`] destinations (and at most [`MAX_LISTENERS`] listeners) go into a
//! sample.
use std::collections::HashMap;
use std::path::PathBuf;

pub use super::procnet::parse_port_range;
use super::procnet::{self, NetFiles, Reader};
use super::sampler::{Sampler, TickContext};
pub use super::sockagg::{SocketAgg, MAX_LISTENERS, TOP_N};
use super::zero_window;
use crate::input::Input;
use crate::model::sample::{Listener, MibSample};
use crate::model::shadows::ZeroWindowSample;
use crate::netns::Worker;

/// Listeners are dumped at least this often (in ticks) even when nothing hints at a change
/// (an accept queue that drains changes no counter). Namespaces are spread over the ticks.
pub const LISTENER_REFRESH: u64 = 10;

/// Descriptors a namespace's handles hold: its [`NetFiles`] and a NETLINK_SOCK_DIAG socket.
pub const FDS_PER_NS: usize = procnet::NET_FILES + 1;

/// What is remembered of a namespace between ticks.
#[derive(Debug, Default)]
pub struct NsState {
    /// The namespace's procfs files, open (see [`NetFiles`]).
    files: NetFiles,
    /// Its NETLINK_SOCK_DIAG socket, made at its first dump and kept with the files.
    diag: Option<netlink_sys::Socket>,
    /// (IPv4 sockets, IPv6 sockets, ListenOverflows, ListenDrops) at the last listener dump.
    listen_key: Option<[u64; 4]>,
    listeners: Vec<Listener>,
    /// `zero_window_stall`'s trigger (see [`zero_window`]).
    zero_window: zero_window::NsState,
}

pub struct MibSampler {
    worker: Option<Worker>,
    state: HashMap<u32, NsState>,
    reader: Option<Reader>,
    tw_per_netns: bool,
    ticks: u64,
    /// The budget was reached (logged once).
    over_budget: bool,
    /// Who holds the sockets of stalled flows.
    zero_window: zero_window::Owners,
}

impl MibSampler {
    pub fn new() -> Self {
        raise_nofile();
        Self {
            worker: None,
            state: HashMap::new(),
            reader: Some(Reader::default()),
            tw_per_netns: procnet::kernel_tw_per_netns(),
            ticks: 0,
            over_budget: false,
            zero_window: zero_window::Owners::default(),
        }
    }

    /// Namespaces remembered between ticks (for the churn benchmark's leak check, and tests).
    pub fn remembered(&self) -> usize {
        self.state.len()
    }
}

/// The open-file limit (soft, hard); None when unknown.
fn nofile() -> Option<libc::rlimit> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) fills the struct it is given.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } == 0).then_some(r)
}

/// Namespaces whose handles may stay open: half of the soft open-file limit, read on every
/// tick (an operator may lower it on a running daemon).
fn handle_budget() -> usize {
    nofile().map_or(0, |r| {
        usize::try_from(r.rlim_cur).unwrap_or(usize::MAX) / 2 / FDS_PER_NS
    })
}

/// Raises the soft open-file limit to the hard one (at most 2^20). The namespace handles need
/// [`FDS_PER_NS`] descriptors per namespace: 500 namespaces take 4 500, over the usual soft
/// limit of 1 024.
fn raise_nofile() {
    let Some(r) = nofile() else {
        return;
    };
    let want = r.rlim_max.min(1 << 20);
    if r.rlim_cur < want {
        let raised = libc::rlimit {
            rlim_cur: want,
            rlim_max: r.rlim_max,
        };
        // SAFETY: setrlimit(2) reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            tracing::info!(
                from = r.rlim_cur,
                to = want,
                "raised the soft open-file limit for the namespace handles"
            );
        }
    }
}

impl Default for MibSampler {
    fn default() -> Self {
        Self::new()
    }
}

/// One namespace's job on the worker.
struct Job {
    ns: u32,
    path: Option<PathBuf>,
    state: NsState,
    refresh: bool,
    eaddrnotavail: bool,
    /// The handles may stay open.
    keep: bool,
}

impl Sampler for MibSampler {
    fn name(&self) -> &'static str {
        "mib"
    }

    fn sample(&mut self, ctx: &mut TickContext) -> Vec<Input> {
        self.ticks += 1;
        let mut jobs = Vec::with_capacity(ctx.active.len());
        // Namespaces that hold handles keep them (all drop them if the limit was lowered under
        // them); new ones get them while the budget lasts.
        let budget = handle_budget();
        let holding = self.state.values().filter(|s| s.files.is_open()).count();
        let mut room = budget.saturating_sub(holding);
        for &ns in ctx.active {
            let path = if ns == ctx.own_netns {
                None
            } else {
                match ctx.index.path(ns) {
                    Some(p) => Some(p),
                    None => continue, // gone, or no path to enter it
                }
            };
            let state = self.state.remove(&ns).unwrap_or_default();
            let keep = match state.files.is_open() {
                true => holding <= budget,
                false if room > 0 => {
                    room -= 1;
                    true
                }
                false => false,
            };
            if !keep && !self.over_budget {
                self.over_budget = true;
                tracing::info!(
                    namespaces = budget,
                    "namespace handles at their descriptor budget: namespaces beyond it are \
                     entered on every tick"
                );
            }
            jobs.push(Job {
                ns,
                path,
                keep,
                state,
                refresh: (self.ticks + ns as u64).is_multiple_of(LISTENER_REFRESH),
                eaddrnotavail: ctx.eaddrnotavail.contains(&ns),
            });
        }
        // What is not sampled any more (gone namespaces) is forgotten.
        self.state.clear();
        if self.worker.is_none() {
            match Worker::new("guardian-netns") {
                Ok(w) => self.worker = Some(w),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start the namespace worker");
                    return Vec::new();
                }
            }
        }
        let mut reader = self.reader.take().unwrap_or_default();
        let tw_per_netns = self.tw_per_netns;
        let run = self
            .worker
            .as_ref()
            .expect("worker started")
            .run(move |at| {
                type Sampled = (MibSample, Option<ZeroWindowSample>, NsState);
                let out: Vec<(u32, std::io::Result<Sampled>)> = jobs
                    .into_iter()
                    .map(|mut j| {
                        let path = j.path;
                        let mut enter = || at.enter(path.as_deref());
                        let r = (|| {
                            if !j.state.files.is_open() {
                                enter()?;
                                j.state.files = NetFiles::open_here();
                            }
                            let s = read(
                                j.ns,
                                &mut j.state,
                                (j.refresh, j.eaddrnotavail),
                                &mut reader,
                                tw_per_netns,
                                &mut enter,
                            );
                            let z = zero_window::sample(
                                j.ns,
                                s.tcp_win_probe,
                                &mut j.state.zero_window,
                                &mut j.state.diag,
                                &mut enter,
                                &mut reader.rx,
                            );
                            if !j.keep {
                                j.state.files = NetFiles::default();
                                j.state.diag = None;
                            }
                            Ok((s, z, j.state))
                        })();
                        (j.ns, r)
                    })
                    .collect();
                (out, reader)
            });
        let (results, reader) = match run {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "namespace worker failed; starting a new one");
                self.worker = None;
                return Vec::new();
            }
        };
        self.reader = Some(reader);
        let mut out = Vec::with_capacity(results.len());
        let now = std::time::Instant::now();
        for (ns, r) in results {
            match r {
                Ok((s, z, st)) => {
                    self.state.insert(ns, st);
                    out.push(Input::Mib(s));
                    if let Some(mut z) = z {
                        self.zero_window.fill(&mut z, now);
                        out.push(Input::ZeroWindow(z));
                    }
                }
                Err(e) => tracing::debug!(netns = ns, error = %e, "MIB sample unavailable"),
            }
        }
        self.zero_window.retain(|ns| self.state.contains_key(&ns));
        out
    }
}

#[path = "mib_read.rs"]
mod ns_read;
use ns_read::read;
pub use ns_read::{plan, Plan};

#[cfg(test)]
#[path = "mib_tests.rs"]
mod tests;
