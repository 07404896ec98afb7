//! The engine's view of links and routes: netlink events in, the link table kept, protected
//! routes reconciled when their link comes back and after lost notifications.
use std::collections::{HashSet, VecDeque};

use super::core::Engine;
use crate::input::Input;
use crate::netlink::{NetEvent, RouteSpec, Who};

impl Engine {
    /// Feeds events (and whatever they lead to) through the detectors and acts on findings.
    pub(super) async fn process(&mut self, events: Vec<NetEvent>) {
        let mut queue = VecDeque::from(events);
        while let Some(mut ev) = queue.pop_front() {
            if self.shutdown.is_cancelled() {
                return;
            }
            self.resolve_sender(&mut ev);
            tracing::trace!(ev = %crate::logging::json(&ev), "netlink event");
            let came_up = self.track_link(&ev);
            let gone_with = super::addr_loss::removal_by_process(&ev);
            self.observe(Input::Net(ev)).await;
            if let Some(ifindex) = came_up {
                queue.extend(self.reconcile_routes(Some(ifindex)).await);
            }
            if let Some((ifindex, by)) = gone_with {
                queue.extend(self.routes_gone_with_address(ifindex, by).await);
            }
        }
    }

    /// Says which process made a change guardian may report: link changes and changes of
    /// baseline routes (a control plane's churn of other routes is not looked up).
    fn resolve_sender(&mut self, ev: &mut NetEvent) {
        let wanted = match &*ev {
            NetEvent::RouteAdded(r) | NetEvent::RouteDeleted(r) => {
                self.baseline.iter().any(|b| b.same_route(r))
            }
            NetEvent::AddressRemoved { ifindex, .. } => {
                self.baseline.iter().any(|b| b.oif == Some(*ifindex))
            }
            _ => true,
        };
        if let (true, Some(who)) = (wanted, ev.by_mut()) {
            self.senders.resolve(who);
        }
    }

    /// Keeps the engine's link table; returns the ifindex of a link that just came up and
    /// carries protected routes. (The kernel drops a link's IPv4 routes without any
    /// RTM_DELROUTE when it goes down, so they must be looked for when it comes back.)
    fn track_link(&mut self, ev: &NetEvent) -> Option<u32> {
        match ev {
            NetEvent::Link(l) => {
                let was_up = self
                    .links
                    .insert(l.ifindex, l.what.clone())
                    .is_some_and(|p| p.is_up());
                let carries = self.baseline.iter().any(|r| r.uses_oif(l.ifindex));
                (l.is_up() && !was_up && carries).then_some(l.ifindex)
            }
            NetEvent::LinkRemoved { ifindex, .. } => {
                self.links.remove(ifindex);
                None
            }
            _ => None,
        }
    }

    /// Compares the protected routes (of one output interface, or all) with the kernel's
    /// table and returns the matching `RouteAdded` / `RouteDeleted` events. A route missing
    /// when its link came back up was flushed by the kernel while the link was down (it sends
    /// no RTM_DELROUTE for those); after lost notifications nobody knows who took it.
    async fn reconcile_routes(&self, oif: Option<u32>) -> Vec<NetEvent> {
        let tables = self.baseline.iter().map(|b| b.table).collect();
        let present = match self.kernel.nl.dump_tables(&tables).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("cannot re-read routes: {e}");
                return vec![];
            }
        };
        let keys: HashSet<String> = present.iter().map(RouteSpec::key).collect();
        self.baseline
            .iter()
            .filter(|b| oif.is_none_or(|i| b.uses_oif(i)))
            .map(|b| {
                if keys.contains(&b.key()) {
                    NetEvent::RouteAdded(b.clone().into())
                } else {
                    let by = oif.map(|_| Who::kernel("flushed while its link was down"));
                    NetEvent::RouteDeleted(crate::netlink::Change::by(b.clone(), by))
                }
            })
            .collect()
    }

    /// A rule was added or deleted: tables it names that were not protected are from now on,
    /// with their routes as they are now (a snapshot, as at start), through the recorded input
    /// `guardian baseline accept` also uses. A table no rule names any more stays protected.
    pub(super) async fn rules_changed(&mut self) {
        let tables = match self.kernel.nl.watched_tables().await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!("cannot re-read the routing rules: {e}");
                return;
            }
        };
        let new: std::collections::BTreeSet<u32> =
            tables.difference(&self.tables).copied().collect();
        if new.is_empty() {
            return;
        }
        let routes = match self.kernel.nl.dump_tables(&new).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("cannot read the routes of tables {new:?}: {e}");
                return;
            }
        };
        self.tables.extend(new.iter().copied());
        let added: Vec<RouteSpec> = routes
            .into_iter()
            .filter(crate::remedy::routing::protected)
            .filter(|r| !self.baseline.iter().any(|b| b.same_route(r)))
            .collect();
        tracing::info!(tables = ?new, routes = added.len(), "tables named by new rules are protected");
        if added.is_empty() {
            return;
        }
        self.baseline.extend(added.iter().cloned());
        let ev = NetEvent::BaselineAccepted {
            dropped: Vec::new(),
            added,
        };
        self.observe(Input::Net(ev)).await;
    }

    /// After lost notifications: re-read links and routes and feed the differences.
    pub(super) async fn resync(&mut self) {
        let links = match self.kernel.nl.dump_links().await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("cannot re-read links: {e}");
                return;
            }
        };
        let mut events: Vec<NetEvent> = self
            .links
            .values()
            .filter(|old| !links.iter().any(|l| l.ifindex == old.ifindex))
            .map(|old| NetEvent::LinkRemoved {
                ifindex: old.ifindex,
                name: old.name.clone(),
                by: None,
            })
            .collect();
        events.extend(links.into_iter().map(|l| NetEvent::Link(l.into())));
        events.extend(self.reconcile_routes(None).await);
        self.process(events).await;
    }
}
