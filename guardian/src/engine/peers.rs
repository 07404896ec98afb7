//! Protected peers (`safety.protected_sources`): the sources no XDP limit ever applies to.
//! The keywords stand for what the host itself trusts, read from the live system: `gateways`
//! (every gateway in every route table), `resolvers` (`nameserver` lines of resolv.conf),
//! `local` (the host's own addresses), `handshaking` (peers that completed a passive
//! handshake in the last [`HANDSHAKE_WINDOW`]); anything else is an address or a prefix.
//! Building the set is pure ([`Protected::build`]); the readers of the live system are thin.
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use crate::model::AddrCount;

/// The keywords of `safety.protected_sources`, in their order in the defaults.
pub const KEYWORDS: [&str; 4] = ["gateways", "resolvers", "local", "handshaking"];

/// A peer that completed a handshake this recently is `handshaking` (the XDP program's
/// good-source window, `guardian_common::limits::GOOD_SOURCE_NS`).
pub const HANDSHAKE_WINDOW: Duration =
    Duration::from_nanos(guardian_common::limits::GOOD_SOURCE_NS);

/// At most this many handshaking peers are remembered (the kernel's per-peer map size).
const MAX_PEERS: usize = 65_536;

/// What `safety.protected_sources` entry `s` means: a keyword or a network; the sentence for
/// the operator when it is neither.
pub fn parse_entry(s: &str) -> Result<Option<IpNet>, String> {
    if KEYWORDS.contains(&s) {
        return Ok(None);
    }
    if let Ok(n) = s.parse::<IpNet>() {
        return Ok(Some(n));
    }
    if let Ok(a) = s.parse::<IpAddr>() {
        return Ok(Some(IpNet::from(a)));
    }
    Err(format!(
        "safety.protected_sources: {s:?} is not an address, a prefix like 10.0.0.0/8, or one of {}",
        KEYWORDS.join(", ")
    ))
}

/// The live inputs of the keywords.
#[derive(Debug, Clone, Default)]
pub struct Live {
    pub gateways: Vec<IpAddr>,
    pub resolvers: Vec<IpAddr>,
    pub local: Vec<IpAddr>,
    pub handshaking: Vec<IpAddr>,
}

/// The protected networks, each with why it is protected.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Protected {
    nets: Vec<(IpNet, String)>,
}

impl Protected {
    /// The set `entries` (validated config) stands for, given the live system.
    pub fn build(entries: &[String], live: &Live) -> Self {
        let mut nets = Vec::new();
        let add = |nets: &mut Vec<(IpNet, String)>, addrs: &[IpAddr], why: &str| {
            nets.extend(
                addrs
                    .iter()
                    .map(|a| (IpNet::from(a.to_canonical()), why.to_string())),
            )
        };
        for e in entries {
            match e.as_str() {
                "gateways" => add(&mut nets, &live.gateways, "a gateway in the route tables"),
                "resolvers" => add(&mut nets, &live.resolvers, "a resolver in resolv.conf"),
                "local" => add(&mut nets, &live.local, "a local address"),
                "handshaking" => add(
                    &mut nets,
                    &live.handshaking,
                    "a peer that recently completed handshakes",
                ),
                _ => {
                    if let Ok(Some(n)) = parse_entry(e) {
                        nets.push((n, format!("in {n}")));
                    }
                }
            }
        }
        Protected { nets }
    }

    /// Why `addr` is protected, if it is.
    pub fn why(&self, addr: IpAddr) -> Option<&str> {
        let a = addr.to_canonical();
        self.nets
            .iter()
            .find(|(n, _)| n.contains(&a))
            .map(|(_, w)| w.as_str())
    }

    /// Every protected network (for the XDP program's bypass map).
    pub fn nets(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.nets.iter().map(|(n, _)| n.trunc())
    }
}

/// Peers whose cumulative handshake count grew recently (from the flow samples'
/// `established_by_source`).
#[derive(Debug, Default)]
pub struct Peers {
    last: HashMap<IpAddr, (u64, Instant)>,
}

impl Peers {
    /// Takes a sample; true when a peer that was not recent became so.
    pub fn observe(&mut self, counts: &[AddrCount], now: Instant) -> bool {
        let mut new = false;
        for c in counts {
            let Ok(a) = c.addr.parse::<IpAddr>() else {
                continue;
            };
            let a = a.to_canonical();
            match self.last.get_mut(&a) {
                Some((n, t)) if c.count > *n => {
                    new |= now.saturating_duration_since(*t) >= HANDSHAKE_WINDOW;
                    *n = c.count;
                    *t = now;
                }
                Some(_) => {}
                None if c.count > 0 => {
                    self.last.insert(a, (c.count, now));
                    new = true;
                }
                None => {}
            }
        }
        if self.last.len() > MAX_PEERS {
            self.last
                .retain(|_, (_, t)| now.saturating_duration_since(*t) < HANDSHAKE_WINDOW);
        }
        new
    }

    /// Peers that completed a handshake within [`HANDSHAKE_WINDOW`] of `now`.
    pub fn recent(&self, now: Instant) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self
            .last
            .iter()
            .filter(|(_, (_, t))| now.saturating_duration_since(*t) < HANDSHAKE_WINDOW)
            .map(|(a, _)| *a)
            .collect();
        v.sort_unstable();
        v
    }
}

/// `nameserver` addresses of a resolv.conf text (scoped IPv6 `%eth0` suffixes dropped).
pub fn resolvers(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next()? == "nameserver").then_some(())?;
            w.next()?.split('%').next()?.parse().ok()
        })
        .collect()
}

