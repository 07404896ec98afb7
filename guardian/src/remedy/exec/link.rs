//! Links: [`Action::SetLinkUp`](crate::remedy::Action::SetLinkUp) and
//! [`Action::SetLinkDown`](crate::remedy::Action::SetLinkDown) (each the other's inverse),
//! verified by [`Verify::LinkUp`](crate::remedy::Verify::LinkUp). Setting a link up has a
//! precondition: the link exists and is admin down (someone else's fix is not undone).
use crate::netlink::Netlink;
use crate::remedy::error::RemedyError;
use crate::remedy::kernel::Kernel;

/// Why [`Action::SetLinkUp`](crate::remedy::Action::SetLinkUp) must not be applied now, if so.
pub async fn up_precondition(nl: &Netlink, ifindex: u32, name: &str) -> Option<String> {
    match nl.get_link(ifindex).await {
        Ok(Some(l)) if !l.admin_up => None,
        Ok(Some(_)) => Some(format!("interface {name} is already up")),
        Ok(None) => Some(format!("interface {name} no longer exists")),
        Err(e) => Some(format!("cannot read interface {name}: {e}")),
    }
}

pub async fn set_up(k: &mut Kernel, ifindex: u32) -> Result<(), RemedyError> {
    Ok(k.nl.set_link_up(ifindex).await?)
}

pub async fn set_down(k: &mut Kernel, ifindex: u32) -> Result<(), RemedyError> {
    Ok(k.nl.set_link_down(ifindex).await?)
}

/// [`Verify::LinkUp`](crate::remedy::Verify::LinkUp): admin up and oper up.
pub async fn is_up(k: &mut Kernel, ifindex: u32) -> Result<bool, RemedyError> {
    Ok(k.nl.get_link(ifindex).await?.is_some_and(|l| l.is_up()))
}
