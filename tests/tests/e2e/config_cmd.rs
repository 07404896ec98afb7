//! `guardian config check|dump` as user nobody (no privileges at all): a bad file gets the very
//! sentence `guardian run` prints for it and exit 78, a good one exit 0 and one line; the dump
//! has every default, and dumping the dump gives the same text.
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use guardian_tests::*;

fn as_nobody(bin: &Path, args: &[&str]) -> Output {
    Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
        ])
        .arg(bin)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("setpriv")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn check_and_dump_run_as_nobody_with_runs_sentences() {
    require_root();
    let dir = TempDir::new("cfgcmd");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // A copy nobody can execute (the build tree may not be traversable for it).
    let bin = dir.path().join("guardian");
    std::fs::copy(guardian_bin(), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let write = |name: &str, body: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        p.to_str().unwrap().to_string()
    };

    // Bad files: an out-of-range value, an unknown key, a syntax error.
    for (name, body, key) in [
        (
            "range.toml",
            "[daemon]\nmode = \"enforce\"\n\n[detect.syn_flood]\nsyn_per_sec = -5\n",
            "detect.syn_flood.syn_per_sec",
        ),
        (
            "unknown.toml",
            "[safety]\nmax_targets = 3\nno_such_key = 1\n",
            "no_such_key",
        ),
        ("syntax.toml", "[daemon\nmode = 1\n", ""),
    ] {
        let bad = write(name, body);
        let out = as_nobody(&bin, &["config", "check", &bad]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{name}: {err}");
        assert!(out.stdout.is_empty(), "{name}: {}", text(&out.stdout));
        assert_eq!(err.trim_end().lines().count(), 1, "{name}: one line: {err}");
        assert!(
            err.starts_with(&format!("guardian: {bad}:")),
            "{name}: {err}"
        );
        assert!(err.contains(key), "{name}: {key} in {err}");
        // The same sentence and code as `run` (as root, stopped before anything is attached).
        let run = Command::new(guardian_bin())
            .args(["run", "--config", &bad])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(run.status.code(), Some(78), "{name}: run");
        assert_eq!(text(&run.stderr), err, "{name}: run's sentence");
    }

    // A good file, with a drop-in.
    let good = write(
        "good.toml",
        "[daemon]\nmode = \"enforce\"\n\n[detect.syn_flood]\nsyn_per_sec = 900\n",
    );
    std::fs::create_dir(dir.path().join("good.d")).unwrap();
    std::fs::set_permissions(
        dir.path().join("good.d"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let drop_in = write("good.d/10-safety.toml", "[safety]\nmax_targets = 3\n");
    let out = as_nobody(&bin, &["config", "check", &good]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("config ok: {good}, {drop_in}\n"));

    // The dump: the files' values, every default, and a fixed point.
    let out = as_nobody(&bin, &["config", "dump", &good]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let dump = text(&out.stdout);
    for line in [
        "mode = \"enforce\"",
        "syn_per_sec = 900.0",
        "max_targets = 3",
        "verify_timeout_ms = 2000",
        "state_dir = \"/var/lib/guardian\"",
        "[detect.connect_timeout_cascade]",
    ] {
        assert!(dump.lines().any(|l| l == line), "{line:?} in:\n{dump}");
    }
    let again = write("dump.toml", &dump);
    let out = as_nobody(&bin, &["config", "check", &again]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = as_nobody(&bin, &["config", "dump", &again]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), dump, "dumping the dump gives the same");
}
