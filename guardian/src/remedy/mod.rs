//! Remedies: data first. A remedy looks at a [`Finding`] and plans a [`PlannedChange`]: the
//! action to apply, its exact inverse, and how to verify it worked. The engine decides whether
//! and when to apply it, journals it first, verifies and rolls back.
pub mod link_up;
pub mod route_restore;

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::detect::Finding;
use crate::netlink::{Netlink, NetlinkError, RouteSpec};
use crate::output::Subject;

pub use link_up::LinkUp;
pub use route_restore::RouteRestore;

/// One change to the kernel's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Action {
    SetLinkUp { ifindex: u32, name: String },
    SetLinkDown { ifindex: u32, name: String },
    AddRoute(RouteSpec),
    DelRoute(RouteSpec),
}

impl Action {
    /// Applies the action through rtnetlink.
    pub async fn execute(&self, nl: &Netlink) -> Result<(), NetlinkError> {
        match self {
            Action::SetLinkUp { ifindex, .. } => nl.set_link_up(*ifindex).await,
            Action::SetLinkDown { ifindex, .. } => nl.set_link_down(*ifindex).await,
            Action::AddRoute(r) => nl.add_route(r).await,
            Action::DelRoute(r) => nl.del_route(r).await,
        }
    }
}

impl fmt::Display for Action {
    /// In `ip` terms, for logs: `link set va up`, `route add 10.9.0.0/24 via 10.0.0.2 oif 3`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn route(f: &mut fmt::Formatter<'_>, verb: &str, r: &RouteSpec) -> fmt::Result {
            write!(f, "route {verb} {r}")?;
            if let Some(gw) = r.gateway {
                write!(f, " via {gw}")?;
            }
            if let Some(oif) = r.oif {
                write!(f, " oif {oif}")?;
            }
            if let Some(m) = r.priority {
                write!(f, " metric {m}")?;
            }
            if r.table != crate::netlink::TABLE_MAIN {
                write!(f, " table {}", r.table)?;
            }
            Ok(())
        }
        match self {
            Action::SetLinkUp { name, .. } => write!(f, "link set {name} up"),
            Action::SetLinkDown { name, .. } => write!(f, "link set {name} down"),
            Action::AddRoute(r) => route(f, "add", r),
            Action::DelRoute(r) => route(f, "del", r),
        }
    }
}

/// How to tell that a change worked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "check", rename_all = "snake_case")]
pub enum Verify {
    /// The link is admin up and oper up.
    LinkUp { ifindex: u32 },
    /// The route is in the kernel's table.
    RoutePresent(RouteSpec),
}

impl Verify {
    /// Asks the kernel once whether the condition holds.
    pub async fn check(&self, nl: &Netlink) -> Result<bool, NetlinkError> {
        match self {
            Verify::LinkUp { ifindex } => {
                Ok(nl.get_link(*ifindex).await?.is_some_and(|l| l.is_up()))
            }
            Verify::RoutePresent(r) => nl.route_present(r).await,
        }
    }
}

/// A planned change: what to do, how to undo it exactly, how to verify it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedChange {
    /// The remedy that planned it, e.g. `link_up`.
    pub remedy: &'static str,
    pub subject: Subject,
    pub apply: Action,
    pub inverse: Action,
    pub verify: Verify,
    /// The state before, as reported in `change.before`.
    pub before: Value,
    /// The state the change aims for, as reported in `change.after`.
    pub after: Value,
}

pub trait Remedy {
    /// Stable remedy name, e.g. `link_up`.
    fn name(&self) -> &'static str;
    /// A change for this finding, or `None` when the remedy does not apply to it.
    fn plan(&self, f: &Finding) -> Option<PlannedChange>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_serialize_with_an_op_tag_and_round_trip() {
        let a = Action::SetLinkUp {
            ifindex: 3,
            name: "va".into(),
        };
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"op": "set_link_up", "ifindex": 3, "name": "va"})
        );
        let r = Action::AddRoute(
            RouteSpec::new("10.9.0.0".parse().unwrap(), 24).via("10.0.0.2".parse().unwrap()),
        );
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["op"], "add_route");
        assert_eq!(v["dst"], "10.9.0.0");
        assert_eq!(serde_json::from_value::<Action>(v).unwrap(), r);
        assert_eq!(r.to_string(), "route add 10.9.0.0/24 via 10.0.0.2");
        let ver = Verify::LinkUp { ifindex: 3 };
        assert_eq!(
            serde_json::to_value(&ver).unwrap(),
            serde_json::json!({"check": "link_up", "ifindex": 3})
        );
    }
}
