//! The `[[hosts]]` entries: each entry's `addresses` (ranges expanded), `roles`, `ssh` and
//! `hostname`, into one [`Host`] per address, in file order. Also the checks over all entries:
//! an address listed twice (both positions shown) and at most [`MAX_HOSTS`] hosts in all.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use toml::de::{DeArray, DeValue};
use toml::Spanned;

use super::address::{check_dns_name, expand, Address, AddressError};
use super::error::{ClusterfileError, Span};
use super::ssh::{SshLayer, SshSettings};
use super::walker::{closest, Cx};

/// The most hosts a Clusterfile may name in all (ranges included).
pub const MAX_HOSTS: usize = 65_536;

const HOST_KEYS: &[&str] = &["addresses", "roles", "ssh", "hostname"];

#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    pub address: Address,
    pub roles: BTreeSet<Role>,
    /// `[ssh]` defaults with this entry's `ssh = { ... }` merged over them.
    pub ssh: SshSettings,
    pub hostname: Option<String>,
    /// Where the address (or the range it came from) is written.
    pub origin: Span,
}

impl Host {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Master,
    Node,
    Registry,
}

impl Role {
    const NAMES: [&'static str; 3] = ["master", "node", "registry"];

    fn parse(s: &str) -> Option<Role> {
        match s {
            "master" => Some(Role::Master),
            "node" => Some(Role::Node),
            "registry" => Some(Role::Registry),
            _ => None,
        }
    }
}

impl Cx<'_> {
    /// The `[[hosts]]` entries (`entry`: the top-level `hosts`, if written), each entry's `ssh`
    /// merged over `defaults`. None if `hosts` is missing or not an array, or names too many.
    pub(super) fn hosts(
        &mut self,
        entry: Option<(Range<usize>, &Spanned<DeValue<'_>>)>,
        defaults: &SshLayer,
    ) -> Option<Vec<Host>> {
        let Some((_, value)) = entry else {
            self.push(ClusterfileError::MissingKey {
                at: self.span(0..0),
                key: "hosts".into(),
                table: "the top level ([[hosts]] entries)".into(),
            });
            return None;
        };
        let Some(entries) = value.get_ref().as_array() else {
            self.wrong_type("hosts", value, "an array of tables ([[hosts]])");
            return None;
        };
        let mut hosts: Vec<Host> = Vec::new();
        let mut first_seen: BTreeMap<Address, Span> = BTreeMap::new();
        let mut total_addresses = 0usize;
        for entry in entries.iter() {
            let Some(table) = self.table("hosts", entry) else {
                continue;
            };
            let fields = self.known(table, "[[hosts]]", HOST_KEYS);
            let get = |name: &str| fields.iter().find(|(k, _, _)| *k == name).map(|(_, _, v)| *v);
            let entry_at = entry.span();

            let mut addresses: Vec<(Address, Range<usize>)> = Vec::new();
            match self.entry_list("addresses", get("addresses"), &entry_at) {
                None => {}
                Some((v, list)) if list.is_empty() => {
                    self.invalid("addresses", v, "[]", "it is empty", "list at least one address")
                }
                Some((_, list)) => {
                    for item in list.iter() {
                        let Some(s) = self.string("addresses", item) else {
                            continue;
                        };
                        match expand(&s) {
                            Ok(list) if total_addresses + list.len() > MAX_HOSTS => {
                                self.push(ClusterfileError::TooManyHosts {
                                    at: self.span(item.span()),
                                    max: MAX_HOSTS,
                                });
                                return None;
                            }
                            Ok(list) => {
                                total_addresses += list.len();
                                addresses.extend(list.into_iter().map(|a| (a, item.span())))
                            }
                            Err(AddressError::Address(reason)) => self.push(ClusterfileError::BadAddress {
                                at: self.span(item.span()),
                                value: s,
                                reason,
                            }),
                            Err(AddressError::Range(reason)) => self.push(ClusterfileError::BadRange {
                                at: self.span(item.span()),
                                value: s,
                                reason,
                            }),
                        }
                    }
                }
            }

            let mut roles = BTreeSet::new();
            match self.entry_list("roles", get("roles"), &entry_at) {
                None => {}
                Some((v, list)) if list.is_empty() => self.push(ClusterfileError::NoRoles {
                    at: self.span(v.span()),
                }),
                Some((_, list)) => {
                    for item in list.iter() {
                        let Some(s) = self.string("roles", item) else { continue };
                        match Role::parse(&s) {
                            Some(r) => {
                                roles.insert(r);
                            }
                            None => self.push(ClusterfileError::UnknownRole {
                                at: self.span(item.span()),
                                suggestion: closest(&s, Role::NAMES),
                                role: s,
                            }),
                        }
                    }
                }
            }

            let over = match get("ssh").and_then(|v| self.table("ssh", v)) {
                Some(t) => self.ssh_layer(t, "a host's ssh"),
                None => SshLayer::default(),
            };
            let ssh = self.resolve(defaults, &over);

            let mut hostname = None;
            if let Some(v) = get("hostname") {
                if let Some(s) = self.nonempty("hostname", v) {
                    if addresses.len() > 1 {
                        self.push(ClusterfileError::HostnameOnMultiAddress {
                            at: self.span(v.span()),
                            addresses: addresses.len(),
                        });
                    } else if let Err(reason) = check_dns_name(&s) {
                        self.invalid(
                            "hostname",
                            v,
                            &s,
                            &reason.to_string(),
                            "use letters, digits, `-` and `.`",
                        );
                    } else {
                        hostname = Some(s);
                    }
                }
            }

            for (address, r) in addresses {
                let origin = self.span(r);
                if let Some(first) = first_seen.get(&address) {
                    self.push(ClusterfileError::DuplicateHost {
                        at: origin,
                        address: address.to_string(),
                        first: first.clone(),
                    });
                    continue;
                }
                first_seen.insert(address.clone(), origin.clone());
                hosts.push(Host {
                    address,
                    roles: roles.clone(),
                    ssh: ssh.clone(),
                    hostname: hostname.clone(),
                    origin,
                });
            }
        }
        Some(hosts)
    }

    /// A `[[hosts]]` entry's `key`, an array of strings: reported if missing (at the entry) or
    /// not an array, else the value and its items.
    fn entry_list<'t, 'i>(
        &mut self,
        key: &str,
        value: Option<&'t Spanned<DeValue<'i>>>,
        entry_at: &Range<usize>,
    ) -> Option<(&'t Spanned<DeValue<'i>>, &'t DeArray<'i>)> {
        let Some(v) = value else {
            self.push(ClusterfileError::MissingKey {
                at: self.span(entry_at.clone()),
                key: key.into(),
                table: "[[hosts]]".into(),
            });
            return None;
        };
        let list = v.get_ref().as_array();
        if list.is_none() {
            self.wrong_type(key, v, "an array of strings");
        }
        list.map(|l| (v, l))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clusterfile::tests::{errs, ok, one, E, MINIMAL};

    #[test]
    fn roles_missing_empty_unknown() {
        let (e, line, col) =
            one("name = \"c\"\n[[hosts]]\naddresses = [\"10.0.0.1\"]\nroles = [\"master\", \"mastr\"]\n");
        assert!(
            matches!(&e, E::UnknownRole { role, suggestion: Some(s), .. } if role == "mastr" && s == "master"),
            "{e}"
        );
        assert_eq!((line, col), (4, 20));

        let all = errs("name = \"c\"\n[[hosts]]\naddresses = [\"10.0.0.1\"]\n");
        assert!(
            matches!(&all[..], [E::MissingKey { key, .. }] if key == "roles"),
            "{all:#?}"
        );

        let all = errs("name = \"c\"\n[[hosts]]\naddresses = [\"10.0.0.1\"]\nroles = []\n");
        assert!(
            matches!(&all[..], [E::NoRoles { at }] if at.line == 4 && at.column == 9),
            "{all:#?}"
        );
    }

    #[test]
    fn duplicate_host_names_both_positions() {
        let (e, line, col) = one(&format!(
            "{MINIMAL}[[hosts]]\naddresses = [\"10.0.0.2\", \"10.0.0.0-1\"]\nroles = [\"node\"]\n"
        ));
        match &e {
            E::DuplicateHost { address, first, .. } => {
                assert_eq!(address, "10.0.0.1");
                assert_eq!((first.line, first.column), (3, 14));
            }
            other => panic!("{other}"),
        }
        assert_eq!((line, col), (6, 26));
        assert!(e.to_string().contains("first at cluster.toml:3:14"), "{e}");
    }

    #[test]
    fn bad_addresses_and_ranges() {
        let all = errs(&format!(
            "{MINIMAL}[[hosts]]\naddresses = [\"10.0.0.9-10.0.0.3\", \"10.0.0.0-10.2.0.0\", \"10.0.0.256\", \"a..b\"]\nroles = [\"node\"]\n"
        ));
        let found: Vec<_> = all
            .iter()
            .map(|e| match e {
                E::BadRange { at, .. } => ("range", at.line, at.column),
                E::BadAddress { at, .. } => ("address", at.line, at.column),
                other => panic!("{other}"),
            })
            .collect();
        assert_eq!(
            found,
            [
                ("range", 6, 14),
                ("range", 6, 35),
                ("address", 6, 56),
                ("address", 6, 70)
            ],
            "{all:#?}"
        );
    }

    #[test]
    fn hostname_only_on_single_address() {
        let (e, line, col) =
            one("name = \"c\"\n[[hosts]]\naddresses = [\"10.0.0.1-2\"]\nroles = [\"master\"]\nhostname = \"m\"\n");
        assert!(matches!(e, E::HostnameOnMultiAddress { addresses: 2, .. }), "{e}");
        assert_eq!((line, col), (5, 12));
    }

    #[test]
    fn address_ranges_are_capped_in_all_not_only_each() {
        let ranges: Vec<String> = (0..100).map(|i| format!("\"10.{i}.0.0-10.{i}.255.255\"")).collect();
        let text = format!(
            "name = \"c\"\n[[hosts]]\naddresses = [{}]\nroles = [\"master\"]\n",
            ranges.join(", ")
        );
        let (e, line, _) = one(&text);
        assert!(
            matches!(e, ClusterfileError::TooManyHosts { max: MAX_HOSTS, .. }),
            "{e:?}"
        );
        assert_eq!(line, 3);
        // One full range is still fine.
        let c = ok("name = \"c\"\n[[hosts]]\naddresses = [\"10.0.0.0-10.0.255.255\"]\nroles = [\"master\"]\n");
        assert_eq!(c.hosts.len(), MAX_HOSTS);
    }
}
