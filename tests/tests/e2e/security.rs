//! Security policy checks that need no privileges: the daemon never starts a process (no
//! shell-outs, so no interpolated input can reach a shell); only the fault lab, a separate crate
//! and binary (guardian-lab), runs fixed commands (`ip`, `tc`, `nsenter`, hping3) with argument
//! vectors. The control socket's mode and peer-credential checks are in control.rs, the
//! metrics loopback rule in guardian's config tests, capabilities in privileges.rs.
use std::path::Path;

fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn the_daemon_starts_no_processes() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guardian/src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    assert!(
        files.len() > 50,
        "found guardian's sources: {}",
        files.len()
    );
    let mut offenders = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let text = std::fs::read_to_string(f).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            if [
                "Command::new",
                "process::Command",
                "execv",
                "libc::system",
                "\"sh\"",
            ]
            .iter()
            .any(|p| code.contains(p))
            {
                offenders.push(format!("{}:{}: {}", rel.display(), i + 1, line.trim()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "the daemon must not start processes:\n{}",
        offenders.join("\n")
    );
}
