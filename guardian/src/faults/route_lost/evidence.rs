//! `route_lost` evidence: the lost baseline route and the state of its output interface.
//!
//! Serialized into the fault event (keys sorted, as every evidence object) and read by the
//! remedies as fields.
use serde::Serialize;

use crate::netlink::RouteSpec;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    /// Cleared only: how long the route was gone (null when unknown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost_ms: Option<Option<f64>>,
    pub oif_admin_up: Option<bool>,
    pub oif_oper_up: Option<bool>,
    /// Updated only: the output interface came back up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oif_up: Option<bool>,
    /// The baseline route, exactly as captured at start.
    pub route: RouteSpec,
}
