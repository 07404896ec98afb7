//! A veth pair between two namespaces, addressed in `10.77.<subnet>.0/24` and up.
use std::net::Ipv4Addr;
use std::time::Duration;

use crate::{host_ip, wait, Error, NetNs, Result};

/// A veth pair: `<prefix><subnet>a` in namespace A, `<prefix><subnet>b` in B.
#[derive(Debug, Clone)]
pub struct Veth {
    /// Interface name in namespace A.
    pub a_if: String,
    /// Interface name in namespace B.
    pub b_if: String,
    /// `10.77.<subnet>.1`, on A's end.
    pub a_addr: Ipv4Addr,
    /// `10.77.<subnet>.2`, on B's end.
    pub b_addr: Ipv4Addr,
    pub prefix_len: u8,
}

/// Creates a veth pair `<ifprefix><subnet>a` (in `a`) ↔ `<ifprefix><subnet>b` (in `b`) with
/// addresses 10.77.`subnet`.1/24 and .2/24, brings both ends and the loopbacks up and waits (5 s
/// at most) until both ends are operationally up. Both ends are created directly inside their
/// namespaces: nothing appears in the host's. Give every concurrent pair its own `subnet`.
pub fn pair(a: &NetNs, b: &NetNs, ifprefix: &str, subnet: u8) -> Result<Veth> {
    let v = Veth {
        a_if: format!("{ifprefix}{subnet}a"),
        b_if: format!("{ifprefix}{subnet}b"),
        a_addr: Ipv4Addr::new(10, 77, subnet, 1),
        b_addr: Ipv4Addr::new(10, 77, subnet, 2),
        prefix_len: 24,
    };
    if v.a_if.len() > 15 {
        return Err(Error::Other(format!(
            "interface name {} is longer than 15 bytes",
            v.a_if
        )));
    }
    host_ip(&[
        "link",
        "add",
        &v.a_if,
        "netns",
        a.name(),
        "type",
        "veth",
        "peer",
        "name",
        &v.b_if,
        "netns",
        b.name(),
    ])?;
    for (ns, ifname, addr) in [(a, &v.a_if, v.a_addr), (b, &v.b_if, v.b_addr)] {
        let cidr = format!("{addr}/{}", v.prefix_len);
        ns.run(&["ip", "addr", "add", &cidr, "dev", ifname])?;
        ns.run(&["ip", "link", "set", "lo", "up"])?;
        ns.link_set(ifname, true)?;
    }
    for (ns, ifname) in [(a, &v.a_if), (b, &v.b_if)] {
        if !wait(Duration::from_secs(5), || ns.oper_up(ifname)) {
            return Err(Error::Other(format!(
                "{ifname} in {} did not come up",
                ns.name()
            )));
        }
    }
    Ok(v)
}
