//! The engine's safety rules end to end, with link_up as the remedy: budgets, protected
//! interfaces, the ladder's confidence floor, and `guardian rollback` by hand.
use std::process::Command;
use std::time::Duration;

use guardian_tests::truth::admin_up;
use guardian_tests::*;
use serde_json::Value;

fn start(ns: &Netns, state: &TempDir, iface: &str, config: Option<&str>) -> Daemon {
    let dir = state.path().to_str().unwrap().to_owned();
    let mut args = vec!["--mode", "enforce", "--state-dir", &dir, "--keep-up", iface];
    let cfg_path = state.path().join("guardian.toml");
    let cfg = cfg_path.to_str().unwrap().to_owned();
    if let Some(text) = config {
        std::fs::write(&cfg_path, text).unwrap();
        args.extend(["--config", &cfg]);
    }
    let mut d = Daemon::start(ns, &args);
    d.wait_attached();
    d
}

fn link_up_event(d: &mut Daemon, from: usize, result: &'static str) -> Value {
    d.wait_for_after(
        from,
        move |e| is_remedy(e, "link_up", result),
        Duration::from_secs(5),
    )
    .1
}

#[test]
fn per_subject_budget_stops_the_third_heal_with_a_skipped_event() {
    require_root();
    let a = Netns::new("budget-a");
    let b = Netns::new("budget-b");
    let v = pair(&a, &b, 141);
    let state = TempDir::new("budget-state");
    let cfg = "[safety]\nper_subject_max = 2\nper_subject_cooldown_s = 0\n";
    let mut d = start(&a, &state, &v.a_if, Some(cfg));
    for round in 0..3 {
        let n = d.count();
        a.link_set(&v.a_if, false);
        if round < 2 {
            link_up_event(&mut d, n, "verified");
            assert!(admin_up(&a, &v.a_if), "round {round}: healed");
        } else {
            let e = link_up_event(&mut d, n, "skipped");
            let reason = str_field(&e, "reason").unwrap();
            assert!(reason.contains("per_subject_max"), "{reason}");
            assert!(!admin_up(&a, &v.a_if), "the budget held: link stays down");
        }
        // let the detector see the link up again before the next round
        if round < 2 {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    d.finish();
}

#[test]
fn a_protected_interface_is_never_touched() {
    require_root();
    let a = Netns::new("prot-a");
    let b = Netns::new("prot-b");
    let v = pair(&a, &b, 142);
    let state = TempDir::new("prot-state");
    let cfg = format!("[safety]\nprotected_interfaces = [\"{}\"]\n", v.a_if);
    let mut d = start(&a, &state, &v.a_if, Some(&cfg));
    let n = d.count();
    a.link_set(&v.a_if, false);
    let e = link_up_event(&mut d, n, "skipped");
    assert!(
        str_field(&e, "reason").unwrap().contains("is protected"),
        "{e}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(!admin_up(&a, &v.a_if));
    let events = d.finish();
    assert!(!events.iter().any(|e| is_remedy(e, "link_up", "applied")));
}

#[test]
fn a_remedy_below_the_confidence_floor_is_only_planned() {
    require_root();
    let a = Netns::new("conf-a");
    let b = Netns::new("conf-b");
    let v = pair(&a, &b, 143);
    let state = TempDir::new("conf-state");
    std::fs::write(
        state.path().join("ladder.json"),
        r#"{"link_down": {"link_up": {"success": 0, "failure": 5}}}"#,
    )
    .unwrap();
    let mut d = start(&a, &state, &v.a_if, None);
    let n = d.count();
    a.link_set(&v.a_if, false);
    let e = link_up_event(&mut d, n, "planned");
    assert_eq!(str_field(&e, "mode"), Some("enforce"));
    assert!(
        str_field(&e, "reason").unwrap().contains("min_confidence"),
        "{e}"
    );
    assert!(!admin_up(&a, &v.a_if));
    d.finish();
}

fn rollback(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(daemon::guardian_bin())
        .arg("rollback")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn rollback_by_hand_reverts_exactly_and_is_journaled() {
    require_root();
    let a = Netns::new("rb-a");
    let b = Netns::new("rb-b");
    let v = pair(&a, &b, 144);
    let state = TempDir::new("rb-state");
    let dir = state.path().to_str().unwrap().to_owned();
    let mut d = start(&a, &state, &v.a_if, None);
    let n = d.count();
    a.link_set(&v.a_if, false);
    let e = link_up_event(&mut d, n, "verified");
    let id = str_field(&e, "rollback_id").unwrap().to_owned();
    assert!(admin_up(&a, &v.a_if));

    // While the daemon runs, the state directory is its own (offline: no daemon answers on
    // this socket; through the daemon's socket see tests/tests/e2e/control.rs).
    let (code, _, err) = rollback(&[&id, "--state-dir", &dir, "--socket", "/nonexistent/g.sock"]);
    assert_ne!(code, 0);
    assert!(err.contains("stop it first"), "{err}");
    d.finish();

    // The link_up's inverse sets the link down again; rollback runs in the daemon's namespace.
    let out = a
        .command(daemon::guardian_bin().to_str().unwrap())
        .args(["rollback", &id, "--state-dir", &dir])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&id) && stdout.contains("reverted"),
        "{stdout}"
    );
    assert!(
        !admin_up(&a, &v.a_if),
        "reverted: link down as before the heal"
    );
    let journal = std::fs::read_to_string(state.path().join("journal.ndjson")).unwrap();
    let last: Value = serde_json::from_str(journal.lines().last().unwrap()).unwrap();
    assert_eq!(
        (last["id"].as_str(), last["phase"].as_str()),
        (Some(id.as_str()), Some("reverted"))
    );

    // Again: already over. Unknown ids too. --all with nothing open is fine.
    let (code, _, err) = rollback(&[&id, "--state-dir", &dir]);
    assert_eq!(code, 65, "{err}");
    assert!(err.contains("already over"), "{err}");
    let (code, _, err) = rollback(&["nope", "--state-dir", &dir]);
    assert_eq!(
        (code, err.trim()),
        (65, "guardian: no change nope in the journal")
    );
    let (code, out, _) = rollback(&["--all", "--state-dir", &dir]);
    assert_eq!((code, out.trim()), (0, "nothing to roll back"));
}

#[test]
fn rollback_refuses_a_change_made_in_another_namespace() {
    require_root();
    let a = Netns::new("rbns-a");
    let b = Netns::new("rbns-b");
    let v = pair(&a, &b, 145);
    let state = TempDir::new("rbns-state");
    let dir = state.path().to_str().unwrap().to_owned();
    let mut d = start(&a, &state, &v.a_if, None);
    let n = d.count();
    a.link_set(&v.a_if, false);
    let id = str_field(&link_up_event(&mut d, n, "verified"), "rollback_id")
        .unwrap()
        .to_owned();
    d.finish();
    // From the host namespace, the journaled ifindex would name another interface.
    let (code, _, err) = rollback(&[&id, "--state-dir", &dir]);
    assert_eq!(code, 65, "{err}");
    assert!(err.contains("network namespace"), "{err}");
    assert!(admin_up(&a, &v.a_if), "nothing was touched");
}

#[test]
fn pause_file_stops_new_actions_and_removing_it_resumes() {
    require_root();
    let a = Netns::new("pause-a");
    let b = Netns::new("pause-b");
    let v = pair(&a, &b, 146);
    let state = TempDir::new("pause-state");
    let mut d = start(&a, &state, &v.a_if, None);
    let pause = state.path().join("paused");
    std::fs::write(&pause, "").unwrap();
    let n = d.count();
    a.link_set(&v.a_if, false);
    let e = link_up_event(&mut d, n, "planned");
    assert!(
        str_field(&e, "reason").unwrap().starts_with("paused"),
        "{e}"
    );
    assert!(!admin_up(&a, &v.a_if), "paused: nothing applied");
    // Resumed: the next fault is healed.
    std::fs::remove_file(&pause).unwrap();
    a.link_set(&v.a_if, true);
    std::thread::sleep(Duration::from_millis(50));
    let n = d.count();
    a.link_set(&v.a_if, false);
    link_up_event(&mut d, n, "verified");
    assert!(admin_up(&a, &v.a_if));
    d.finish();
}
