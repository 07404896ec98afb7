//! Backing off from sysctls someone else changed (as Oracle's bpftune does): guardian
//! remembers the values it set and still holds; when one of them reads differently later, an
//! operator or another program changed it. From then on guardian neither rolls that value
//! back over theirs nor sets it again (until the daemon restarts), and the `skipped` event
//! says so (docs/remedies.md, docs/security.md).
use std::collections::HashMap;

use crate::remedy::Action;

/// A sysctl in a namespace (None: the daemon's).
type Key = (Option<u32>, String);

#[derive(Debug, Default)]
pub struct Backoff {
    /// Values guardian set and holds.
    held: HashMap<Key, String>,
    /// Sysctls guardian let go of, and why.
    off: HashMap<Key, String>,
}

fn sysctls(a: &Action) -> Vec<(Key, &str)> {
    match a {
        Action::SetSysctl { netns, key, value } => vec![((*netns, key.clone()), value.as_str())],
        Action::All { actions, .. } => actions.iter().flat_map(sysctls).collect(),
        _ => Vec::new(),
    }
}

impl Backoff {
    /// A change guardian made is in place: its sysctl values are now guardian's.
    pub fn hold(&mut self, apply: &Action) {
        for (k, v) in sysctls(apply) {
            self.held.insert(k, crate::sysctl::normalize(v));
        }
    }

    /// A change was reverted (its values are no longer guardian's).
    pub fn release(&mut self, apply: &Action) {
        for (k, _) in sysctls(apply) {
            self.held.remove(&k);
        }
    }

    /// Someone else changed the sysctls of `apply`: let them go for good.
    pub fn back_off(&mut self, apply: &Action, why: &str) {
        for (k, _) in sysctls(apply) {
            self.held.remove(&k);
            tracing::warn!(sysctl = %k.1, "backing off: {why}");
            self.off.insert(k, why.to_string());
        }
    }

    /// Whether guardian may set the sysctls of `apply`; `read` gives a live value.
    /// A held value that reads differently now is someone else's change: back off.
    pub fn check(
        &mut self,
        apply: &Action,
        read: impl Fn(Option<u32>, &str) -> Option<String>,
    ) -> Result<(), String> {
        for (k, _) in sysctls(apply) {
            if let Some(held) = self.held.get(&k) {
                if let Some(now) = read(k.0, &k.1).filter(|now| now != held) {
                    let why = format!(
                        "{} is now \"{now}\", not the \"{held}\" guardian set: someone else changed it",
                        k.1
                    );
                    self.held.remove(&k);
                    self.off.insert(k.clone(), why);
                }
            }
            if let Some(why) = self.off.get(&k) {
                return Err(format!(
                    "backed off: {why}; guardian does not set {} again until it restarts",
                    k.1
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(key: &str, value: &str) -> Action {
        Action::SetSysctl {
            netns: None,
            key: key.into(),
            value: value.into(),
        }
    }

    #[test]
    fn a_value_changed_by_someone_else_is_never_set_again() {
        let mut b = Backoff::default();
        let k = "net.core.somaxconn";
        let live = std::cell::RefCell::new("4096".to_string());
        let read = |_: Option<u32>, _: &str| Some(live.borrow().clone());
        // never set: free to set
        b.check(&set(k, "4096"), read).unwrap();
        b.hold(&set(k, "4096"));
        // still ours: a recurrence may set it again
        b.check(&set(k, "8192"), read).unwrap();
        // the operator sets 1024
        *live.borrow_mut() = "1024".into();
        let e = b.check(&set(k, "8192"), read).unwrap_err();
        assert!(
            e.contains("now \"1024\", not the \"4096\" guardian set"),
            "{e}"
        );
        assert!(e.contains("does not set net.core.somaxconn again"), "{e}");
        // for good, even when it reads guardian's value again
        *live.borrow_mut() = "4096".into();
        assert!(b.check(&set(k, "4096"), read).is_err());
        // other keys are unaffected
        b.check(&set("net.ipv4.tcp_tw_reuse", "1"), read).unwrap();
    }

    #[test]
    fn released_values_are_not_watched_and_back_off_covers_all() {
        let mut b = Backoff::default();
        let read = |_: Option<u32>, _: &str| Some("9".to_string());
        b.hold(&set("net.a", "1"));
        b.release(&set("net.a", "1"));
        b.check(&set("net.a", "1"), read).unwrap();
        let (all, _) = Action::all(vec![
            (set("net.b", "1"), set("net.b", "0")),
            (set("net.c", "1"), set("net.c", "0")),
        ]);
        b.back_off(&all, "net.b is now 9");
        assert!(b.check(&set("net.c", "1"), read).is_err());
        assert!(b.check(&set("net.b", "1"), read).is_err());
    }
}
