//! What each change kind does to the kernel, one file per kind: its precondition (checked on
//! live state just before applying), its execution, its verification, and which action is its
//! inverse. [`Action`] and [`Verify`] (data, journaled) dispatch here; the engine calls
//! [`precondition`], [`Action::execute`] and [`Verify::check`].
mod failfast;
mod link;
mod route;
pub(super) mod socket;
mod sysctl;
mod xdp;

use futures::future::BoxFuture;

use super::action::{Action, Verify};
use super::error::RemedyError;
use super::kernel::Kernel;
use crate::netlink::Netlink;

/// Why the change must not be applied now, if it must not. Checks live kernel state, so a
/// change never undoes someone else's fix and its inverse stays exact.
pub async fn precondition(nl: &Netlink, action: &Action) -> Option<String> {
    match action {
        Action::SetLinkUp { ifindex, name } => link::up_precondition(nl, *ifindex, name).await,
        Action::AddRoute(r) => route::add_precondition(nl, r).await,
        _ => None,
    }
}

impl Action {
    /// Applies the action.
    pub fn execute<'a>(&'a self, k: &'a mut Kernel) -> BoxFuture<'a, Result<(), RemedyError>> {
        Box::pin(async move {
            match self {
                Action::SetLinkUp { ifindex, .. } => link::set_up(k, *ifindex).await,
                Action::SetLinkDown { ifindex, .. } => link::set_down(k, *ifindex).await,
                Action::AddRoute(r) => route::add(k, r).await,
                Action::DelRoute(r) => route::del(k, r).await,
                Action::ReplaceRoute { from, to } => route::replace(k, from, to).await,
                Action::SetSysctl { netns, key, value } => {
                    sysctl::apply(k, *netns, key, value).await
                }
                Action::DestroySocket(s) => socket::destroy(k, s).await,
                Action::XdpLimitInsert(s) => xdp::insert(k, s).await,
                Action::XdpLimitRemove { key } => xdp::remove(k, key).await,
                Action::All { actions, undo } => {
                    for (i, a) in actions.iter().enumerate() {
                        if let Err(e) = a.execute(k).await {
                            for u in undo[..i].iter().rev() {
                                if let Err(ue) = u.execute(k).await {
                                    tracing::error!("undoing a partial change ({u}) failed: {ue}");
                                }
                            }
                            return Err(e);
                        }
                    }
                    Ok(())
                }
                Action::FailfastInsert(p) => failfast::insert(k, p).await,
                Action::FailfastRemove(d) => failfast::remove(k, d).await,
                Action::Nothing => Ok(()),
            }
        })
    }
}

impl Verify {
    /// Asks the kernel once whether the condition holds.
    pub fn check<'a>(&'a self, k: &'a mut Kernel) -> BoxFuture<'a, Result<bool, RemedyError>> {
        Box::pin(async move {
            match self {
                Verify::LinkUp { ifindex } => link::is_up(k, *ifindex).await,
                Verify::RoutePresent(r) => route::is_present(k, r).await,
                Verify::RouteAbsent(r) => Ok(!route::is_present(k, r).await?),
                Verify::RouteVia { dst, oif, gateway } => {
                    route::resolves_via(k, *dst, *oif, *gateway).await
                }
                Verify::Sysctl { netns, key, value } => sysctl::check(k, *netns, key, value).await,
                Verify::SocketGone(s) => socket::gone(k, s).await,
                Verify::XdpLimitPresent { key } => xdp::present(k, key).await,
                Verify::All { checks } => {
                    for c in checks {
                        if !c.check(k).await? {
                            return Ok(false);
                        }
                    }
                    Ok(true)
                }
                Verify::FailfastPresent(p) => failfast::present(k, p).await,
                Verify::Nothing => Ok(true),
            }
        })
    }
}
