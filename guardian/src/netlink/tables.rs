//! Which routing tables guardian protects: `main`, every table an `ip rule` looks up (IPv4 and
//! IPv6 rules, RTM_GETRULE) and every VRF's table (links of kind `vrf`, IFLA_VRF_TABLE).
//! Never `local` (255, the kernel's own routes) nor table 0 (`unspec`: the `l3mdev` rule,
//! whose tables are the VRFs').
use std::collections::BTreeSet;

use futures::TryStreamExt;
use netlink_packet_route::link::{InfoData, InfoVrf, LinkAttribute, LinkInfo, LinkMessage};
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use rtnetlink::IpVersion;

use super::client::{Netlink, NetlinkError};
use super::consts::{TABLE_LOCAL, TABLE_MAIN};

/// The table a rule sends lookups to, when it is a `lookup TABLE` rule.
pub fn rule_table(m: &RuleMessage) -> Option<u32> {
    if m.header.action != RuleAction::ToTable {
        return None;
    }
    let attr = m.attributes.iter().find_map(|a| match a {
        RuleAttribute::Table(t) => Some(*t),
        _ => None,
    });
    Some(attr.unwrap_or(u32::from(m.header.table)))
}

/// The table of a VRF device.
pub fn vrf_table(m: &LinkMessage) -> Option<u32> {
    m.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
            LinkInfo::Data(InfoData::Vrf(v)) => v.iter().find_map(|x| match x {
                InfoVrf::TableId(t) => Some(*t),
                _ => None,
            }),
            _ => None,
        }),
        _ => None,
    })
}

/// The protected tables: main, plus the rules' and the VRFs' tables but local and unspec.
pub fn watched(rules: &[RuleMessage], links: &[LinkMessage]) -> BTreeSet<u32> {
    let mut tables = BTreeSet::from([TABLE_MAIN]);
    tables.extend(rules.iter().filter_map(rule_table));
    tables.extend(links.iter().filter_map(vrf_table));
    tables.retain(|t| *t != 0 && *t != TABLE_LOCAL);
    tables
}

impl Netlink {
    /// The rules of both families (`ip rule` and `ip -6 rule`).
    pub async fn dump_rules(&self) -> Result<Vec<RuleMessage>, NetlinkError> {
        let mut rules: Vec<RuleMessage> = self
            .handle()
            .rule()
            .get(IpVersion::V4)
            .execute()
            .try_collect()
            .await
            .map_err(|e| NetlinkError::request("rule dump", e))?;
        let v6: Vec<RuleMessage> = self
            .handle()
            .rule()
            .get(IpVersion::V6)
            .execute()
            .try_collect()
            .await
            .map_err(|e| NetlinkError::request("rule dump", e))?;
        rules.extend(v6);
        Ok(rules)
    }

    /// The tables guardian protects now (see the module's doc).
    pub async fn watched_tables(&self) -> Result<BTreeSet<u32>, NetlinkError> {
        let rules = self.dump_rules().await?;
        let links: Vec<LinkMessage> = self
            .handle()
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|e| NetlinkError::request("link dump", e))?;
        Ok(watched(&rules, &links))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::link::InfoKind;
    use netlink_packet_route::AddressFamily;

    fn rule(action: RuleAction, header: u8, attr: Option<u32>) -> RuleMessage {
        let mut m = RuleMessage::default();
        m.header.family = AddressFamily::Inet;
        m.header.action = action;
        m.header.table = header;
        m.attributes.extend(attr.map(RuleAttribute::Table));
        m
    }

    fn vrf(table: u32) -> LinkMessage {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Vrf),
            LinkInfo::Data(InfoData::Vrf(vec![InfoVrf::TableId(table)])),
        ]));
        m
    }

    #[test]
    fn the_table_set_is_main_plus_the_rules_and_vrfs_tables() {
        // the kernel's default rules: local, main, default
        let defaults = [
            rule(RuleAction::ToTable, 255, Some(255)),
            rule(RuleAction::ToTable, 254, Some(254)),
            rule(RuleAction::ToTable, 253, Some(253)),
        ];
        assert_eq!(watched(&defaults, &[]), BTreeSet::from([253, 254]));
        let mut rules = defaults.to_vec();
        // `ip rule add from 10.1.0.0/16 lookup 100`; a table above 255 lives in the attribute
        rules.push(rule(RuleAction::ToTable, 100, Some(100)));
        rules.push(rule(RuleAction::ToTable, 0, Some(1000)));
        // `lookup [l3mdev-table]` (table 0), a goto and a blackhole rule name no table
        rules.push(rule(RuleAction::ToTable, 0, None));
        rules.push(rule(RuleAction::Goto, 0, None));
        rules.push(rule(RuleAction::Blackhole, 0, None));
        let links = [vrf(10), LinkMessage::default()];
        assert_eq!(
            watched(&rules, &links),
            BTreeSet::from([10, 100, 253, 254, 1000])
        );
        // no rules at all (a namespace without rule support): main alone
        assert_eq!(watched(&[], &[]), BTreeSet::from([254]));
        assert_eq!(vrf_table(&vrf(7)), Some(7));
        assert_eq!(vrf_table(&LinkMessage::default()), None);
    }
}
