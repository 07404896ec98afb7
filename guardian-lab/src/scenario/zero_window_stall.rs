//! `zero_window_stall`: a server in the server's namespace sends 16 MiB to a client (in the
//! client's namespace) that has a 4 KiB receive buffer and reads nothing: the client's window
//! closes and the server's socket waits under the persist timer. guardian, in the server's
//! namespace, reports the flow once it has stalled `stall_ms` (detection only: the socket is
//! the application's). Stopping the injection makes the client read to the end; the flow
//! resumes and the fault clears.
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, SystemTime};

use socket2::{Domain, Socket, Type};

use super::{ensure, Scenario, Spec};
use crate::daemon::DaemonPlan;
use crate::topology::{pair, Netns, Veth};
use crate::LabError;

pub const SPEC: Spec = Spec {
    fault: "zero_window_stall",
    remedy: None,
    about: "a client with a 4 KiB buffer stops reading a 16 MiB response; reported with the flow",
    detect_timeout: Duration::from_secs(5),
    heal_timeout: Duration::from_secs(5),
    clear_timeout: Duration::from_secs(10),
    build,
};

const PORT: u16 = 5195;
const SIZE: usize = 16 << 20;
/// `stall_ms` of the scenario's config.
const STALL: Duration = Duration::from_millis(2000);

struct Stall {
    c: Netns,
    s: Netns,
    v: Veth,
    /// The client's socket, which reads nothing until `stop`.
    client: Option<TcpStream>,
    server: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

fn build() -> Result<Box<dyn Scenario>, LabError> {
    let c = Netns::new("zw-c")?;
    let s = Netns::new("zw-s")?;
    let v = pair(&c, &s, 237)?;
    Ok(Box::new(Stall {
        c,
        s,
        v,
        client: None,
        server: None,
    }))
}

/// The ms since the server's stalled flow last sent data, from `ss -tino` (its `lastsnd`),
/// once the flow is under the persist timer.
fn persist_lastsnd(s: &Netns) -> Option<u64> {
    let out = s
        .run(&[
            "ss",
            "-Htino",
            "state",
            "established",
            &format!("sport = :{PORT}"),
        ])
        .ok()?;
    if !out.contains("timer:(persist") {
        return None;
    }
    out.split_whitespace()
        .find_map(|w| w.strip_prefix("lastsnd:"))
        .and_then(|v| v.parse().ok())
}

impl Scenario for Stall {
    fn daemon_ns(&self) -> &Netns {
        &self.s
    }

    fn plan(&self) -> DaemonPlan {
        DaemonPlan {
            config: Some(
                "[detect.zero_window_stall]\nstall_ms = 2000\nclear_after_ms = 500\n".into(),
            ),
            args: vec!["--interval-ms".into(), "200".into()],
        }
    }

    fn inject(&mut self) -> Result<SystemTime, LabError> {
        let addr = SocketAddr::from((self.v.b_addr, PORT));
        let listener = self
            .s
            .within(move || TcpListener::bind(addr))?
            .map_err(|e| LabError::Other(format!("bind {addr}: {e}")))?;
        self.server = Some(std::thread::spawn(move || {
            let (mut c, _) = listener.accept()?;
            // Bounded: a client that never reads again fails the write after 60 s.
            c.set_write_timeout(Some(Duration::from_secs(60)))?;
            c.write_all(&vec![b'z'; SIZE])
        }));
        let client = self
            .c
            .within(move || -> std::io::Result<TcpStream> {
                let sock = Socket::new(Domain::IPV4, Type::STREAM, None)?;
                sock.set_recv_buffer_size(4096)?;
                sock.connect_timeout(&addr.into(), Duration::from_secs(2))?;
                Ok(sock.into())
            })?
            .map_err(|e| LabError::Other(format!("connect {addr}: {e}")))?;
        self.client = Some(client);
        // The stall began when the server last sent data; the condition holds `stall_ms` later.
        let t = std::time::Instant::now();
        loop {
            if let Some(ms) = persist_lastsnd(&self.s) {
                return Ok(SystemTime::now() - Duration::from_millis(ms) + STALL);
            }
            if t.elapsed() > Duration::from_secs(5) {
                return Err(LabError::Other(
                    "no persist timer on the server's flow within 5 s".into(),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) -> Result<(), LabError> {
        let Some(mut c) = self.client.take() else {
            return Ok(());
        };
        c.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| LabError::Other(format!("client: {e}")))?;
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0;
        while n < SIZE {
            match c.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) => return Err(LabError::Other(format!("client read: {e}"))),
            }
        }
        if let Some(s) = self.server.take() {
            s.join()
                .map_err(|_| LabError::Other("the server thread panicked".into()))?
                .map_err(|e| LabError::Other(format!("server: {e}")))?;
        }
        ensure(n == SIZE, || format!("the client read {n} of {SIZE} bytes"))
    }

    fn check_end(&mut self) -> Result<(), LabError> {
        ensure(persist_lastsnd(&self.s).is_none(), || {
            "a flow is still under the persist timer".into()
        })
    }
}
