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
