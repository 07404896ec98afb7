//! `counters.connect_ends_by_dst`: the kernel's `CONNECT_END` map (failed connects that were
//! not refused, by destination, socket uid and how they ended) grouped per namespace.
use std::collections::HashMap;

use guardian_common::connect::{ConnEndKey, END_ABANDONED, END_ERROR, END_TIMEOUT, UID_UNKNOWN};

use super::decode;
use crate::model::{ConnectEnd, ConnectEndReason};

/// Rows kept per namespace (most first): enough for many uids on a few destinations, and a
/// bound on the event size whatever an unprivileged user makes the map hold.
pub const TOP_N: usize = 64;

fn reason(r: u32) -> ConnectEndReason {
    match r {
        END_TIMEOUT => ConnectEndReason::Timeout,
        END_ABANDONED => ConnectEndReason::Abandoned,
        END_ERROR => ConnectEndReason::Error,
        _ => ConnectEndReason::Unknown,
    }
}

/// One namespace's rows, top [`TOP_N`] by count, for every namespace in `rows`.
pub fn by_ns(rows: Vec<(ConnEndKey, u64)>) -> HashMap<u32, Vec<ConnectEnd>> {
    let mut by: HashMap<u32, Vec<(ConnEndKey, u64)>> = HashMap::new();
    for (k, c) in rows {
        by.entry(k.netns).or_default().push((k, c));
    }
    by.into_iter()
        .map(|(ns, mut v)| {
            v.sort_by_key(|e| std::cmp::Reverse(e.1));
            let ends = v
                .into_iter()
                .take(TOP_N)
                .map(|(k, count)| ConnectEnd {
                    addr: decode::addr(k.family, &k.addr)
                        .map_or_else(String::new, |a| a.to_string()),
                    port: k.port,
                    uid: (k.uid != UID_UNKNOWN).then_some(k.uid),
                    reason: reason(k.reason),
                    count,
                })
                .collect();
            (ns, ends)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use guardian_common::AF_INET;

    fn key(ns: u32, uid: u32, reason: u32) -> ConnEndKey {
        let mut addr = [0; 16];
        addr[..4].copy_from_slice(&[10, 0, 0, 2]);
        ConnEndKey {
            netns: ns,
            family: AF_INET,
            port: 5432,
            uid,
            reason,
            addr,
        }
    }

    #[test]
    fn rows_are_grouped_per_namespace_with_uid_and_reason() {
        let got = by_ns(vec![
            (key(1, 65534, END_ABANDONED), 3),
            (key(1, 0, END_TIMEOUT), 7),
            (key(2, UID_UNKNOWN, 0), 1),
        ]);
        let one = &got[&1];
        assert_eq!(one.len(), 2);
        assert_eq!(
            one[0],
            ConnectEnd {
                addr: "10.0.0.2".into(),
                port: 5432,
                uid: Some(0),
                reason: ConnectEndReason::Timeout,
                count: 7
            }
        );
        assert_eq!(one[1].reason, ConnectEndReason::Abandoned);
        assert_eq!(one[1].uid, Some(65534));
        assert_eq!(got[&2][0].uid, None, "no sk_uid in BTF");
        assert_eq!(got[&2][0].reason, ConnectEndReason::Unknown);
    }

    #[test]
    fn a_namespace_keeps_its_top_rows_only() {
        let rows = (0..100)
            .map(|u| (key(1, u, END_TIMEOUT), u as u64 + 1))
            .collect();
        let got = by_ns(rows);
        assert_eq!(got[&1].len(), TOP_N);
        assert_eq!(got[&1][0].count, 100);
    }
}
