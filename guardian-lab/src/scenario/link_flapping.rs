//! `link_flapping`: the client's end of the primary link is toggled down/up every 100 ms for
//! 3 s; guardian moves the prefix's routes onto the alternative link for a hold
//! (`route_dampen`, 2 s here). Ends with the routes not on the flapped link as before and the
//! link up.
use std::time::{Duration, Instant, SystemTime};

use super::{ensure, Scenario, Spec};
use crate::daemon::DaemonPlan;
use crate::topology::{pair, wait, Netns, Veth};
use crate::LabError;

pub const SPEC: Spec = Spec {
    fault: "link_flapping",
    remedy: Some("route_dampen"),
    about: "the client's link toggled down/up every 100 ms for 3 s; healed by route_dampen onto the alternative link",
    detect_timeout: Duration::from_secs(5),
    heal_timeout: Duration::from_secs(5),
    clear_timeout: Duration::from_secs(12),
    build,
};

struct Flap {
    c: Netns,
    _s: Netns,
    p: Veth,
    before: String,
    toggler: Option<std::thread::JoinHandle<()>>,
}

fn build() -> Result<Box<dyn Scenario>, LabError> {
    let c = Netns::new("lf-c")?;
    let s = Netns::new("lf-s")?;
    let p = pair(&c, &s, 177)?;
    let a = pair(&c, &s, 178)?;
    s.run(&["ip", "addr", "add", "10.77.179.1/32", "dev", "lo"])?;
    c.run(&[
        "ip",
        "route",
        "add",
        "10.77.179.0/24",
        "via",
        &p.b_addr.to_string(),
    ])?;
    c.run(&[
        "ip",
        "route",
        "add",
        "10.77.179.0/24",
        "via",
        &a.b_addr.to_string(),
        "metric",
        "100",
    ])?;
    let before = c.routes()?;
    Ok(Box::new(Flap {
        c,
        _s: s,
        p,
        before,
        toggler: None,
    }))
}

/// The routes not on `dev` (the flapped link's own routes are the kernel's to flush and
/// route_restore's to put back).
fn off(routes: &str, dev: &str) -> String {
    let dev = format!("dev {dev} ");
    routes
        .lines()
        .filter(|l| !l.contains(&dev))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Scenario for Flap {
    fn daemon_ns(&self) -> &Netns {
        &self.c
    }

    fn plan(&self) -> DaemonPlan {
        DaemonPlan {
            config: Some(
                "[detect.link_flapping]\nclear_after_ms = 1000\n\
                 [remedies.route_dampen]\nhold_ms = 2000\n\
                 [safety]\nper_subject_max = 100\nper_subject_cooldown_s = 0\n\
                 per_remedy_max = 100\nglobal_max_per_hour = 1000\n"
                    .into(),
            ),
            args: vec![
                "--interval-ms".into(),
                "200".into(),
                "--verify-timeout-ms".into(),
                "500".into(),
            ],
        }
    }

    fn inject(&mut self) -> Result<SystemTime, LabError> {
        let ns = format!("--net={}", self.c.path().display());
        let dev = self.p.a_if.clone();
        let set = move |state: &str| {
            let _ = std::process::Command::new("nsenter")
                .args([ns.as_str(), "--", "ip", "link", "set", &dev, state])
                .output();
        };
        let t = SystemTime::now();
        self.toggler = Some(std::thread::spawn(move || {
            let start = Instant::now();
            let mut n = 0u32;
            while start.elapsed() < Duration::from_secs(3) {
                n += 1;
                set(if n % 2 == 1 { "down" } else { "up" });
                std::thread::sleep(Duration::from_millis(100));
            }
            set("up");
        }));
        // The default trigger is 4 transitions: the 4th toggle, 300 ms after the first.
        Ok(t + Duration::from_millis(300))
    }

    fn stop(&mut self) -> Result<(), LabError> {
        if let Some(t) = self.toggler.take() {
            let _ = t.join();
        }
        Ok(())
    }

    fn check_end(&mut self) -> Result<(), LabError> {
        let (c, dev, before) = (&self.c, self.p.a_if.clone(), self.before.clone());
        ensure(
            c.oper_up(&dev) || wait(Duration::from_secs(2), || c.oper_up(&dev)),
            || format!("{dev} is not up at the end"),
        )?;
        ensure(
            wait(Duration::from_secs(8), || {
                c.routes()
                    .is_ok_and(|r| off(&r, &dev) == off(&before, &dev))
            }),
            || format!("the routes differ from before the fault: {:?}", c.routes()),
        )
    }
}
