//! The client subcommands: build the request, ask the daemon, print one screen (or its JSON).
//! Exit codes: 0 ok, 65 the daemon refused the request, 69 no daemon answers, 77 permission
//! denied, 1 anything else.
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use serde_json::Value;

use crate::cli::Command;
use crate::control::client::{self, ClientError};
use crate::control::protocol::{EventFilter, Request};
use crate::control::render;

fn fail(e: &ClientError) -> ExitCode {
    eprintln!("guardian: {e}");
    ExitCode::from(e.exit_code())
}

fn print(s: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

fn pretty(v: &Value) -> String {
    format!("{}\n", serde_json::to_string_pretty(v).unwrap_or_default())
}

/// Decodes `answer[key]` into `T` and renders it, or prints it as JSON.
fn show<T: serde::de::DeserializeOwned>(
    answer: &Value,
    key: &str,
    json: bool,
    human: fn(&T) -> String,
) -> ExitCode {
    if json {
        return print(&pretty(&answer[key]));
    }
    match serde_json::from_value::<T>(answer[key].clone()) {
        Ok(v) => print(&human(&v)),
        Err(e) => {
            eprintln!("guardian: the daemon's answer has an unexpected shape: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one client subcommand.
pub fn main(cmd: Command) -> ExitCode {
    match cmd {
        Command::Status { json, socket } => {
            match client::request(&socket.path, &Request::Status {}) {
                Ok(a) => show(&a, "status", json, render::status),
                Err(e) => fail(&e),
            }
        }
        Command::Stats { json, socket } => {
            match client::request(&socket.path, &Request::Stats {}) {
                Ok(a) => show(&a, "stats", json, render::stats),
                Err(e) => fail(&e),
            }
        }
        Command::History {
            limit,
            since,
            json,
            state_dir,
            socket,
        } => history(&socket.path, &state_dir, limit, since, json),
        Command::Mode { mode, socket } => {
            match client::request(&socket.path, &Request::Mode { mode }) {
                Ok(a) => print(&format!(
                    "mode {}{}\n",
                    a["mode"].as_str().unwrap_or("?"),
                    if a["paused"] == true { " (paused)" } else { "" }
                )),
                Err(e) => fail(&e),
            }
        }
        Command::Heal {
            fault,
            subject,
            json,
            socket,
        } => heal(&socket.path, fault, subject, json),
        Command::Events {
            follow: _,
            types,
            faults,
            severity,
            socket,
        } => events(
            &socket.path,
            EventFilter {
                types,
                faults,
                min_severity: severity,
            },
        ),
        Command::Rollback {
            id,
            all,
            state_dir,
            socket,
        } => rollback(&socket.path, &state_dir, id, all),
        Command::Baseline {
            action,
            prefix,
            json,
            socket,
        } => baseline(&socket.path, action, prefix, json),
        Command::Scan { json } => crate::scan::main(json),
        other => {
            eprintln!("guardian: {other:?} is not a client subcommand");
            ExitCode::from(2)
        }
    }
}

fn history(
    socket: &Path,
    state_dir: &Path,
    limit: Option<usize>,
    since: Option<std::time::Duration>,
    json: bool,
) -> ExitCode {
    let req = Request::History {
        limit,
        since_s: since.map(|d| d.as_secs()),
    };
    match client::request(socket, &req) {
        Ok(a) => show(&a, "history", json, render::history),
        Err(ClientError::NotRunning(_)) => {
            // Offline: the journal alone.
            match crate::control::history::from_journal(state_dir, limit, since) {
                Ok(h) if json => print(&pretty(&serde_json::json!(h))),
                Ok(h) => {
                    eprintln!(
                        "guardian: not running; changes from the journal in {} only",
                        state_dir.display()
                    );
                    print(&render::history(&h))
                }
                Err(e) => {
                    eprintln!("guardian: {e}");
                    ExitCode::from(65)
                }
            }
        }
        Err(e) => fail(&e),
    }
}

fn baseline(
    socket: &Path,
    action: crate::cli::BaselineAction,
    prefix: Option<String>,
    json: bool,
) -> ExitCode {
    let accept = action == crate::cli::BaselineAction::Accept;
    let a = match client::request(socket, &Request::Baseline { accept, prefix }) {
        Ok(a) => a,
        Err(e) => return fail(&e),
    };
    if json {
        return print(&pretty(&a));
    }
    let mut out = String::new();
    let list = |k: &str| a[k].as_array().cloned().unwrap_or_default();
    for (key, head) in [
        ("dropped", "no longer protected (loss accepted)"),
        ("added", "protected from now on"),
    ] {
        for r in list(key) {
            out.push_str(&format!("{head}: {}\n", r.as_str().unwrap_or("?")));
        }
    }
    for r in list("routes") {
        let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
        out.push_str(&format!(
            "{} proto {} ({}) {}\n",
            s("route"),
            s("protocol"),
            s("owner"),
            if r["present"] == true {
                "present"
            } else {
                "ABSENT"
            }
        ));
    }
    for r in list("unprotected") {
        out.push_str(&format!(
            "not protected (accept to protect): {}\n",
            r.as_str().unwrap_or("?")
        ));
    }
    print(&out)
}

fn heal(socket: &Path, fault: String, subject: String, json: bool) -> ExitCode {
    let a = match client::request(socket, &Request::Heal { fault, subject }) {
        Ok(a) => a,
        Err(e) => return fail(&e),
    };
    if json {
        return print(&pretty(&a));
    }
    let mut out = String::new();
    for e in a["events"].as_array().into_iter().flatten() {
        let s = |k: &str| e[k].as_str().unwrap_or("");
        out.push_str(&format!(
            "{} {}{}{}\n",
            s("remedy"),
            s("result"),
            e["rollback_id"]
                .as_str()
                .map(|i| format!(" (rollback id {i})"))
                .unwrap_or_default(),
            e["reason"]
                .as_str()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        ));
    }
    let code = print(&out);
    match a["outcome"].as_str() {
        Some("applied" | "verified") => code,
        _ => ExitCode::FAILURE,
    }
}

fn events(socket: &Path, filter: EventFilter) -> ExitCode {
    let mut out = std::io::stdout().lock();
    let r = client::stream(socket, &Request::Events(filter), |line| {
        if let Some(n) = serde_json::from_str::<Value>(line)
            .ok()
            .filter(|v| v.get("schema").is_none())
            .and_then(|v| v["missed"].as_u64())
        {
            eprintln!("guardian: missed {n} events (this client fell behind)");
            return true;
        }
        writeln!(out, "{line}").and_then(|()| out.flush()).is_ok()
    });
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn rollback(socket: &Path, state_dir: &Path, id: Option<String>, all: bool) -> ExitCode {
    let which = match &id {
        Some(id) if !all => crate::rollback::Which::One(id.clone()),
        _ => crate::rollback::Which::All,
    };
    let req = Request::Rollback {
        id: id.filter(|_| !all),
        all,
    };
    // The daemon answering must be the one keeping this state directory; otherwise (another
    // daemon, or none) the journal is reverted offline.
    let same_dir = client::request(socket, &Request::Status {}).map(|a| {
        let theirs = a["status"]["state_dir"]
            .as_str()
            .map(std::path::PathBuf::from);
        let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        theirs.is_some_and(|t| canon(&t) == canon(state_dir))
    });
    match same_dir {
        Ok(true) => {}
        Ok(false) | Err(ClientError::NotRunning(_)) => {
            return crate::rollback::main(state_dir, which)
        }
        Err(e) => return fail(&e),
    }
    match client::request(socket, &req) {
        Ok(a) => {
            let changes = a["changes"].as_array().cloned().unwrap_or_default();
            if changes.is_empty() {
                return print("nothing to roll back\n");
            }
            let mut failed = false;
            let mut out = String::new();
            for c in &changes {
                let s = |k: &str| c[k].as_str().unwrap_or("");
                failed |= s("result") != "reverted";
                let shown = if s("result") == "reverted" {
                    "reverted"
                } else {
                    "FAILED"
                };
                out.push_str(&format!(
                    "{} {} {}: {}\n",
                    s("rollback_id"),
                    s("remedy"),
                    shown,
                    s("reason")
                ));
            }
            let code = print(&out);
            if failed {
                ExitCode::FAILURE
            } else {
                code
            }
        }
        Err(ClientError::NotRunning(_)) => crate::rollback::main(state_dir, which),
        Err(e) => fail(&e),
    }
}
