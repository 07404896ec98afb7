//! `dns_spoofing_suspected` (issue #18 item 3): answers nobody asked for. A real resolver
//! (dnsmasq) answers the client's queries (matched: nothing opens); then a python3 script
//! on another address of the link sends forged answers (from port 53, ids nobody used) to the
//! client. The fault opens for that source with exactly the number of answers the script
//! sent, never for the resolver, and clears once they stop.
use std::net::SocketAddr;
use std::time::Duration;

use guardian_tests::dns::query_paced;
use guardian_tests::flows::{detect_config, is_fault_on};
use guardian_tests::*;

const SUBNET: u8 = 244;
const FORGED: u64 = 10;

/// Sends `n` DNS answers (QR = 1, NOERROR) with ids 0x5a00.. from `src`:53 to `dst`:`port`.
const FORGER: &str = r#"
import socket, struct, sys
src, dst, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((src, 53))
q = b"\x08guardian\x04test\x00\x00\x01\x00\x01"
for i in range(n):
    s.sendto(struct.pack(">HHHHHH", 0x5a00 + i, 0x8180, 1, 0, 0, 0) + q, (dst, port))
print(n)
"#;

#[test]
fn forged_answers_open_dns_spoofing_suspected_for_their_source_only() {
    require_root();
    let c = Netns::new("dsp-c");
    let s = Netns::new("dsp-s");
    let v = pair(&c, &s, SUBNET);
    let forger = format!("10.77.{SUBNET}.3");
    s.run(&["ip", "addr", "add", &format!("{forger}/24"), "dev", &v.b_if]);
    let resolver = v.b_addr.to_string();
    s.spawn(&[
        "dnsmasq",
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--bind-interfaces",
        &format!("--listen-address={resolver}"),
        "--address=/guardian.test/10.0.0.1",
        "--pid-file=",
        "--log-facility=-",
    ]);
    let dir = TempDir::new("dsp");
    let cfg = detect_config(
        &dir,
        "[dns_spoofing_suspected]\nwindow_ms = 3000\nclear_after_ms = 300\nupdate_every_ms = 200\n",
    );
    let mut d = Daemon::start(
        &c,
        &[
            "--interval-ms",
            "100",
            "--xdp",
            &v.a_if,
            "--detect-config",
            cfg.to_str().unwrap(),
        ],
    );
    let attached = d.wait_attached();
    guardian_tests::dns::answers_are_counted_at_xdp(&attached, &d, &c, &v.a_if);
    let cn = c.inode();
    // Real queries, answered by dnsmasq: every answer matches its query.
    let server = SocketAddr::from((v.b_addr, 53));
    let mut paced = None;
    for _ in 0..20 {
        let p = query_paced(
            &c,
            server,
            50,
            Duration::from_millis(600),
            Duration::from_millis(300),
        )
        .join()
        .unwrap();
        if p.answered() > 0 {
            paced = Some(p);
            break;
        }
        std::thread::sleep(Duration::from_millis(200)); // dnsmasq still starting
    }
    let p = paced.expect("dnsmasq answers");
    assert_eq!(p.rcodes[0], p.answered(), "NOERROR answers");
    assert!(
        p.answered() >= 20,
        "{} of {} answered",
        p.answered(),
        p.sent
    );
    std::thread::sleep(Duration::from_millis(500));
    // The forged answers, from an address the client never asked.
    let dst = v.a_addr.to_string();
    let sent = s.run(&[
        "python3",
        "-c",
        FORGER,
        &forger,
        &dst,
        "40053",
        &FORGED.to_string(),
    ]);
    assert_eq!(sent.trim(), FORGED.to_string());
    let (_, ev) = d.wait_for_after(
        0,
        |e| {
            ["opened", "updated"]
                .iter()
                .any(|st| is_fault_on(e, "dns_spoofing_suspected", st, cn, Some(&forger), Some(53)))
                && e["evidence"]["total"] == FORGED
        },
        Duration::from_secs(8),
    );
    eprintln!("{ev}");
    assert_eq!(ev["evidence"]["unmatched"], FORGED, "{ev}");
    d.wait_for_after(
        0,
        |e| {
            is_fault_on(
                e,
                "dns_spoofing_suspected",
                "cleared",
                cn,
                Some(&forger),
                Some(53),
            )
        },
        Duration::from_secs(8),
    );
    let events = d.finish();
    let resolver_faults: Vec<_> = events
        .iter()
        .filter(|e| {
            e["fault"] == "dns_spoofing_suspected" && e["subject"]["addr"] == resolver.as_str()
        })
        .collect();
    assert!(resolver_faults.is_empty(), "{resolver_faults:?}");
}
