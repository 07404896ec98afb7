//! The engine's view of links and routes: netlink events in, the link table kept, protected
//! routes reconciled when their link comes back and after lost notifications.
use std::collections::{HashSet, VecDeque};

use super::core::Engine;
use crate::input::Input;
use crate::netlink::{NetEvent, RouteSpec};

impl Engine {
    /// Feeds events (and whatever they lead to) through the detectors and acts on findings.
    pub(super) async fn process(&mut self, events: Vec<NetEvent>) {
        let mut queue = VecDeque::from(events);
        while let Some(ev) = queue.pop_front() {
            if self.shutdown.is_cancelled() {
                return;
            }
            tracing::trace!(?ev, "netlink event");
            let came_up = self.track_link(&ev);
            self.observe(Input::Net(ev)).await;
            if let Some(ifindex) = came_up {
                queue.extend(self.reconcile_routes(Some(ifindex)).await);
            }
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
                    .insert(l.ifindex, l.clone())
                    .is_some_and(|p| p.is_up());
                let carries = self.baseline.iter().any(|r| r.oif == Some(l.ifindex));
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
    /// table and returns the matching `RouteAdded` / `RouteDeleted` events.
    async fn reconcile_routes(&self, oif: Option<u32>) -> Vec<NetEvent> {
        let present = match self.kernel.nl.dump_routes().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("cannot re-read routes: {e}");
                return vec![];
            }
        };
        let keys: HashSet<String> = present.iter().map(RouteSpec::key).collect();
        self.baseline
            .iter()
            .filter(|b| oif.is_none() || b.oif == oif)
            .map(|b| {
                if keys.contains(&b.key()) {
                    NetEvent::RouteAdded(b.clone())
                } else {
                    NetEvent::RouteDeleted(b.clone())
                }
            })
            .collect()
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
            })
            .collect();
        events.extend(links.into_iter().map(NetEvent::Link));
        events.extend(self.reconcile_routes(None).await);
        self.process(events).await;
    }
}
