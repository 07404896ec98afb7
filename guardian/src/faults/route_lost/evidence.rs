//! `route_lost` evidence: the lost baseline route, who owns it, who deleted (or re-added) it,
//! and the state of its output interface.
//!
//! Serialized into the fault event (keys sorted, as every evidence object) and read by the
//! remedies as fields.
use serde::Serialize;

use crate::netlink::protos::Owner;
use crate::netlink::{RouteSpec, Who};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    /// Cleared only: the operator accepted the loss (`guardian baseline accept`); the route is
    /// no longer protected.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub accepted: bool,
    /// Opened and updated: who deleted the route; cleared: who added it back. Absent when
    /// nobody knows (a change inferred after lost notifications, a replayed old record).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<Who>,
    /// `by` as words: `pid 812 (bird)`, `pid 4242 (exited)`, `the kernel (...)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by_text: Option<String>,
    /// Cleared only: how long the route was gone (null when unknown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost_ms: Option<Option<f64>>,
    pub oif_admin_up: Option<bool>,
    pub oif_oper_up: Option<bool>,
    /// Updated only: the output interface came back up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oif_up: Option<bool>,
    /// Who owns the route, by its protocol: `configured` or `control_plane`.
    pub owner: Owner,
    /// The route's protocol by name (`/etc/iproute2/rt_protos`): `boot`, `static`, `bird`...
    pub protocol: String,
    /// The baseline route, exactly as captured at start.
    pub route: RouteSpec,
}

impl Evidence {
    /// The sentence of the event's `message`.
    pub fn detail(&self) -> String {
        // The event's subject already names the route, its gateway and interface.
        let mut s = format!("the {} route", self.protocol);
        if self.accepted {
            s.push_str(" is no longer protected: the operator accepted its loss");
        } else if let Some(lost) = self.lost_ms {
            match lost {
                Some(ms) => s.push_str(&format!(" is back after {ms:.0} ms")),
                None => s.push_str(" is back"),
            }
        } else if self.oif_up == Some(true) {
            s.push_str(" is missing; its interface is up again");
        } else {
            s.push_str(" is missing from the kernel's table");
        }
        if let Some(by) = &self.by_text {
            s.push_str(&format!(", by {by}"));
        }
        s
    }
}
