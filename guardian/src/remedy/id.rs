//! Stable remedy ids: the `remedy` of remedy events and the keys of `[remedies.modes]`.
use std::fmt;

use serde::{Deserialize, Serialize};

/// Declares [`RemedyId`] from one line per remedy: `name => Variant,`, in ladder order.
macro_rules! remedy_ids {
    ($( $name:ident => $Id:ident, )*) => {
        /// A remedy; serialized as its snake_case name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum RemedyId {
            $( $Id, )*
        }

        impl RemedyId {
            /// Every remedy, in the order `remedy::all` builds them (the catalogue order of
            /// the ladders).
            pub const ALL: &'static [RemedyId] = &[$( RemedyId::$Id, )*];

            /// The stable name, e.g. `link_up`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( RemedyId::$Id => stringify!($name), )*
                }
            }
        }
    };
}

remedy_ids! {
    link_up => LinkUp,
    route_restore => RouteRestore,
    route_failover => RouteFailover,
    route_dampen => RouteDampen,
    route_mtu => RouteMtu,
    route_cc => RouteCc,
    sysctl => Sysctl,
    report_holder => ReportHolder,
    socket_destroy => SocketDestroy,
    sockopt_failfast => SockoptFailfast,
    xdp_source_limit => XdpSourceLimit,
    xdp_port_limit => XdpPortLimit,
}

impl fmt::Display for RemedyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RemedyId {
    type Err = UnknownRemedy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RemedyId::ALL
            .iter()
            .copied()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRemedy(s.to_string()))
    }
}

/// A name that is no remedy of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown remedy {0:?}")]
pub struct UnknownRemedy(pub String);
