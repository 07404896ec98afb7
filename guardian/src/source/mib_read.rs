//! Reading one namespace on a tick: which INET_DIAG dumps its cheap counters call for
//! ([`plan`]), and the read itself through its open handles ([`read`]).
use netlink_packet_sock_diag::{
    constants::{AF_INET, AF_INET6},
    inet::StateFlags,
};

use super::NsState;
use crate::model::sample::MibSample;
use crate::netns;
use crate::source::procnet::{Reader, SockStat};
use crate::source::sockagg::SocketAgg;

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

/// Reads one namespace through its open files (`st.files`); `enter` enters it, for making its
/// NETLINK_SOCK_DIAG socket at the first dump. `hints`: (listener refresh due, EADDRNOTAVAIL
/// since the last tick).
pub(super) fn read(
    netns: u32,
    st: &mut NsState,
    hints: (bool, bool),
    r: &mut Reader,
    tw_per_netns: bool,
    enter: &mut dyn FnMut() -> std::io::Result<()>,
) -> MibSample {
    let mut s = MibSample {
        netns,
        ..Default::default()
    };
    let sock = r.with(&mut st.files, |r| {
        r.mib(&mut s);
        r.sockstat()
    });
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
    // Listeners are counted in `inuse`; TIME_WAIT sockets (in `tw`, both families) matter
    // only to the TIME_WAIT and ephemeral dumps.
    let tw = p.time_wait || p.ephemeral;
    let families = [
        (
            AF_INET,
            sock.is_none_or(|k| k.inuse4 > 0 || (tw && k.tw > 0)),
        ),
        (
            AF_INET6,
            sock.is_none_or(|k| k.inuse6 > 0 || (tw && k.tw > 0)),
        ),
    ];
    let any = families.iter().any(|f| f.1);
    let mut made = Ok(());
    if st.diag.is_none() && any {
        made = enter()
            .and_then(|()| netns::diag_socket())
            .map(|d| st.diag = Some(d));
    }
    let dumped = match (&st.diag, made) {
        (_, Err(e)) => Err(e),
        (None, Ok(())) => Ok(()),
        (Some(sock_fd), Ok(())) => (|| {
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
                netns::dump_tcp_with(sock_fd, family, states, &mut r.rx, |h| agg.add(h))?;
            }
            Ok(())
        })(),
    };
    if let Err(e) = dumped {
        tracing::debug!(netns, error = %e, "INET_DIAG dump failed");
        // A dump that failed half way may leave messages behind: a new socket next time.
        st.diag = None;
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