/// The gateways of every route in every table of the daemon's namespace (multipath next hops
/// included); empty when the dump fails (logged).
pub fn live_gateways() -> Vec<IpAddr> {
    use netlink_packet_core::{NLM_F_DUMP, NLM_F_REQUEST};
    use netlink_packet_route::route::{RouteAttribute, RouteMessage, RouteVia};
    use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

    let mut out = Vec::new();
    for family in [AddressFamily::Inet, AddressFamily::Inet6] {
        let mut m = RouteMessage::default();
        m.header.address_family = family;
        let replies = match crate::netlink::sync::request(
            RouteNetlinkMessage::GetRoute(m),
            NLM_F_REQUEST | NLM_F_DUMP,
        ) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "protected sources: route dump failed");
                continue;
            }
        };
        let mut of = |attrs: &[RouteAttribute]| {
            for a in attrs {
                match a {
                    RouteAttribute::Gateway(g) => {
                        if let Some(ip) = route_addr(g) {
                            out.push(ip);
                        }
                    }
                    RouteAttribute::Via(RouteVia::Inet(v4)) => out.push(IpAddr::V4(*v4)),
                    RouteAttribute::Via(RouteVia::Inet6(v6)) => out.push(IpAddr::V6(*v6)),
                    _ => {}
                }
            }
        };
        for r in replies {
            let RouteNetlinkMessage::NewRoute(r) = r else {
                continue;
            };
            of(&r.attributes);
            for a in &r.attributes {
                if let RouteAttribute::MultiPath(hops) = a {
                    for h in hops {
                        of(&h.attributes);
                    }
                }
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn route_addr(a: &netlink_packet_route::route::RouteAddress) -> Option<IpAddr> {
    use netlink_packet_route::route::RouteAddress;
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// The addresses of the daemon's namespace's interfaces.
pub fn live_local() -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut v: Vec<IpAddr> = addrs
        .filter_map(|i| {
            let a = i.address?;
            if let Some(s) = a.as_sockaddr_in() {
                return Some(IpAddr::V4(s.ip()));
            }
            a.as_sockaddr_in6().map(|s| IpAddr::V6(s.ip()))
        })
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn entries_are_keywords_addresses_or_prefixes() {
        assert_eq!(parse_entry("gateways"), Ok(None));
        assert_eq!(
            parse_entry("10.0.0.0/8"),
            Ok(Some("10.0.0.0/8".parse().unwrap()))
        );
        assert_eq!(
            parse_entry("fd00::1"),
            Ok(Some("fd00::1/128".parse().unwrap()))
        );
        for bad in ["10.0.0.300/8", "10.0.0.0/33", "gateway", "", "::/129"] {
            let e = parse_entry(bad).unwrap_err();
            assert!(
                e.starts_with("safety.protected_sources: ") && e.contains(&format!("{bad:?}")),
                "{e}"
            );
        }
    }

    #[test]
    fn each_keyword_protects_its_live_addresses_and_only_when_listed() {
        let live = Live {
            gateways: vec![ip("10.1.0.1")],
            resolvers: vec![ip("10.2.0.53")],
            local: vec![ip("10.3.0.2")],
            handshaking: vec![ip("10.4.0.9")],
        };
        let all: Vec<String> = KEYWORDS.iter().map(|s| s.to_string()).collect();
        let p = Protected::build(&all, &live);
        assert!(p.why(ip("10.1.0.1")).unwrap().contains("gateway"));
        assert!(p.why(ip("10.2.0.53")).unwrap().contains("resolver"));
        assert!(p.why(ip("10.3.0.2")).unwrap().contains("local"));
        assert!(p.why(ip("10.4.0.9")).unwrap().contains("handshakes"));
        assert!(p.why(ip("::ffff:10.1.0.1")).is_some(), "v4-mapped");
        assert_eq!(p.why(ip("10.1.0.2")), None);
        let only_gw = Protected::build(&["gateways".into()], &live);
        assert!(only_gw.why(ip("10.1.0.1")).is_some());
        assert_eq!(only_gw.why(ip("10.4.0.9")), None, "handshaking not listed");
        let cidr = Protected::build(&["192.0.2.0/24".into()], &Live::default());
        assert_eq!(cidr.why(ip("192.0.2.77")), Some("in 192.0.2.0/24"));
        assert_eq!(cidr.why(ip("192.0.3.1")), None);
    }

    #[test]
    fn resolv_conf_nameservers() {
        let t = "# c\nsearch x\nnameserver 10.0.0.53\nnameserver fe80::1%eth0\n nameserver bad\n";
        assert_eq!(resolvers(t), vec![ip("10.0.0.53"), ip("fe80::1")]);
    }

    #[test]
    fn handshaking_peers_are_those_whose_count_grew_recently() {
        let t0 = Instant::now();
        let c = |a: &str, n| AddrCount {
            addr: a.into(),
            count: n,
        };
        let mut p = Peers::default();
        assert!(p.observe(&[c("10.0.0.1", 5), c("10.0.0.2", 0)], t0));
        assert!(!p.observe(&[c("10.0.0.1", 6)], t0), "already recent");
        assert_eq!(p.recent(t0), vec![ip("10.0.0.1")]);
        let later = t0 + HANDSHAKE_WINDOW + Duration::from_secs(1);
        p.observe(&[c("10.0.0.1", 5)], later);
        assert!(p.recent(later).is_empty(), "no new handshake in the window");
        assert!(p.observe(&[c("10.0.0.1", 7)], later), "recent again");
        assert_eq!(p.recent(later), vec![ip("10.0.0.1")]);
    }

    #[test]
    fn the_live_readers_answer_in_this_namespace() {
        assert!(live_local().contains(&ip("127.0.0.1")));
        let _ = live_gateways();
    }
}
