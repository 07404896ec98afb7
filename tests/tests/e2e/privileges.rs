//! Capabilities: every thread of the running daemon holds exactly the capabilities it needs
//! (guardian::privileges::KEEP), in the effective, permitted and bounding sets, and none in
//! the inheritable and ambient sets. The heal tests prove those are enough.
use guardian_tests::*;

const SUBNET: u8 = 221;
/// CAP_DAC_READ_SEARCH 2, CAP_NET_ADMIN 12, CAP_SYS_PTRACE 19, CAP_SYS_ADMIN 21,
/// CAP_PERFMON 38, CAP_BPF 39.
const KEPT: u64 = 1 << 2 | 1 << 12 | 1 << 19 | 1 << 21 | 1 << 38 | 1 << 39;

fn field(status: &str, key: &str) -> u64 {
    let v = status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("{key} in {status}"));
    u64::from_str_radix(v.trim(), 16).unwrap()
}

#[test]
fn every_thread_keeps_only_what_guardian_needs() {
    require_root();
    let a = Netns::new("caps-a");
    let b = Netns::new("caps-b");
    let v = pair(&a, &b, SUBNET);
    let mut d = Daemon::start(&a, &["--xdp", &v.a_if, "--keep-up", &v.a_if]);
    d.wait_attached();
    let pid = d.pid().unwrap();
    let mut threads = 0;
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
        if status.is_empty() {
            continue; // exited meanwhile
        }
        threads += 1;
        let name = status.lines().next().unwrap_or_default().to_owned();
        for (key, want) in [
            ("CapEff:", KEPT),
            ("CapPrm:", KEPT),
            ("CapBnd:", KEPT),
            ("CapInh:", 0),
            ("CapAmb:", 0),
        ] {
            let got = field(&status, key);
            if got != want {
                d.fail(&format!(
                    "thread {name}: {key} {got:016x}, expected {want:016x}"
                ));
            }
        }
    }
    assert!(
        threads >= 2,
        "the runtime's threads were checked ({threads})"
    );
    eprintln!("capabilities: {threads} threads, each exactly {KEPT:016x}");
    d.finish();
}
