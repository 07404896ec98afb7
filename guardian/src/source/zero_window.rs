//! Flows stalled on a zero window (`zero_window_stall`), found at a cost that stays flat while
//! nothing stalls.
//!
//! The trigger is the namespace's `TcpExtTCPWinProbe` (zero-window probes sent,
//! `tcp_send_probe0` → `tcp_write_wakeup(sk, LINUX_MIB_WINPROBE)`), which the MIB sampler
//! already reads in every namespace on every tick. A sender whose peer advertises a zero
//! window while it still has data queued arms the persist timer (`ICSK_TIME_PROBE0`) and sends
//! its first probe one RTO later (at least 200 ms), so a new stall moves the counter before
//! the next tick. Only then, and while the previous look found stalled flows (probes back off
//! exponentially up to two minutes apart, so the counter alone cannot tell that a stall goes
//! on or has ended), one INET_DIAG dump of the namespace's sockets that can hold unsent data
//! is taken with `tcp_info`, keeping those whose pending timer is the persist timer
//! (`idiag_timer` 4, `ss -o`'s `timer:(persist,…)`).
//!
//! Per flow: how long since the last data segment left (`tcpi_last_data_sent`: probes carry no
//! data, so this is the stall's age as the kernel measured it, even for a stall that began
//! before guardian looked), the probes sent in this stall (`tcpi_backoff`; `idiag_retrans`,
//! which `ss` prints after the timer, is `icsk_probes_out` and goes back to 0 on every answered
//! probe), the bytes queued (`idiag_wqueue`) and the peer's window (`tcpi_snd_wnd`). The
//! processes holding a port's stalled sockets are looked up from `/proc/*/fd` only once one
//! has stalled [`LOOKUP_AFTER_MS`], at most every [`LOOKUP_EVERY`].
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use netlink_packet_sock_diag::{
    constants::{AF_INET, AF_INET6},
    inet::{nlas::Nla, ExtensionFlags, InetResponse, StateFlags, Timer},
};
use netlink_sys::Socket;

use super::close_wait::holders;
use crate::model::shadows::{PortStalls, SocketOwner, StalledFlow, ZeroWindowSample};
use crate::netns;

/// At most this many flows per port go into a sample (the longest stalled).
pub const MAX_FLOWS: usize = 256;
/// A port's owners are looked up once one of its flows has stalled this long (below every
/// sensible `zero_window_stall.stall_ms`).
pub const LOOKUP_AFTER_MS: u64 = 1000;
/// At most one owner lookup per port this often while its stalled sockets change.
pub const LOOKUP_EVERY: Duration = Duration::from_secs(2);

/// What is remembered of a namespace between ticks.
#[derive(Debug, Default)]
pub struct NsState {
    /// `TcpExtTCPWinProbe` at the previous tick.
    probes: Option<u64>,
    /// The previous look found stalled flows.
    stalled: bool,
}

/// Whether to dump the namespace: its probe counter moved (or is seen for the first time and
/// is not zero: a stall may be under way at attach), or stalled flows were seen last time.
pub fn should_dump(prev: Option<u64>, now: u64, stalled: bool) -> bool {
    stalled || prev.map_or(now > 0, |p| p != now)
}

/// Inside the namespace (the calling thread's): its stalled flows per local port. None when
/// the dump failed (an absent sample must not read as "the stall ended").
/// `diag` is the namespace's NETLINK_SOCK_DIAG socket, made here (after `enter`, which
/// enters the namespace) if it has none yet; a failed dump drops it.
pub fn sample(
    netns: u32,
    win_probes: u64,
    st: &mut NsState,
    diag: &mut Option<netlink_sys::Socket>,
    enter: &mut dyn FnMut() -> std::io::Result<()>,
    rx: &mut Vec<u8>,
) -> Option<ZeroWindowSample> {
    let dump = should_dump(st.probes, win_probes, st.stalled);
    st.probes = Some(win_probes);
    let mut z = ZeroWindowSample {
        netns,
        win_probes,
        ports: Vec::new(),
    };
    if !dump {
        return Some(z);
    }
    let mut flows = Vec::new();
    if diag.is_none() {
        match enter().and_then(|()| netns::diag_socket()) {
            Ok(d) => *diag = Some(d),
            Err(e) => {
                tracing::debug!(netns, error = %e, "no NETLINK_SOCK_DIAG socket for zero-window flows");
                return None;
            }
        }
    }
    let sock = diag.as_ref().expect("made above");
    let dumped = [AF_INET, AF_INET6]
        .into_iter()
        .try_for_each(|family| dump_persist(sock, family, rx, &mut flows));
    if let Err(e) = dumped {
        // A dump that failed half way may leave messages behind: a new socket next time.
        *diag = None;
        tracing::debug!(netns, error = %e, "INET_DIAG dump of zero-window flows failed");
        return None;
    }
    z.ports = by_port(flows);
    st.stalled = !z.ports.is_empty();
    Some(z)
}

