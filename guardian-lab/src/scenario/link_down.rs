//! `link_down`: the client's veth end is set admin down; guardian (`--keep-up`) brings it back
//! with `link_up`. Ends with the link admin and operationally up.
use std::time::{Duration, SystemTime};

use super::{ensure, Scenario, Spec};
use crate::daemon::DaemonPlan;
use crate::topology::{pair, wait, Netns, Veth};
use crate::LabError;

pub const SPEC: Spec = Spec {
    fault: "link_down",
    remedy: Some("link_up"),
    about: "`ip link set DEV down` on a `--keep-up` veth; healed by link_up",
    detect_timeout: Duration::from_secs(5),
    heal_timeout: Duration::from_secs(5),
    clear_timeout: Duration::from_secs(5),
    build,
};

struct LinkDown {
    a: Netns,
    _b: Netns,
    v: Veth,
}

fn build() -> Result<Box<dyn Scenario>, LabError> {
    let a = Netns::new("ld-a")?;
    let b = Netns::new("ld-b")?;
    let v = pair(&a, &b, 170)?;
    Ok(Box::new(LinkDown { a, _b: b, v }))
}

impl Scenario for LinkDown {
    fn daemon_ns(&self) -> &Netns {
        &self.a
    }

    fn plan(&self) -> DaemonPlan {
        DaemonPlan {
            config: None,
            args: vec!["--keep-up".into(), self.v.a_if.clone()],
        }
    }

    fn inject(&mut self) -> Result<SystemTime, LabError> {
        let t = SystemTime::now();
        self.a.link_set(&self.v.a_if, false)?;
        Ok(t)
    }

    fn stop(&mut self) -> Result<(), LabError> {
        // Nothing to undo: the remedy brought the link back.
        Ok(())
    }

    fn check_end(&mut self) -> Result<(), LabError> {
        let (a, ifname) = (&self.a, &self.v.a_if);
        ensure(wait(Duration::from_secs(2), || a.oper_up(ifname)), || {
            format!("{ifname} is not up at the end")
        })
    }
}
