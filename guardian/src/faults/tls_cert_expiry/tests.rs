//! Unit tests of `tls_cert_expiry`'s decisions.
use std::time::Duration;

use super::*;
use crate::model::FaultState::{Cleared as C, Opened as O};
use crate::model::Severity;

fn cert(port: u16, days_left: f64) -> CertInfo {
    CertInfo {
        addr: "10.0.0.1".into(),
        port,
        subject: "CN=a".into(),
        issuer: "CN=ca".into(),
        not_after_unix: 1_000_000_000 + (days_left * 86_400.0) as i64,
        not_after: String::new(),
        checked_unix: 1_000_000_000,
    }
}

fn sample(certs: Vec<CertInfo>) -> Input {
    Input::Tls(TlsSample {
        netns: 3,
        handshakes: vec![],
        alerts: vec![],
        certs,
    })
}

#[test]
fn levels() {
    assert_eq!(level(&cert(1, -0.5), 14), Some(Level::Expired));
    assert_eq!(level(&cert(1, 0.0), 14), Some(Level::Expired));
    assert_eq!(level(&cert(1, 3.0), 14), Some(Level::Expiring));
    assert_eq!(level(&cert(1, 14.0), 14), Some(Level::Expiring));
    assert_eq!(level(&cert(1, 14.01), 14), None);
    assert_eq!(level(&cert(1, 365.0), 14), None);
}

#[test]
fn warns_then_errors_and_clears_on_renewal() {
    let mut d = TlsCertExpiry::new(Config::default());
    let t0 = Instant::now();
    let f = d.observe(&sample(vec![cert(8445, 3.0), cert(8446, 300.0)]), t0);
    assert_eq!(f.len(), 1);
    assert_eq!((f[0].state, f[0].severity), (O, Severity::Warning));
    assert_eq!(f[0].key, "tls_cert_expiry:3:10.0.0.1:8445");
    let ev = f[0].evidence.json();
    assert_eq!((ev["days_left"].as_f64(), ev["warn_days"].as_u64()), (Some(3.0), Some(14)));
    // The same certificate, an hour later: expired now.
    let f = d.observe(&sample(vec![cert(8445, -0.04)]), t0 + Duration::from_secs(1));
    let states: Vec<_> = f.iter().map(|f| (f.state, f.severity)).collect();
    assert!(states.contains(&(C, Severity::Warning)), "{states:?}");
    assert!(states.contains(&(O, Severity::Error)), "{states:?}");
    // Renewed: the error clears.
    let f = d.observe(&sample(vec![cert(8445, 90.0)]), t0 + Duration::from_secs(2));
    assert_eq!(f.len(), 1);
    assert_eq!((f[0].state, f[0].severity), (C, Severity::Error));
}

#[test]
fn warn_days_is_range_checked() {
    use crate::faults::ranges::Validate;
    let ok = Config::default();
    assert!(ok.validate("detect.tls_cert_expiry").is_ok());
    for bad in [0, 3651] {
        let c = Config {
            warn_days: bad,
            ..Config::default()
        };
        let e = c.validate("detect.tls_cert_expiry").unwrap_err();
        assert_eq!(e.key, "detect.tls_cert_expiry.warn_days");
    }
}
