//! `link_down` evidence: the link's flags, and why it is down or how long it was.
//!
//! Serialized into the fault event (keys sorted, as every evidence object) and read by the
//! remedies as fields.
use serde::Serialize;

use crate::netlink::Who;

/// Why a link is not up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    AdminDown,
    OperDown,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Evidence {
    pub admin_up: bool,
    /// Who made the change (set the link down, or up again): the kernel for a carrier change.
    /// Absent when unknown (a change seen in a dump, an old record).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<Who>,
    /// `by` as words: `pid 812 (ip)`, `the kernel`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by_text: Option<String>,
    /// Cleared only: how long the link was down (null when unknown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub down_ms: Option<Option<f64>>,
    pub ifindex: u32,
    pub mtu: u32,
    pub oper_up: bool,
    /// Opened and updated only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// Cleared because the link was deleted.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub removed: bool,
}

impl Evidence {
    /// The sentence of the event's `message`.
    pub fn detail(&self) -> String {
        let mut s = if self.removed {
            "the link was deleted".to_string()
        } else if let Some(down) = self.down_ms {
            match down {
                Some(ms) => format!("up again after {ms:.0} ms"),
                None => "up again".to_string(),
            }
        } else {
            match self.reason {
                Some(Reason::AdminDown) => "set administratively down".to_string(),
                Some(Reason::OperDown) => "no carrier (operationally down)".to_string(),
                None => format!("admin up {}, oper up {}", self.admin_up, self.oper_up),
            }
        };
        if let Some(by) = &self.by_text {
            s.push_str(&format!(", by {by}"));
        }
        s
    }
}
