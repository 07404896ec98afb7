//! Who owns a route, from its protocol (`rtm_protocol`): names from `/etc/iproute2/rt_protos`
//! and `rt_protos.d/*.conf` (iproute2's own defaults when absent), and the ownership classes
//! guardian acts on (docs/remedies.md, "Routes: what is restored").
use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// iproute2's `rt_protos` (6.1), used when the files are absent or silent on a number.
const DEFAULTS: &[(u8, &str)] = &[
    (0, "unspec"),
    (1, "redirect"),
    (2, "kernel"),
    (3, "boot"),
    (4, "static"),
    (8, "gated"),
    (9, "ra"),
    (10, "mrt"),
    (11, "zebra"),
    (12, "bird"),
    (13, "dnrouted"),
    (14, "xorp"),
    (15, "ntk"),
    (16, "dhcp"),
    (17, "mrouted"),
    (18, "keepalived"),
    (42, "babel"),
    (99, "openr"),
    (186, "bgp"),
    (187, "isis"),
    (188, "ospf"),
    (189, "rip"),
    (192, "eigrp"),
];

const FILES: &[&str] = &["/etc/iproute2/rt_protos", "/usr/share/iproute2/rt_protos"];
const DIRS: &[&str] = &[
    "/etc/iproute2/rt_protos.d",
    "/usr/share/iproute2/rt_protos.d",
];

/// Reads `NUMBER NAME` lines (`#` comments), as iproute2 does; later lines win.
fn parse(text: &str, into: &mut BTreeMap<u8, String>) {
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let (Some(num), Some(name)) = (words.next(), words.next()) else {
            continue;
        };
        let num = match num.strip_prefix("0x") {
            Some(hex) => u8::from_str_radix(hex, 16).ok(),
            None => num.parse::<u8>().ok(),
        };
        if let Some(n) = num {
            into.insert(n, name.to_string());
        }
    }
}

fn table() -> &'static BTreeMap<u8, String> {
    static T: OnceLock<BTreeMap<u8, String>> = OnceLock::new();
    T.get_or_init(|| {
        let mut t: BTreeMap<u8, String> =
            DEFAULTS.iter().map(|(n, s)| (*n, s.to_string())).collect();
        // /usr/share first, /etc overrides it (iproute2's order).
        for f in FILES.iter().rev() {
            if let Ok(s) = std::fs::read_to_string(f) {
                parse(&s, &mut t);
            }
        }
        for d in DIRS.iter().rev() {
            let Ok(rd) = std::fs::read_dir(d) else {
                continue;
            };
            let mut files: Vec<_> = rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "conf"))
                .collect();
            files.sort();
            for f in files {
                if let Ok(s) = std::fs::read_to_string(f) {
                    parse(&s, &mut t);
                }
            }
        }
        t
    })
}

/// The protocol's name (`bird`, `static`), or its number as text when nothing names it.
pub fn protocol_name(p: u8) -> String {
    table().get(&p).cloned().unwrap_or_else(|| p.to_string())
}

/// Who owns a route, by its protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Owner {
    /// `kernel`, `ra`, `redirect`: the kernel derives them (addresses, router advertisements,
    /// ICMP redirects); they come and go with their source. Not protected.
    Kernel,
    /// `unspec`, `boot`, `static`: set up by hand, by boot scripts or by a network manager's
    /// static configuration. Protected: restored when the kernel drops them.
    Configured,
    /// Every other protocol (`dhcp`, `keepalived`, `zebra`, `bird`, `bgp`, `ospf`, `babel`,
    /// any number nothing names...): a program that keeps its own intended state. Never
    /// restored; their loss is reported with the owner.
    ControlPlane,
}

/// The owner class of a protocol number.
pub fn owner(p: u8) -> Owner {
    match p {
        1 | 2 | 9 => Owner::Kernel,
        0 | 3 | 4 => Owner::Configured,
        _ => Owner::ControlPlane,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_parse_like_iproute2() {
        let mut t = BTreeMap::new();
        parse(
            "# comment\n12\tbird\n0x2a babel # inline\n\n300 toolarge\nbad line\n44 mine\n44 yours\n",
            &mut t,
        );
        assert_eq!(t.get(&12).map(String::as_str), Some("bird"));
        assert_eq!(t.get(&42).map(String::as_str), Some("babel"));
        assert_eq!(t.get(&44).map(String::as_str), Some("yours"));
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn names_and_owners() {
        assert_eq!(protocol_name(12), "bird");
        assert_eq!(protocol_name(4), "static");
        assert_eq!(protocol_name(186), "bgp");
        assert_eq!(protocol_name(251), "251");
        let cases = [
            (2, Owner::Kernel),
            (9, Owner::Kernel),
            (1, Owner::Kernel),
            (0, Owner::Configured),
            (3, Owner::Configured),
            (4, Owner::Configured),
            (16, Owner::ControlPlane),
            (18, Owner::ControlPlane),
            (11, Owner::ControlPlane),
            (12, Owner::ControlPlane),
            (186, Owner::ControlPlane),
            (188, Owner::ControlPlane),
            (251, Owner::ControlPlane),
        ];
        for (p, want) in cases {
            assert_eq!(owner(p), want, "protocol {p}");
        }
    }
}
