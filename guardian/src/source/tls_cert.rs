//! The certificates local TLS listeners present, for `tls_cert_expiry`: guardian connects to
//! the listener itself, inside its namespace (and only to it: the address a local server
//! accepted TLS on, as the OpenSSL uprobes saw it), completes a TLS handshake with rustls and a
//! verifier that accepts anything and only records the leaf, closes with close_notify, and
//! reads notAfter with x509-parser. Once at discovery, then hourly (every 5 min after a failed
//! probe), and again as soon as a new server process completes handshakes on the listener (a
//! restart or a reload loads a renewed certificate in new processes); probes run one at a time
//! on a background thread, never on the tick.
use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};

use crate::model::tls::CertInfo;

/// A listener that answered is probed again after this long.
pub const PROBE_EVERY: Duration = Duration::from_secs(3600);
/// A listener whose probe failed is tried again after this long.
pub const RETRY_EVERY: Duration = Duration::from_secs(300);
/// Connect, read and write timeout of one probe.
const TIMEOUT: Duration = Duration::from_secs(3);

/// (namespace, address, port) of a listener.
pub type Listener = (u32, IpAddr, u16);

/// Whether a listener is due: never tried, or tried `PROBE_EVERY` (answered) or
/// `RETRY_EVERY` (failed) ago.
pub fn due(last: Option<(Instant, bool)>, now: Instant) -> bool {
    match last {
        None => true,
        Some((t, answered)) => {
            let every = if answered { PROBE_EVERY } else { RETRY_EVERY };
            now.saturating_duration_since(t) >= every
        }
    }
}

/// Why a probe read no certificate (a sentence for the debug log).
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot enter the namespace or connect: {0}")]
    Io(#[from] io::Error),
    #[error("TLS handshake: {0}")]
    Tls(#[from] rustls::Error),
    #[error("the listener presented no certificate")]
    NoCertificate,
    #[error("cannot parse the certificate: {0}")]
    Parse(String),
}

/// Records the leaf certificate; accepts every chain and signature (the probe judges
/// nothing: the expiry is the detector's business, and a failed handshake would count as a
/// failure on the listener).
#[derive(Debug)]
struct Record {
    leaf: Mutex<Option<Vec<u8>>>,
    schemes: Vec<SignatureScheme>,
}

impl ServerCertVerifier for Record {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut l) = self.leaf.lock() {
            *l = Some(end_entity.to_vec());
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.clone()
    }
}

/// The DER of the leaf certificate `addr` presents (in the caller's namespace).
pub fn fetch_leaf(addr: SocketAddr) -> Result<Vec<u8>, ProbeError> {
    // ring's provider lacks post-quantum key exchange (hence deprecated): irrelevant to read a
    // certificate, and ring builds without aws-lc-rs's cmake.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let record = Arc::new(Record {
        leaf: Mutex::new(None),
        schemes: provider
            .signature_verification_algorithms
            .supported_schemes(),
    });
    let cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(record.clone())
        .with_no_client_auth();
    let mut conn = ClientConnection::new(Arc::new(cfg), ServerName::IpAddress(addr.ip().into()))?;
    let mut sock = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    sock.set_read_timeout(Some(TIMEOUT))?;
    sock.set_write_timeout(Some(TIMEOUT))?;
    // Bounded: each round trip is bounded by the timeouts, and a handshake is a few flights.
    let mut rounds = 0;
    while conn.is_handshaking() && rounds < 16 {
        conn.complete_io(&mut sock)?;
        rounds += 1;
    }
    conn.send_close_notify();
    let _ = conn.complete_io(&mut sock);
    let leaf = record.leaf.lock().ok().and_then(|mut l| l.take());
    leaf.ok_or(ProbeError::NoCertificate)
}

/// notAfter, subject and issuer of a DER certificate.
pub fn parse(der: &[u8], addr: SocketAddr, checked_unix: i64) -> Result<CertInfo, ProbeError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| ProbeError::Parse(e.to_string()))?;
    let not_after_unix = cert.validity().not_after.timestamp();
    let not_after = chrono::DateTime::from_timestamp(not_after_unix, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default();
    Ok(CertInfo {
        addr: addr.ip().to_string(),
        port: addr.port(),
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        not_after_unix,
        not_after,
        checked_unix,
    })
}

