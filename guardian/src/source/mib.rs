//! Per-namespace MIB counters, sysctls and socket-table aggregates, at a cost per tick that
//! does not grow with the number of sockets on the node.
//!
//! On every tick one long-lived worker thread ([`netns::Worker`]) enters each active namespace
//! in turn and reads there ([`procnet`]):
//! - the namespace's TCP MIB (`/proc/thread-self/net/snmp`, `netstat`: `TcpOutSegs`,
//!   `TcpRetransSegs`, `TcpExtListenOverflows`, ...) and its sysctls under `/proc/sys/net`;
//! - `sockstat` / `sockstat6`: the TCP sockets in use and the TIME_WAIT count of that namespace
//!   (per namespace since Linux 4.11; on older kernels the TIME_WAIT gauge comes from a dump).
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
//!   last tick or the namespace's TCP sockets reach half of the range.
//!
//! Only the top [`TOP_N`] destinations (and at most [`MAX_LISTENERS`] listeners) go into a
//! sample.
use std::collections::HashMap;
use std::path::PathBuf;

use netlink_packet_sock_diag::{
    constants::{AF_INET, AF_INET6},
    inet::StateFlags,
};

pub use super::procnet::parse_port_range;
use super::procnet::{self, Reader, SockStat, SysctlFiles};
use super::sampler::{Sampler, TickContext};
pub use super::sockagg::{SocketAgg, MAX_LISTENERS, TOP_N};
use crate::input::Input;
use crate::model::sample::{Listener, MibSample};
use crate::netns::{self, Worker};

/// Listeners are dumped at least this often (in ticks) even when nothing hints at a change
/// (an accept queue that drains changes no counter). Namespaces are spread over the ticks.
pub const LISTENER_REFRESH: u64 = 10;

/// What is remembered of a namespace between ticks.
#[derive(Debug, Default)]
pub struct NsState {
    /// The namespace's sysctl files, open (see [`SysctlFiles`]).
    sysctls: SysctlFiles,
    /// (IPv4 sockets, IPv6 sockets, ListenOverflows, ListenDrops) at the last listener dump.
    listen_key: Option<[u64; 4]>,
    listeners: Vec<Listener>,
}

/// What was decided to dump in a namespace on this tick.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Plan {
    pub listeners: bool,
    /// TIME_WAIT per destination (and the exact TIME_WAIT count).
    pub time_wait: bool,
    /// Ephemeral ports per destination (every state but LISTEN).
    pub ephemeral: bool,
}

/// Decides the dumps of one namespace from its cheap counters. `sock` is None when
/// `sockstat` could not be read; `tw_per_netns` says whether its `tw` is this namespace's.
pub fn plan(
    s: &MibSample,
    sock: Option<SockStat>,
    tw_per_netns: bool,
    prev: Option<[u64; 4]>,
    refresh: bool,
    eaddrnotavail: bool,
) -> Plan {
    let range = s.range_size().unwrap_or(0);
    let key = sock.map(|k| [k.inuse4, k.inuse6, s.listen_overflows, s.listen_drops]);
    let tw = sock.filter(|_| tw_per_netns).map(|k| k.tw);
    let time_wait = match tw {
        None => true,
        Some(tw) => {
            (range > 0 && tw * 4 >= range)
                || s.tcp_max_tw_buckets.is_some_and(|m| m > 0 && tw * 2 >= m)
        }
    };
    let in_use = sock.map_or(u64::MAX, |k| k.inuse4 + k.inuse6 + tw.unwrap_or(0));
    Plan {
        listeners: refresh || key.is_none() || key != prev,
        time_wait,
        ephemeral: eaddrnotavail || (range > 0 && in_use.saturating_mul(2) >= range),
    }
}

pub struct MibSampler {
    worker: Option<Worker>,
    state: HashMap<u32, NsState>,
    reader: Option<Reader>,
    tw_per_netns: bool,
    ticks: u64,
    /// Namespaces whose sysctl files may stay open (four descriptors each): an eighth of the
    /// open-file limit.
    keep_files: usize,
}

impl MibSampler {
    pub fn new() -> Self {
        Self {
            worker: None,
            state: HashMap::new(),
            reader: Some(Reader::default()),
            tw_per_netns: procnet::kernel_tw_per_netns(),
            ticks: 0,
            keep_files: nofile_soft() / 32,
        }
    }

