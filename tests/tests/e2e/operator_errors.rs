//! Operator mistakes: one clear sentence on stderr, the documented exit code, no panic, and
//! nothing attached. Each case runs the real binary.
use std::process::{Command, Output};

use guardian_tests::*;

fn guardian(pre: &[&str], args: &[&str]) -> Output {
    let bin = guardian_bin();
    let mut cmd = if pre.is_empty() {
        Command::new(&bin)
    } else {
        let mut c = Command::new(pre[0]);
        c.args(&pre[1..]).arg(&bin);
        c
    };
    cmd.args(args).output().expect("run guardian")
}

/// Checks exit code and a one-line message containing `needle`, with no panic or backtrace.
fn expect(out: &Output, code: i32, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert!(stderr.contains(needle), "expected {needle:?} in: {stderr}");
    for bad in ["panicked", "backtrace", "RUST_BACKTRACE"] {
        assert!(!stderr.contains(bad), "{bad} in: {stderr}");
    }
    if code != 2 {
        // clap's usage errors carry a usage block; our own errors are one sentence.
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    }
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn mistakes_get_one_sentence_and_sysexits_codes() {
    require_root();
    let tmp = TempDir::new("operr");
    let unprivileged = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
    ];
    expect(
        &guardian(&unprivileged, &["run"]),
        77,
        "guardian needs root",
    );
    expect(
        &guardian(&[], &["run", "--xdp", "nosuch0"]),
        78,
        "interface nosuch0 named by --xdp does not exist in this network namespace",
    );
    expect(
        &guardian(&[], &["run", "--keep-up", "nosuch1"]),
        78,
        "interface nosuch1 named by --keep-up does not exist",
    );
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "[syn_flood]\nno_such_key = 3\n").unwrap();
    let out = guardian(&[], &["run", "--detect-config", bad.to_str().unwrap()]);
    expect(&out, 78, bad.to_str().unwrap());
    expect(&out, 78, "no_such_key");
    let missing = tmp.path().join("missing.toml");
    expect(
        &guardian(&[], &["run", "--detect-config", missing.to_str().unwrap()]),
        78,
        "missing.toml",
    );
    expect(&guardian(&[], &["run", "--mode", "bogus"]), 2, "bogus");
    expect(
        &guardian(&[], &["run", "--interval-ms", "0"]),
        2,
        "interval-ms",
    );
    expect(
        &guardian(&[], &["replay", missing.to_str().unwrap()]),
        65,
        "cannot read",
    );
    // Nothing of guardian's is left loaded after any of these.
    let progs = Command::new("bpftool")
        .args(["prog", "show"])
        .output()
        .unwrap();
    let progs = String::from_utf8_lossy(&progs.stdout);
    assert!(!progs.contains("guardian_xdp"), "{progs}");
}

/// Out-of-range values: `run` refuses them before attaching anything (exit 78, one sentence
/// naming file, line, column, key and range); `doctor` fails its config check with the same
/// sentence.
#[test]
fn out_of_range_values_are_refused_by_run_and_doctor() {
    require_root();
    let tmp = TempDir::new("operr-ranges");
    let cases = [
        (
            "ratio.toml",
            "[detect.retransmit_storm]\nratio = 7.5\n",
            ":2:9: detect.retransmit_storm.ratio: 7.5 is out of range; expected a fraction greater than 0 and at most 1",
        ),
        (
            "ports.toml",
            "[remedies.sysctl]\nip_local_port_range = [60000, 1000]\n",
            ":2:23: remedies.sysctl.ip_local_port_range: [60000, 1000] is out of range; expected [low, high] with 1 <= low < high <= 65535",
        ),
    ];
    for (name, text, tail) in cases {
        let cfg = tmp.path().join(name);
        std::fs::write(&cfg, text).unwrap();
        let path = cfg.to_str().unwrap();
        let sentence = format!("{path}{tail}");
        let out = guardian(&[], &["run", "--config", path]);
        expect(&out, 78, &format!("guardian: {sentence}"));
        let out = guardian(&[], &["doctor", "--json", "--config", path]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("doctor --json");
        let check = v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "config")
            .cloned()
            .unwrap_or_else(|| panic!("no config check: {v}"));
        assert_eq!(out.status.code(), Some(1), "{v}");
        assert_eq!(check["status"], "fail", "{check}");
        assert_eq!(check["detail"], sentence.as_str(), "{check}");
    }
    let progs = Command::new("bpftool")
        .args(["prog", "show"])
        .output()
        .unwrap();
    let progs = String::from_utf8_lossy(&progs.stdout);
    assert!(!progs.contains("guardian_xdp"), "{progs}");
}
