//! `history`: the journal's changes (readable with the daemon stopped) and the incidents the
//! running daemon remembers.
use std::path::Path;
use std::time::Duration;

use crate::engine::api::{subject_label, ChangeView, History, IncidentView};
use crate::journal;

fn cutoff(since: Option<Duration>) -> Option<String> {
    let d = chrono::Duration::from_std(since?).ok()?;
    Some(crate::output::rfc3339(chrono::Utc::now() - d))
}

/// Changes from `<state_dir>/journal.ndjson`, newest first.
pub fn from_journal(
    state_dir: &Path,
    limit: Option<usize>,
    since: Option<Duration>,
) -> Result<History, String> {
    let path = state_dir.join(journal::FILE_NAME);
    let records = if path.exists() {
        journal::read_all(&path).map_err(|e| e.to_string())?
    } else {
        Vec::new()
    };
    let from = cutoff(since);
    let mut changes: Vec<ChangeView> = journal::fold(&records)
        .into_iter()
        .rev()
        .filter(|c| from.as_ref().is_none_or(|f| c.last_ts >= *f))
        .map(|c| ChangeView {
            rollback_id: c.first.id.clone(),
            ts: c.first.ts.clone(),
            remedy: c.first.remedy.clone(),
            fault: c.first.fault.clone(),
            subject: serde_json::from_value(c.first.subject.clone())
                .map(|s| subject_label(&s, &c.first.key))
                .unwrap_or_else(|_| c.first.key.clone()),
            phase: serde_json::to_value(c.last)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            last_ts: c.last_ts,
            error: c.last_error,
        })
        .collect();
    changes.truncate(limit.unwrap_or(usize::MAX));
    Ok(History {
        changes,
        incidents: Vec::new(),
    })
}

/// Incidents (newest first) opened within `since`, at most `limit`.
pub fn recent(
    mut all: Vec<IncidentView>,
    limit: Option<usize>,
    since: Option<Duration>,
) -> Vec<IncidentView> {
    if let Some(from) = cutoff(since) {
        all.retain(|i| i.cleared.as_ref().unwrap_or(&i.since) >= &from);
    }
    all.truncate(limit.unwrap_or(usize::MAX));
    all
}

/// Parses `90`, `30s`, `15m`, `2h`, `1d` (written by hand: four units do not need a crate).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 30s, 15m, 2h or 1d"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("{s:?} is not a duration like 30s, 15m, 2h or 1d")),
    };
    Ok(Duration::from_secs(n.saturating_mul(mult)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86400)));
        assert!(parse_duration("1w").is_err());
        assert!(parse_duration("m").is_err());
    }

    #[test]
    fn journal_history_newest_first_with_limit() {
        let dir = std::env::temp_dir().join(format!("guardian-hist-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(from_journal(&dir, None, None).unwrap().changes.is_empty());
        let mut j = journal::Journal::open(&dir).unwrap();
        let now = crate::output::rfc3339(chrono::Utc::now());
        for (id, phase) in [
            ("a-0001", journal::JournalPhase::Intent),
            ("a-0001", journal::JournalPhase::Verified),
            ("a-0002", journal::JournalPhase::Intent),
        ] {
            j.append(&journal::Record {
                id: id.into(),
                ts: now.clone(),
                remedy: "link_up".into(),
                subject: serde_json::json!({"iface": "eth1"}),
                incident: "i".into(),
                phase,
                action: serde_json::Value::Null,
                inverse: serde_json::Value::Null,
                before: serde_json::Value::Null,
                after: serde_json::Value::Null,
                error: None,
                netns: 0,
                fault: "link_down".into(),
                key: "k".into(),
                verify: serde_json::Value::Null,
                effect: serde_json::Value::Null,
                expires_at_ms: None,
                until_clear: false,
            })
            .unwrap();
        }
        let h = from_journal(&dir, None, Some(Duration::from_secs(60))).unwrap();
        let rows: Vec<(&str, &str, &str)> = h
            .changes
            .iter()
            .map(|c| (c.rollback_id.as_str(), c.phase.as_str(), c.subject.as_str()))
            .collect();
        assert_eq!(
            rows,
            [("a-0002", "intent", "eth1"), ("a-0001", "verified", "eth1")]
        );
        assert_eq!(from_journal(&dir, Some(1), None).unwrap().changes.len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
