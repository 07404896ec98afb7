//! `baseline show|accept [PREFIX]`: the protected routes, and the operator's path to accept a
//! deliberate change (docs/remedies.md, "Routes: what is restored").
use std::collections::HashSet;

use serde_json::{json, Value};

use crate::engine::core::Engine;
use crate::input::Input;
use crate::netlink::protos;
use crate::netlink::{NetEvent, RouteSpec};
use crate::remedy::routing::{protected, Prefix};

/// What `accept` changes: protected routes absent from the kernel's table are dropped,
/// protectable routes present but not protected are added (both limited to `prefix`).
pub(crate) fn accept_diff(
    baseline: &[RouteSpec],
    present: &[RouteSpec],
    prefix: Option<Prefix>,
) -> (Vec<RouteSpec>, Vec<RouteSpec>) {
    let wanted = |r: &RouteSpec| prefix.is_none_or(|p| p.matches(r));
    let keys: HashSet<String> = present.iter().map(RouteSpec::key).collect();
    let dropped = baseline
        .iter()
        .filter(|b| wanted(b) && !keys.contains(&b.key()))
        .cloned()
        .collect();
    let added = present
        .iter()
        .filter(|r| wanted(r) && protected(r) && !baseline.iter().any(|b| b.same_route(r)))
        .cloned()
        .collect();
    (dropped, added)
}

impl Engine {
    pub(super) async fn baseline_request(
        &mut self,
        accept: bool,
        prefix: Option<&str>,
    ) -> Result<Value, String> {
        let prefix = prefix.map(Prefix::parse).transpose()?;
        let present = self
            .kernel
            .nl
            .dump_watched_routes()
            .await
            .map_err(|e| format!("cannot read the routing table: {e}"))?;
        let (dropped, added) = accept_diff(&self.baseline, &present, prefix);
        if !accept {
            let keys: HashSet<String> = present.iter().map(RouteSpec::key).collect();
            let routes: Vec<Value> = self
                .baseline
                .iter()
                .filter(|r| prefix.is_none_or(|p| p.matches(r)))
                .map(|r| {
                    json!({
                        "route": r.key(),
                        "protocol": protos::protocol_name(r.protocol),
                        "owner": protos::owner(r.protocol),
                        "present": keys.contains(&r.key()),
                    })
                })
                .collect();
            let unprotected: Vec<String> = added.iter().map(RouteSpec::key).collect();
            return Ok(json!({"routes": routes, "unprotected": unprotected}));
        }
        let drop_keys: HashSet<String> = dropped.iter().map(RouteSpec::key).collect();
        self.baseline.retain(|b| !drop_keys.contains(&b.key()));
        self.baseline.extend(added.iter().cloned());
        let answer = json!({
            "dropped": dropped.iter().map(RouteSpec::key).collect::<Vec<_>>(),
            "added": added.iter().map(RouteSpec::key).collect::<Vec<_>>(),
        });
        tracing::info!(%answer, "baseline accepted through the control socket");
        self.observe(Input::Net(NetEvent::BaselineAccepted { dropped, added }))
            .await;
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(dst: &str, len: u8, proto: u8) -> RouteSpec {
        let mut r = RouteSpec::new(dst.parse().unwrap(), len).dev(3);
        r.protocol = proto;
        r
    }

    #[test]
    fn accept_drops_what_is_gone_and_adds_what_is_new() {
        let gone = r("10.9.0.0", 24, 3);
        let kept = r("10.8.0.0", 24, 4);
        let new = r("10.7.0.0", 24, 3);
        let kernel_derived = r("10.77.0.0", 24, 2);
        let base = [gone.clone(), kept.clone()];
        let present = [kept.clone(), new.clone(), kernel_derived];
        let (d, a) = accept_diff(&base, &present, None);
        assert_eq!((d, a), (vec![gone.clone()], vec![new.clone()]));
        // limited to one prefix
        let p = Prefix::parse("10.7.0.0/24").unwrap();
        assert_eq!(accept_diff(&base, &present, Some(p)), (vec![], vec![new]));
        let p = Prefix::parse("10.9.0.0/24").unwrap();
        assert_eq!(accept_diff(&base, &present, Some(p)), (vec![gone], vec![]));
        // nothing changed: nothing to do
        assert_eq!(
            accept_diff(
                std::slice::from_ref(&kept),
                std::slice::from_ref(&kept),
                None
            ),
            (vec![], vec![])
        );
    }
}
