//! Random packet loss with nftables inside a namespace (no netem in this kernel).
//!
//! The drop happens at the receiver's `input` hook, i.e. at ingress: an egress drop would be
//! reported back to the sending TCP, which resends without counting a retransmission.
use crate::netns::Netns;

const TABLE: &str = "guardian_test";

/// Drops about `percent` % of the TCP packets to `port` arriving in `ns` (the receiver), and
/// counts the drops. Replaces an earlier rule set made by this helper in the namespace.
pub fn drop_random_tcp(ns: &Netns, port: u16, percent: u8) {
    assert!(percent <= 100);
    let script = format!(
        "table inet {TABLE}\n\
         delete table inet {TABLE}\n\
         table inet {TABLE} {{\n\
           chain input {{\n\
             type filter hook input priority 0; policy accept;\n\
             tcp dport {port} numgen random mod 100 < {percent} counter drop\n\
           }}\n\
         }}\n"
    );
    load(ns, &script);
}

/// Removes the helper's rules from the namespace.
pub fn clear(ns: &Netns) {
    load(
        ns,
        &format!("table inet {TABLE}\ndelete table inet {TABLE}\n"),
    );
}

/// Packets dropped so far by [`drop_random_tcp`]'s rule (0 if there is none).
pub fn dropped(ns: &Netns) -> u64 {
    let out = ns.output(&["nft", "list", "table", "inet", TABLE]);
    if !out.status.success() {
        return 0;
    }
    parse_counter_packets(&String::from_utf8_lossy(&out.stdout))
}

fn parse_counter_packets(text: &str) -> u64 {
    text.split("counter packets ")
        .skip(1)
        .filter_map(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Loads an nftables script in `ns` (`nft -f -`); panics with nft's error and the script.
pub fn load(ns: &Netns, script: &str) {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = ns
        .command("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn nft (apt-get install nftables): {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .expect("write nft script");
    let out = child.wait_with_output().expect("wait nft");
    assert!(
        out.status.success(),
        "nft in {} failed: {}\nscript:\n{script}",
        ns.name(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_counters() {
        let t = "table inet t {\n chain input {\n  tcp dport 5001 numgen random mod 100 < 3 \
                 counter packets 42 bytes 6300 drop\n }\n}\n";
        assert_eq!(super::parse_counter_packets(t), 42);
        assert_eq!(super::parse_counter_packets("table inet t {}"), 0);
    }
}
