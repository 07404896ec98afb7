//! What a planned change touches. The safety rules (`engine::safety::check_plan`) match on
//! [`Target`] exhaustively: a new kind does not compile until the rules say how to check it.
//!
//! A target displays as `kind:name` (`iface:eth0`, `route:10.9.0.0/24`, `route:default`,
//! `sysctl:net.ipv4.tcp_tw_reuse`, `src:10.0.0.7`, `port:80`, `dst:10.77.110.2`): that is how
//! budgets key their subjects and how refusals name them. Wildcards (`port:0`, `src:0.0.0.0`,
//! `route:::/0`, `iface:*` …) stay representable, so the rules can still refuse them.
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

/// One concrete thing a change touches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// A network interface, by name.
    Iface(String),
    /// An existing route that the change replaces, re-adds or removes.
    Route(RouteDst),
    /// A route that is gone and is added back as it was (`route_restore`): not a change to
    /// an existing route, so protected prefixes do not refuse it. Displays as
    /// `route:<key>` with the route's full key (family, prefix, table, nexthop).
    RestoreRoute { dst: RouteDst, key: String },
    /// A sysctl key, e.g. `net.ipv4.tcp_tw_reuse`.
    Sysctl(String),
    /// A source address (limits on what it sends).
    Src(IpAddr),
    /// A local port (limits, socket destruction).
    Port(u16),
    /// A destination address (socket options toward it).
    Dst(IpAddr),
}

/// A route's destination: the default route, or a prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteDst {
    Default,
    /// `addr/prefix_len`, kept as given (no host bits cleared), like the kernel reports it.
    Prefix {
        addr: IpAddr,
        prefix_len: u8,
    },
}

impl RouteDst {
    /// The destination of a route as the kernel describes it: prefix length 0 is the default
    /// route.
    pub fn new(addr: IpAddr, prefix_len: u8) -> Self {
        if prefix_len == 0 {
            RouteDst::Default
        } else {
            RouteDst::Prefix { addr, prefix_len }
        }
    }

    /// The prefix; None for the default route and for a prefix length beyond the family's.
    pub fn net(&self) -> Option<IpNet> {
        match *self {
            RouteDst::Default => None,
            RouteDst::Prefix { addr, prefix_len } => IpNet::new(addr, prefix_len).ok(),
        }
    }
}

impl fmt::Display for RouteDst {
    /// `default`, `10.9.0.0/24`, `fd00:1::/64`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteDst::Default => f.write_str("default"),
            RouteDst::Prefix { addr, prefix_len } => write!(f, "{addr}/{prefix_len}"),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Iface(name) => write!(f, "iface:{name}"),
            Target::Route(dst) => write!(f, "route:{dst}"),
            Target::RestoreRoute { key, .. } => write!(f, "route:{key}"),
            Target::Sysctl(key) => write!(f, "sysctl:{key}"),
            Target::Src(addr) => write!(f, "src:{addr}"),
            Target::Port(port) => write!(f, "port:{port}"),
            Target::Dst(addr) => write!(f, "dst:{addr}"),
        }
    }
}

/// Tests compare targets with their display, e.g. `assert_eq!(p.targets, ["port:80"])`.
#[cfg(test)]
impl PartialEq<&str> for Target {
    fn eq(&self, other: &&str) -> bool {
        let shown = self.to_string();
        shown == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_display_as_kind_colon_name() {
        let v4: IpAddr = "10.0.0.7".parse().unwrap();
        let v6: IpAddr = "fd00::7".parse().unwrap();
        let net = "10.9.0.0".parse().unwrap();
        for (t, want) in [
            (Target::Iface("eth0".into()), "iface:eth0"),
            (Target::Route(RouteDst::new(net, 24)), "route:10.9.0.0/24"),
            (Target::Route(RouteDst::new(net, 0)), "route:default"),
            (
                Target::RestoreRoute {
                    dst: RouteDst::new(net, 24),
                    key: "ipv4 10.9.0.0/24 table 254".into(),
                },
                "route:ipv4 10.9.0.0/24 table 254",
            ),
            (
                Target::Sysctl("net.ipv4.tcp_tw_reuse".into()),
                "sysctl:net.ipv4.tcp_tw_reuse",
            ),
            (Target::Src(v4), "src:10.0.0.7"),
            (Target::Src(v6), "src:fd00::7"),
            (Target::Port(80), "port:80"),
            (Target::Dst(v4), "dst:10.0.0.7"),
        ] {
            assert_eq!(t.to_string(), want);
        }
    }

    #[test]
    fn a_route_prefix_displays_and_parses_like_the_kernels() {
        let d = RouteDst::new("fd00:1::".parse().unwrap(), 64);
        assert_eq!(d.to_string(), "fd00:1::/64");
        assert_eq!(d.net(), Some("fd00:1::/64".parse().unwrap()));
        assert_eq!(
            RouteDst::new("10.0.0.0".parse().unwrap(), 0),
            RouteDst::Default
        );
        let bad = RouteDst::Prefix {
            addr: "10.0.0.0".parse().unwrap(),
            prefix_len: 33,
        };
        assert_eq!(bad.net(), None);
    }
}
