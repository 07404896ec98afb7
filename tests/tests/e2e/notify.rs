//! sd_notify: the daemon under a stand-in service manager (a unix datagram socket named by
//! `NOTIFY_SOCKET`): READY=1 only once `attached` was emitted, RELOADING=1 then READY=1 at
//! SIGHUP, WATCHDOG=1 pings at half of `WATCHDOG_USEC`, STOPPING=1 at SIGTERM.
use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use guardian_tests::*;

/// Every datagram received, with the time it arrived.
type Log = Arc<Mutex<Vec<(SystemTime, String)>>>;

fn listen(
    sock: UnixDatagram,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> (Log, std::thread::JoinHandle<()>) {
    let log: Log = Arc::default();
    let l = log.clone();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let h = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            if let Ok(n) = sock.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                l.lock().unwrap().push((SystemTime::now(), msg));
            }
        }
    });
    (log, h)
}

fn first(log: &Log, needle: &str) -> Option<(usize, SystemTime)> {
    log.lock()
        .unwrap()
        .iter()
        .enumerate()
        .find(|(_, (_, m))| m.lines().any(|l| l == needle))
        .map(|(i, (t, _))| (i, *t))
}

#[test]
fn ready_after_attached_watchdog_pings_and_stopping_at_sigterm() {
    require_root();
    let a = Netns::new("notify");
    let dir = TempDir::new("notify");
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (log, listener) = listen(sock, stop.clone());
    let mut d = Daemon::start_env(
        &guardian_bin(),
        &a,
        &[],
        // 600 ms watchdog: pings every 300 ms.
        &[
            ("NOTIFY_SOCKET", path.to_str().unwrap()),
            ("WATCHDOG_USEC", "600000"),
        ],
    );
    let attached = d.wait_attached();
    let ready = poll(Duration::from_secs(10), Duration::from_millis(10), || {
        first(&log, "READY=1")
    })
    .unwrap_or_else(|| d.fail("no READY=1 within 10 s of attached"));
    let attached_at = event_time(&attached);
    assert!(
        ready.1 >= attached_at,
        "READY=1 ({:?}) arrived before `attached` was emitted ({attached_at:?})",
        ready.1
    );
    // Nothing announced readiness before attached: the STATUS seen before it is the loading one.
    let early: Vec<String> = log.lock().unwrap()[..ready.0]
        .iter()
        .map(|(_, m)| m.clone())
        .collect();
    assert!(early.iter().all(|m| !m.contains("READY=1")), "{early:?}");
    assert!(
        log.lock().unwrap()[ready.0].1.contains("STATUS=attached"),
        "{:?}",
        log.lock().unwrap()
    );

    // Pings at half the watchdog interval: over 2 s, about 6 (allow a loaded machine).
    let n0 = log
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, m)| m.contains("WATCHDOG=1"))
        .count();
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    let pings = log
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, m)| m.contains("WATCHDOG=1"))
        .count()
        - n0;
    assert!(
        (3..=10).contains(&pings),
        "{pings} WATCHDOG=1 in 2 s with WATCHDOG_USEC=600000"
    );

    // SIGHUP: RELOADING=1 (with MONOTONIC_USEC), then READY=1 again once the reload is done.
    let pid = d.pid().expect("daemon pid") as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    let after = |needle: &'static str, from: usize| {
        poll(Duration::from_secs(10), Duration::from_millis(10), || {
            log.lock().unwrap()[from..]
                .iter()
                .position(|(_, m)| m.contains(needle))
                .map(|i| i + from)
        })
    };
    let reloading = after("RELOADING=1", ready.0 + 1)
        .unwrap_or_else(|| d.fail("no RELOADING=1 within 10 s of SIGHUP"));
    assert!(
        log.lock().unwrap()[reloading].1.contains("MONOTONIC_USEC="),
        "{:?}",
        log.lock().unwrap()[reloading]
    );
    after("READY=1", reloading + 1)
        .unwrap_or_else(|| d.fail("no READY=1 after RELOADING=1 within 10 s"));

    let events = d.finish();
    let stopping = poll(Duration::from_secs(2), Duration::from_millis(10), || {
        first(&log, "STOPPING=1")
    })
    .expect("STOPPING=1 at SIGTERM");
    assert!(stopping.0 > ready.0);
    let stopping_ev = events.iter().find(|e| is_lifecycle(e, "stopping")).unwrap();
    assert!(stopping.1 >= event_time(stopping_ev));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    listener.join().unwrap();
}

#[test]
fn no_watchdog_pings_without_watchdog_usec() {
    require_root();
    let a = Netns::new("notify-nowd");
    let dir = TempDir::new("notify-nowd");
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (log, listener) = listen(sock, stop.clone());
    let mut d = Daemon::start_env(
        &guardian_bin(),
        &a,
        &[],
        &[("NOTIFY_SOCKET", path.to_str().unwrap())],
    );
    d.wait_attached();
    poll(Duration::from_secs(10), Duration::from_millis(10), || {
        first(&log, "READY=1")
    })
    .expect("READY=1");
    std::thread::sleep(Duration::from_millis(1000));
    d.finish();
    poll(Duration::from_secs(2), Duration::from_millis(10), || {
        first(&log, "STOPPING=1")
    })
    .expect("STOPPING=1");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    listener.join().unwrap();
    assert_eq!(first(&log, "WATCHDOG=1"), None, "{:?}", log.lock().unwrap());
}