    /// Namespaces remembered between ticks (for the churn benchmark's leak check, and tests).
    pub fn remembered(&self) -> usize {
        self.state.len()
    }
}

/// The soft open-file limit (0 when unknown).
fn nofile_soft() -> usize {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) fills the struct it is given.
    match unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } {
        0 => usize::try_from(r.rlim_cur).unwrap_or(usize::MAX),
        _ => 0,
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
    /// The sysctl files may stay open.
    keep: bool,
}

impl Sampler for MibSampler {
    fn name(&self) -> &'static str {
        "mib"
    }

    fn sample(&mut self, ctx: &mut TickContext) -> Vec<Input> {
        self.ticks += 1;
        let mut jobs = Vec::with_capacity(ctx.active.len());
        let mut kept = 0;
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
            let keep = kept < self.keep_files;
            kept += usize::from(keep);
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
                let out: Vec<(u32, std::io::Result<(MibSample, NsState)>)> = jobs
                    .into_iter()
                    .map(|mut j| {
                        let r = at.enter(j.path.as_deref()).map(|()| {
                            let s = read(
                                j.ns,
                                &mut j.state,
                                (j.refresh, j.eaddrnotavail, j.keep),
                                &mut reader,
                                tw_per_netns,
                            );
                            (s, j.state)
                        });
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
        for (ns, r) in results {
            match r {
                Ok((s, st)) => {
                    self.state.insert(ns, st);
                    out.push(Input::Mib(s));
                }
                Err(e) => tracing::debug!(netns = ns, error = %e, "MIB sample unavailable"),
            }
        }
        out
    }
}

/// Reads one namespace from inside it (the calling thread's).
/// `hints`: (listener refresh due, EADDRNOTAVAIL since the last tick, sysctl files may stay
/// open).
fn read(
    netns: u32,
    st: &mut NsState,
    hints: (bool, bool, bool),
    r: &mut Reader,
    tw_per_netns: bool,
) -> MibSample {
    let mut s = MibSample {
        netns,
        ..Default::default()
    };
    if !hints.2 {
        st.sysctls = SysctlFiles::default();
    }
    r.mib(&mut s, &mut st.sysctls, hints.2);
    let sock = r.sockstat();
    let p = plan(&s, sock, tw_per_netns, st.listen_key, hints.0, hints.1);
    if let Some(k) = sock {
        s.sockets = k.inuse4 + k.inuse6 + k.tw;
        if tw_per_netns {
            s.time_wait = Some(k.tw);
        }
    }
    if p == Plan::default() {
        s.listeners = st.listeners.clone();
        return s;
    }
    let mut agg = SocketAgg::new(s.port_range);
    let families = [
        (AF_INET, sock.is_none_or(|k| k.inuse4 > 0 || k.tw > 0)),
        (AF_INET6, sock.is_none_or(|k| k.inuse6 > 0 || k.tw > 0)),
    ];
    let dumped = netns::diag_socket().and_then(|sock_fd| {
        for (family, any) in families {
            if !any {
                continue;
            }
            let mut states = StateFlags::empty();
            if p.listeners {
                states |= StateFlags::LISTEN;
            }
            if p.ephemeral {
                states |= StateFlags::all() & !StateFlags::LISTEN;
            } else if p.time_wait {
                states |= StateFlags::TIME_WAIT;
            }
            netns::dump_tcp_with(&sock_fd, family, states, &mut r.rx, |h| agg.add(h))?;
        }
        Ok(())
    });
    if let Err(e) = dumped {
        tracing::debug!(netns, error = %e, "INET_DIAG dump failed");
        if p.time_wait && !tw_per_netns {
            s.time_wait = None;
        }
        s.listeners = st.listeners.clone();
        return s;
    }
    if p.time_wait || p.ephemeral {
        agg.breakdown(&mut s, p.ephemeral);
    }
    if p.listeners {
        st.listeners = agg.take_listeners();
        st.listen_key = sock.map(|k| [k.inuse4, k.inuse6, s.listen_overflows, s.listen_drops]);
    }
    s.listeners = st.listeners.clone();
    s
}

#[cfg(test)]
#[path = "mib_tests.rs"]
mod tests;
