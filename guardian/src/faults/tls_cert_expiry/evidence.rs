//! `tls_cert_expiry` evidence: the certificate a local listener presents and how long it has
//! left.
//!
//! Serialized into the fault event (keys sorted, as every evidence object).
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    /// When guardian read the certificate from the listener (RFC 3339).
    pub checked_at: String,
    /// Days from the check to notAfter, one decimal (negative: expired).
    pub days_left: f64,
    pub issuer: String,
    pub listener: String,
    /// notAfter (RFC 3339).
    pub not_after: String,
    pub subject: String,
    pub warn_days: u64,
}

impl Evidence {
    /// The sentence of the event's `message`.
    pub fn detail(&self) -> String {
        let when = if self.days_left < 0.0 {
            format!("expired {:.1} days ago", -self.days_left)
        } else {
            format!("expires in {:.1} days", self.days_left)
        };
        format!(
            "the certificate of {} ({}) {when}, not after {} (warning from {} days)",
            self.listener, self.subject, self.not_after, self.warn_days
        )
    }
}
