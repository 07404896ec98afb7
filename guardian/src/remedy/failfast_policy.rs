//! What a `sockopt_failfast` policy is ([`Policy`] for a [`Dst`]): the data that
//! [`Action::FailfastInsert`](super::action::Action::FailfastInsert) carries and the journal
//! stores, apart from the remedy that plans it.
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// A destination in a namespace (None: the daemon's own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dst {
    pub netns: Option<u32>,
    pub addr: IpAddr,
    pub port: u16,
}

impl fmt::Display for Dst {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr {
            IpAddr::V4(a) => write!(f, "{a}:{}", self.port)?,
            IpAddr::V6(a) => write!(f, "[{a}]:{}", self.port)?,
        }
        if let Some(ns) = self.netns {
            write!(f, " netns {ns}")?;
        }
        Ok(())
    }
}

/// A policy as planned and journaled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub dst: Dst,
    pub syn_count: u32,
    pub user_timeout_ms: u32,
    pub ttl_ms: u64,
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} syncnt {} user_timeout {}ms ttl {}ms",
            self.dst, self.syn_count, self.user_timeout_ms, self.ttl_ms
        )
    }
}
