//! `guardian completions bash`: the script the package installs is sourced by a real bash, and
//! its completion of `guardian ` offers the subcommands (and of `guardian run --log-`, the flag).
use std::process::Command;

use guardian_tests::*;

#[test]
fn bash_completion_sources_and_completes_subcommands() {
    let out = Command::new(guardian_bin())
        .args(["completions", "bash"])
        .output()
        .expect("run guardian completions bash");
    assert!(out.status.success(), "{out:?}");
    let dir = std::env::temp_dir().join(format!("gt-compl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("guardian.bash");
    std::fs::write(&path, &out.stdout).unwrap();
    let probe = format!(
        "set -e; source {}; complete -p guardian; \
         COMP_WORDS=(guardian \"\"); COMP_CWORD=1; COMP_LINE='guardian '; COMP_POINT=9; \
         _guardian guardian '' guardian; echo \"${{COMPREPLY[@]}}\"; \
         COMP_WORDS=(guardian run --log-); COMP_CWORD=2; COMP_LINE='guardian run --log-'; \
         COMP_POINT=19; _guardian guardian --log- run; echo \"${{COMPREPLY[@]}}\"",
        path.display()
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &probe])
        .output()
        .expect("run bash");
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = stdout.lines();
    assert!(lines.next().unwrap().contains("_guardian"), "{stdout}");
    let subcommands = lines.next().unwrap();
    for c in ["run", "doctor", "status", "rollback", "config"] {
        assert!(
            subcommands.split(' ').any(|w| w == c),
            "{c} in {subcommands}"
        );
    }
    assert!(lines.next().unwrap().contains("--log-format"), "{stdout}");
}
