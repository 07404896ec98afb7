//! Why an action or a check could not be carried out (its own file, so the executors and
//! `Kernel` need nothing else of `remedy`).
use crate::netlink::NetlinkError;

/// Why an action or a check could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum RemedyError {
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The facility the action needs is not there (e.g. the network namespace is gone, or the
    /// maps of a detached program).
    #[error("{0}")]
    Unavailable(String),
}

impl RemedyError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        RemedyError::Io {
            what: what.into(),
            source,
        }
    }
}
