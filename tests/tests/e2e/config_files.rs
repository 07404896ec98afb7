//! The config files through the real binary: errors are one sentence naming the file, line
//! and key with exit 78 and nothing attached; usage errors exit 2, missing privileges 77;
//! values from the file take effect and flags override them; JSON logs.
use std::process::{Command, Output};
use std::time::Duration;

use guardian_tests::*;

fn run(args: &[&str]) -> Output {
    Command::new(guardian_bin())
        .args(args)
        .output()
        .expect("run guardian")
}

fn one_sentence(out: &Output, code: i32) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    for bad in ["panicked", "backtrace"] {
        assert!(!stderr.contains(bad), "{stderr}");
    }
    stderr
}

#[test]
fn config_mistakes_exit_78_naming_file_line_and_key() {
    require_root();
    let dir = TempDir::new("cfgerr");
    let main = dir.path().join("guardian.toml");
    let m = main.to_str().unwrap();
    let cases: &[(&str, &str)] = &[
        (
            "[safety]\nmax_targets = 0\n",
            ":2:15: safety.max_targets: expected at least 1",
        ),
        (
            "[daemon]\nmode = \"on\"\n",
            ":2:8: daemon.mode: unknown variant `on`",
        ),
        (
            "[metrics]\nlisten = \"10.1.2.3:9464\"\n",
            ":2:10: metrics.listen: 10.1.2.3:9464 is not a loopback address",
        ),
        (
            "[interfaces]\nxdp = [\"no/such\"]\n",
            ":2:7: interfaces.xdp: \"no/such\" is not an interface name",
        ),
        ("[bogus]\n", ":1:2: bogus: unknown field `bogus`"),
    ];
    for (text, want) in cases {
        std::fs::write(&main, text).unwrap();
        let err = one_sentence(&run(&["run", "--config", m]), 78);
        assert!(
            err.starts_with(&format!("guardian: {m}{want}")),
            "{text:?}: {err}"
        );
    }
    // A bad drop-in is named, not the main file.
    std::fs::write(&main, "[safety]\nmax_targets = 3\n").unwrap();
    std::fs::create_dir_all(dir.path().join("guardian.d")).unwrap();
    let drop_in = dir.path().join("guardian.d/50-local.toml");
    std::fs::write(&drop_in, "[log]\nformat = \"xml\"\n").unwrap();
    let err = one_sentence(&run(&["run", "--config", m]), 78);
    assert!(
        err.contains(&format!("{}:2:10: log.format", drop_in.display())),
        "{err}"
    );
    std::fs::remove_file(&drop_in).unwrap();
    // A missing explicit file.
    let missing = dir.path().join("nope.toml");
    let err = one_sentence(&run(&["run", "--config", missing.to_str().unwrap()]), 78);
    assert!(
        err.contains("nope.toml: cannot read it: No such file or directory"),
        "{err}"
    );
    // Flags clap checks are usage errors.
    assert_eq!(run(&["run", "--log-format", "xml"]).status.code(), Some(2));
    assert_eq!(run(&["run", "--interval-ms", "5"]).status.code(), Some(2));
    // Without privileges: 77 before anything is read.
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(guardian_bin())
        .args(["run", "--config", m])
        .output()
        .unwrap();
    one_sentence(&out, 77);
    let progs = Command::new("bpftool")
        .args(["prog", "show"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&progs.stdout).contains("guardian_xdp"));
}

#[test]
fn a_taken_metrics_port_is_a_config_error_before_attaching() {
    require_root();
    let a = Netns::new("cfg-port");
    let holder = in_netns(&a, || {
        let l = std::net::TcpListener::bind("127.0.0.1:9464").unwrap();
        std::thread::sleep(Duration::from_secs(8));
        drop(l);
    });
    std::thread::sleep(Duration::from_millis(200));
    let out = Command::new("nsenter")
        .arg(format!("--net={}", a.path().display()))
        .arg("--")
        .arg(guardian_bin())
        .args(["run", "--events", "/dev/null"])
        .output()
        .unwrap();
    let err = one_sentence(&out, 78);
    assert!(
        err.contains("metrics.listen: cannot listen on 127.0.0.1:9464: Address already in use"),
        "{err}"
    );
    holder.join().unwrap();
}

#[test]
fn file_values_apply_flags_override_and_logs_can_be_json() {
    require_root();
    let a = Netns::new("cfg-apply");
    let dir = TempDir::new("cfg-apply");
    let main = dir.path().join("guardian.toml");
    let state = dir.path().join("state");
    std::fs::write(
        &main,
        format!(
            "[daemon]\ninterval_ms = 150\nhost = \"cfg-host\"\nstate_dir = \"{}\"\n[log]\nformat = \"json\"\n[metrics]\nenabled = false\n",
            state.display()
        ),
    )
    .unwrap();
    let m = main.to_str().unwrap();
    let _churn = churn(&a);
    let mut d = Daemon::start(&a, &["--config", m]);
    d.wait_attached();
    let c = d.wait_for(|e| is_type(e, "counters"), Duration::from_secs(10));
    assert_eq!(c["interval_ms"], 150, "{c}");
    assert_eq!(c["host"], "cfg-host", "{c}");
    d.finish();
    let stderr = std::fs::read_to_string(d.dir().join("stderr.log")).unwrap();
    let logs: Vec<&str> = stderr.lines().collect();
    assert!(!logs.is_empty(), "some log lines");
    for l in &logs {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v["level"].is_string() && v["ts"].is_string(), "{l}");
    }
    // The flag wins over the file.
    let mut d = Daemon::start(
        &a,
        &[
            "--config",
            m,
            "--interval-ms",
            "300",
            "--log-format",
            "human",
        ],
    );
    d.wait_attached();
    let c = d.wait_for(|e| is_type(e, "counters"), Duration::from_secs(10));
    assert_eq!(c["interval_ms"], 300, "{c}");
    d.finish();
    let stderr = std::fs::read_to_string(d.dir().join("stderr.log")).unwrap();
    assert!(stderr.lines().all(|l| !l.starts_with('{')), "{stderr}");
}
