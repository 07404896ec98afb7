//! Per-interface byte and packet counters of the daemon's own namespace (rtnetlink link dump,
//! `IFLA_STATS64`), with the capacity the driver reports (`/sys/class/net/IF/speed`) when it
//! reports one. Counters are cumulative; the detector computes rates between samples.
use std::path::Path;

use netlink_packet_core::{NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_route::{
    link::{LinkAttribute, LinkMessage},
    RouteNetlinkMessage,
};

use super::sampler::{Sampler, TickContext};
use crate::input::Input;
use crate::netlink::sync::request;

use crate::model::sample::{LinkCounters, LinkStatsSample};

pub struct LinkStatsSampler {
    /// Logged once, not every tick.
    warned: bool,
}

impl LinkStatsSampler {
    pub fn new() -> Self {
        Self { warned: false }
    }
}

impl Default for LinkStatsSampler {
    fn default() -> Self {
        Self::new()
    }
}

impl Sampler for LinkStatsSampler {
    fn name(&self) -> &'static str {
        "linkstats"
    }
    fn sample(&mut self, ctx: &mut TickContext) -> Vec<Input> {
        match dump() {
            Ok(links) => vec![Input::LinkStats(LinkStatsSample {
                netns: ctx.own_netns,
                links,
            })],
            Err(e) => {
                if !self.warned {
                    tracing::warn!(error = %e, "link statistics dump failed");
                    self.warned = true;
                }
                Vec::new()
            }
        }
    }
}

/// Every link of the current namespace with its 64-bit counters.
pub fn dump() -> Result<Vec<LinkCounters>, String> {
    let replies = request(
        RouteNetlinkMessage::GetLink(LinkMessage::default()),
        NLM_F_REQUEST | NLM_F_DUMP,
    )?;
    let mut out: Vec<LinkCounters> = replies
        .into_iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => counters_from(&l),
            _ => None,
        })
        .collect();
    for l in &mut out {
        l.speed_mbps = speed_mbps(Path::new("/sys/class/net"), &l.iface, l.ifindex);
    }
    out.sort_by_key(|l| l.ifindex);
    Ok(out)
}

fn counters_from(l: &LinkMessage) -> Option<LinkCounters> {
    let mut c = LinkCounters {
        ifindex: l.header.index,
        ..Default::default()
    };
    let mut have = false;
    for a in &l.attributes {
        match a {
            LinkAttribute::IfName(n) => c.iface = n.clone(),
            LinkAttribute::Stats64(s) => {
                c.rx_bytes = s.rx_bytes;
                c.tx_bytes = s.tx_bytes;
                c.rx_packets = s.rx_packets;
                c.tx_packets = s.tx_packets;
                have = true;
            }
            _ => {}
        }
    }
    have.then_some(c)
}

/// The driver's speed in Mbit/s. sysfs shows the namespace that mounted it, which may not be
/// the daemon's (e.g. under `nsenter --net`): the entry is used only if its ifindex matches.
/// Drivers without a speed report -1 (or fail the read).
pub fn speed_mbps(sysfs_net: &Path, iface: &str, ifindex: u32) -> Option<u64> {
    let dir = sysfs_net.join(iface);
    let idx: u32 = std::fs::read_to_string(dir.join("ifindex"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    if idx != ifindex {
        return None;
    }
    parse_speed(&std::fs::read_to_string(dir.join("speed")).ok()?)
}

fn parse_speed(s: &str) -> Option<u64> {
    match s.trim().parse::<i64>().ok()? {
        v if v > 0 && v != u32::MAX as i64 => Some(v as u64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speeds() {
        assert_eq!(parse_speed("1000\n"), Some(1000));
        assert_eq!(parse_speed("-1\n"), None);
        assert_eq!(parse_speed("4294967295"), None);
        assert_eq!(parse_speed(""), None);
    }

    #[test]
    fn sysfs_of_another_namespace_is_ignored() {
        let d = std::env::temp_dir().join(format!("gd-speed-{}", std::process::id()));
        std::fs::create_dir_all(d.join("eth9")).unwrap();
        std::fs::write(d.join("eth9/ifindex"), "7\n").unwrap();
        std::fs::write(d.join("eth9/speed"), "10000\n").unwrap();
        assert_eq!(speed_mbps(&d, "eth9", 7), Some(10000));
        assert_eq!(speed_mbps(&d, "eth9", 8), None);
        assert_eq!(speed_mbps(&d, "nope", 7), None);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
