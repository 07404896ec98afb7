//! [`Netlink`], the request side, and [`NetlinkError`], its failures.
/// Failures talking to the kernel.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("cannot open a netlink route socket: {0}")]
    Socket(#[source] std::io::Error),
    #[error("netlink {op} failed: {source}")]
    Request {
        op: &'static str,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("netlink {op} failed: the kernel sent an unexpected reply")]
    Unexpected { op: &'static str },
}

impl NetlinkError {
    pub(super) fn request(op: &'static str, source: rtnetlink::Error) -> Self {
        NetlinkError::Request { op, source }
    }

    /// The kernel's errno for a rejected request (positive, e.g. `libc::EEXIST`).
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Request {
                source: rtnetlink::Error::NetlinkError(m),
                ..
            } => m.code.map(|c| c.get().abs()),
            _ => None,
        }
    }
}

/// The request side: dumps, queries and the executors remedies use.
#[derive(Clone)]
pub struct Netlink {
    handle: rtnetlink::Handle,
    _conn: std::sync::Arc<AbortOnDrop>,
}

pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Netlink {
    /// Opens a request socket in the current network namespace; its connection task runs on
    /// the current tokio runtime until the last clone of the returned handle is dropped.
    pub fn connect() -> Result<Self, NetlinkError> {
        // Strict checking lets the kernel filter route dumps by table, protocol, type and oif
        // (Linux >= 4.20); without it the same requests work and we filter in userspace.
        let (conn, handle, _) = match rtnetlink::new_connection_with_strict_check() {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!("NETLINK_GET_STRICT_CHK unavailable ({e}); dumping unfiltered");
                rtnetlink::new_connection().map_err(NetlinkError::Socket)?
            }
        };
        let task = tokio::spawn(conn);
        Ok(Netlink {
            handle,
            _conn: std::sync::Arc::new(AbortOnDrop(task)),
        })
    }

    pub(crate) fn handle(&self) -> &rtnetlink::Handle {
        &self.handle
    }
}