/// Groups flows by local port, longest stalled first, at most [`MAX_FLOWS`] per port.
pub fn by_port(flows: Vec<(u16, StalledFlow)>) -> Vec<PortStalls> {
    let mut m: BTreeMap<u16, Vec<StalledFlow>> = BTreeMap::new();
    for (port, f) in flows {
        m.entry(port).or_default().push(f);
    }
    m.into_iter()
        .map(|(port, mut flows)| {
            flows.sort_by(|a, b| {
                b.stalled_ms
                    .cmp(&a.stalled_ms)
                    .then_with(|| a.remote.cmp(&b.remote))
            });
            flows.truncate(MAX_FLOWS);
            PortStalls {
                port,
                flows,
                owners: Vec::new(),
            }
        })
        .collect()
}

/// The fields of `struct tcp_info` (include/uapi/linux/tcp.h, a stable ABI: fields are only
/// ever appended) that the detector uses. Read by hand from the attribute's bytes: the crate
/// parses it only with its `rich_nlas` feature, and then refuses the whole socket when the
/// kernel's struct is shorter than the crate's (kernels before 6.2 have no `tcpi_snd_wnd`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpInfo {
    pub backoff: u8,
    pub last_data_sent_ms: u32,
    pub snd_wnd: Option<u32>,
}

/// Offsets in `struct tcp_info`.
const BACKOFF: usize = 4;
const LAST_DATA_SENT: usize = 44;
const SND_WND: usize = 228;

pub fn parse_tcp_info(raw: &[u8]) -> Option<TcpInfo> {
    let u32_at = |o: usize| {
        raw.get(o..o + 4)
            .map(|b| u32::from_ne_bytes(b.try_into().expect("4 bytes")))
    };
    Some(TcpInfo {
        backoff: *raw.get(BACKOFF)?,
        last_data_sent_ms: u32_at(LAST_DATA_SENT)?,
        snd_wnd: u32_at(SND_WND),
    })
}

/// The flow of one INET_DIAG answer when its pending timer is the persist timer.
pub fn stalled(r: &InetResponse) -> Option<(u16, StalledFlow)> {
    if !matches!(r.header.timer, Some(Timer::Probe(_))) {
        return None;
    }
    let info = r.nlas.iter().find_map(|n| match n {
        Nla::TcpInfo(raw) => parse_tcp_info(raw),
        _ => None,
    })?;
    let id = &r.header.socket_id;
    Some((
        id.source_port,
        StalledFlow {
            local: SocketAddr::new(id.source_address, id.source_port).to_string(),
            remote: SocketAddr::new(id.destination_address, id.destination_port).to_string(),
            stalled_ms: info.last_data_sent_ms.into(),
            probes: info.backoff.into(),
            queued: r.header.send_queue.into(),
            snd_wnd: info.snd_wnd,
            inode: r.header.inode,
        },
    ))
}

/// One INET_DIAG dump of `family`'s sockets in the states that can hold unsent data, with
/// `tcp_info`; the stalled ones are appended to `out`.
fn dump_persist(
    socket: &Socket,
    family: u8,
    rx: &mut Vec<u8>,
    out: &mut Vec<(u16, StalledFlow)>,
) -> std::io::Result<()> {
    let states = StateFlags::ESTABLISHED
        | StateFlags::CLOSE_WAIT
        | StateFlags::FIN_WAIT1
        | StateFlags::LAST_ACK
        | StateFlags::CLOSING;
    netns::dump_tcp_ext(socket, family, states, ExtensionFlags::INFO, rx, |r| {
        out.extend(stalled(r))
    })
}

/// One port's last owner lookup: the inodes looked up, when, and who held them.
type Lookup = (Vec<u32>, Instant, Vec<SocketOwner>);

/// The processes holding each port's stalled sockets, looked up on the sampler's thread.
#[derive(Debug, Default)]
pub struct Owners {
    /// Per (netns, port).
    looked: HashMap<(u32, u16), Lookup>,
}

impl Owners {
    /// Fills `owners` of the ports of `z` with a flow stalled [`LOOKUP_AFTER_MS`]: looked up
    /// again when the stalled sockets changed, at most every [`LOOKUP_EVERY`].
    pub fn fill(&mut self, z: &mut ZeroWindowSample, now: Instant) {
        let netns = z.netns;
        self.looked
            .retain(|k, _| k.0 != netns || z.ports.iter().any(|p| p.port == k.1));
        for p in &mut z.ports {
            let mut inodes: Vec<u32> = p
                .flows
                .iter()
                .filter(|f| f.stalled_ms >= LOOKUP_AFTER_MS && f.inode != 0)
                .map(|f| f.inode)
                .collect();
            if inodes.is_empty() {
                continue;
            }
            inodes.sort_unstable();
            let key = (netns, p.port);
            if let Some((seen, at, owners)) = self.looked.get(&key) {
                if *seen == inodes || now.duration_since(*at) < LOOKUP_EVERY {
                    p.owners = owners.clone();
                    continue;
                }
            }
            let wide: Vec<u64> = inodes.iter().map(|&i| i.into()).collect();
            p.owners = holders(&wide);
            self.looked.insert(key, (inodes, now, p.owners.clone()));
        }
    }

    /// Forgets namespaces that are not sampled any more.
    pub fn retain(&mut self, keep: impl Fn(u32) -> bool) {
        self.looked.retain(|k, _| keep(k.0));
    }
}

#[cfg(test)]
#[path = "zero_window_tests.rs"]
mod tests;