/// The server processes seen per listener. A new process on a listener already known is a
/// restart or a reload, when a renewed certificate gets loaded: the listener is probed again
/// then rather than at the hourly recheck, so the fault clears when the renewal happens.
#[derive(Debug, Default)]
pub struct Processes(HashMap<Listener, HashSet<u32>>);

impl Processes {
    /// Notes `pid` serving `l`; true when `l` was known with other processes only.
    pub fn joined(&mut self, l: Listener, pid: u32) -> bool {
        let seen = self.0.entry(l).or_default();
        let known = !seen.is_empty();
        seen.insert(pid) && known
    }
}

struct Job {
    listener: Listener,
    /// The namespace's path (None: the daemon's own).
    path: Option<PathBuf>,
}

/// Probes listeners on a background thread and keeps the last certificate of each.
pub struct CertProber {
    jobs: Sender<Job>,
    done: Receiver<(Listener, Result<CertInfo, String>)>,
    tried: HashMap<Listener, (Instant, bool)>,
    in_flight: HashSet<Listener>,
    certs: HashMap<Listener, CertInfo>,
    processes: Processes,
    /// Listeners a new process joined while their probe was in flight: due when it returns.
    stale: HashSet<Listener>,
}

impl CertProber {
    pub fn new() -> io::Result<Self> {
        let (jobs, rx) = mpsc::channel::<Job>();
        let (tx, done) = mpsc::channel();
        std::thread::Builder::new()
            .name("tls-cert".into())
            .spawn(move || {
                for job in rx {
                    let (_, ip, port) = job.listener;
                    let addr = SocketAddr::new(ip, port);
                    let r = crate::netns::within(job.path.as_deref(), move || {
                        let now = chrono::Utc::now().timestamp();
                        fetch_leaf(addr)
                            .and_then(|der| parse(&der, addr, now))
                            .map_err(|e| io::Error::other(e.to_string()))
                    })
                    .map_err(|e| e.to_string());
                    if tx.send((job.listener, r)).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Self {
            jobs,
            done,
            tried: HashMap::new(),
            in_flight: HashSet::new(),
            certs: HashMap::new(),
            processes: Processes::default(),
            stale: HashSet::new(),
        })
    }

    /// Collects finished probes, then queues the listeners that are due. `listeners`: each
    /// with a process that served it. `path` finds a namespace's path (`Ok(None)`: the
    /// daemon's own; `Err`: gone).
    pub fn poll(
        &mut self,
        listeners: impl IntoIterator<Item = (Listener, u32)>,
        now: Instant,
        mut path: impl FnMut(u32) -> Result<Option<PathBuf>, ()>,
    ) {
        while let Ok((l, r)) = self.done.try_recv() {
            self.in_flight.remove(&l);
            if self.stale.remove(&l) {
                // The certificate read may be the old process's: read it again.
                self.tried.remove(&l);
                if let Ok(c) = r {
                    self.certs.insert(l, c);
                }
                continue;
            }
            match r {
                Ok(c) => {
                    self.tried.insert(l, (now, true));
                    self.certs.insert(l, c);
                }
                Err(e) => {
                    tracing::debug!(listener = ?l, error = %e, "no certificate read");
                    self.tried.insert(l, (now, false));
                    self.certs.remove(&l);
                }
            }
        }
        let mut seen: Vec<Listener> = Vec::new();
        for (l, pid) in listeners {
            if self.processes.joined(l, pid) {
                if self.in_flight.contains(&l) {
                    self.stale.insert(l);
                } else {
                    self.tried.remove(&l);
                }
            }
            seen.push(l);
        }
        seen.sort_unstable();
        seen.dedup();
        for l in seen {
            if self.in_flight.contains(&l) || !due(self.tried.get(&l).copied(), now) {
                continue;
            }
            let Ok(p) = path(l.0) else {
                continue;
            };
            if self
                .jobs
                .send(Job {
                    listener: l,
                    path: p,
                })
                .is_ok()
            {
                self.in_flight.insert(l);
            }
        }
    }

    /// The certificates last read in `netns`, by listener.
    pub fn certs(&self, netns: u32) -> Vec<CertInfo> {
        let mut v: Vec<CertInfo> = self
            .certs
            .iter()
            .filter(|(l, _)| l.0 == netns)
            .map(|(_, c)| c.clone())
            .collect();
        v.sort_by(|a, b| (a.port, &a.addr).cmp(&(b.port, &b.addr)));
        v
    }
}

#[cfg(test)]
mod tests;
