//! Drop-in merging: a later file's tables merge key by key into the earlier ones; any other
//! value (arrays included) replaces the earlier value whole.
pub fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(key, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> toml::Table {
        toml::from_str(s).unwrap()
    }

    #[test]
    fn tables_merge_key_by_key_and_arrays_replace() {
        let mut base = t("[safety]\nmax_targets = 4\nprotected_ports = [22, 443]\n\
             [remedies.modes]\nlink_up = \"off\"\n");
        merge(
            &mut base,
            t("[safety]\nprotected_ports = [8080]\n[remedies.modes]\nsysctl = \"observe\"\n"),
        );
        assert_eq!(
            base,
            t("[safety]\nmax_targets = 4\nprotected_ports = [8080]\n\
               [remedies.modes]\nlink_up = \"off\"\nsysctl = \"observe\"\n")
        );
    }

    #[test]
    fn a_later_scalar_replaces_a_table_and_vice_versa() {
        let mut base = t("a = 1\n[b]\nc = 2\n");
        merge(&mut base, t("b = 3\n[a]\nd = 4\n"));
        assert_eq!(base, t("b = 3\n[a]\nd = 4\n"));
    }
}
