//! The Clusterfile as a whole: the parsed [`Clusterfile`] and what the installer asks of it, and
//! the walk of its top level (`name`, `[env]`, `[registry]`, the kinds' tables, `hosts`) with
//! the checks that need all of it: some host is a master, and the registry host is one of the
//! hosts.

use std::collections::BTreeMap;

use toml::de::DeTable;
use toml::Spanned;

use super::address::{is_dns_label, Address};
use super::error::ClusterfileError;
use super::hosts::{Host, Role};
use super::kind_tables::Tables;
use super::ssh::{SshLayer, SshSettings};
use super::walker::{is_identifier, is_password_key, At, Cx};

/// A parsed Clusterfile with ranges expanded and per-host SSH settings resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Clusterfile {
    pub name: String,
    /// The `[ssh]` defaults (already merged into every host's `ssh`).
    pub ssh: SshSettings,
    pub registry: RegistryEndpoint,
    pub env: BTreeMap<String, String>,
    /// The tables bundle kinds own ([`Tables`]), defaults filled in.
    pub kinds: Tables,
    /// One per address, ranges expanded, in file order.
    pub hosts: Vec<Host>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RegistryEndpoint {
    pub host: Address,
    pub port: u16,
}

impl Clusterfile {
    pub fn masters(&self) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(|h| h.has_role(Role::Master))
    }

    pub fn first_master(&self) -> &Host {
        self.masters()
            .next()
            .expect("parse rejects a Clusterfile without a master")
    }

    /// Hosts with the `node` role.
    pub fn nodes(&self) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(|h| h.has_role(Role::Node))
    }

    /// The host with this address (an IP in any notation, or a DNS name in any case).
    #[allow(dead_code)] // for `add-node --host ADDRESS` (install issue); tested below
    pub fn by_address(&self, address: &str) -> Option<&Host> {
        let wanted = Address::parse(address).ok()?;
        self.hosts.iter().find(|h| h.address == wanted)
    }

    /// The host that runs the registry mirror.
    pub fn registry_host(&self) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.address == self.registry.host)
            .expect("parse checks that the registry host is one of the hosts")
    }
}

/// The top-level keys: the engine's, with the kinds' tables before `hosts`.
fn top_keys() -> Vec<&'static str> {
    let mut keys = vec!["name", "ssh", "registry", "env"];
    keys.extend(Tables::NAMES);
    keys.push("hosts");
    keys
}
const REGISTRY_KEYS: &[&str] = &["host", "port"];

impl Cx<'_> {
    pub(super) fn clusterfile(&mut self, root: &Spanned<DeTable<'_>>) -> Option<Clusterfile> {
        let top = self.known(root.get_ref(), "the top level", &top_keys());
        let get = |name: &str| {
            top.iter()
                .find(|(k, _, _)| *k == name)
                .map(|(_, ks, v)| (ks.clone(), *v))
        };

        let name = match get("name") {
            // The name becomes /var/lib/delivery/<name> here and on every host, and a word in
            // their shell commands: a DNS label, nothing else.
            Some((_, v)) => self.nonempty("name", v).and_then(|n| {
                if is_dns_label(&n) {
                    Some(n)
                } else {
                    let shown: String = n.chars().take(64).map(|c| if c.is_control() { '?' } else { c }).collect();
                    self.invalid(
                        "name",
                        v,
                        &shown,
                        "not a DNS label",
                        "1 to 63 lowercase letters, digits and `-`, starting and ending with a letter or digit, e.g. \"prod-eu\"",
                    );
                    None
                }
            }),
            None => {
                self.push(ClusterfileError::MissingKey {
                    at: self.span(0..0),
                    key: "name".into(),
                    table: "the top level".into(),
                });
                None
            }
        };

        let defaults = match get("ssh").and_then(|(_, v)| self.table("ssh", v)) {
            Some(t) => self.ssh_layer(t, "[ssh]"),
            None => SshLayer::default(),
        };
        let ssh = self.resolve(&defaults, &SshLayer::default());

        let mut env = BTreeMap::new();
        if let Some(t) = get("env").and_then(|(_, v)| self.table("env", v)) {
            for (k, v) in t.iter() {
                let key: &str = k.get_ref();
                if is_password_key(key) {
                    self.push(ClusterfileError::LiteralPassword {
                        at: self.span(k.span()),
                        key: key.to_owned(),
                    });
                } else if !is_identifier(key) {
                    self.push(ClusterfileError::BadEnvKey {
                        at: self.span(k.span()),
                        key: key.to_owned(),
                    });
                } else if let Some(value) = self.string(key, v) {
                    env.insert(key.to_owned(), value);
                }
            }
        }

        let hosts = self.hosts(get("hosts"), &defaults);
        let mut kinds = Tables::default();
        for name in Tables::NAMES {
            if let Some(t) = get(name).and_then(|(_, v)| self.table(name, v)) {
                kinds.parse(self, name, t, hosts.as_deref().unwrap_or(&[]));
            }
        }

        let mut registry_host: Option<At<Address>> = None;
        let mut registry_port = Some(5000);
        if let Some(t) = get("registry").and_then(|(_, v)| self.table("registry", v)) {
            for (key, _, v) in self.known(t, "[registry]", REGISTRY_KEYS) {
                match key {
                    "host" => {
                        if let Some(s) = self.nonempty(key, v) {
                            match Address::parse(&s) {
                                Ok(a) => registry_host = Some((a, v.span())),
                                Err(reason) => self.push(ClusterfileError::BadAddress {
                                    at: self.span(v.span()),
                                    value: s,
                                    reason,
                                }),
                            }
                        }
                    }
                    _ => registry_port = self.port(key, v),
                }
            }
        }

        let hosts = hosts?;
        let first_master = hosts.iter().find(|h| h.has_role(Role::Master));
        let role_errors = self.errors.iter().any(|e| {
            matches!(
                e,
                ClusterfileError::NoRoles { .. } | ClusterfileError::UnknownRole { .. }
            ) || matches!(e, ClusterfileError::MissingKey { key, .. } if key == "roles")
        });
        // A misspelt or missing role is the likelier cause: don't pile "no master" on top of it.
        if first_master.is_none() && !role_errors {
            let at = get("hosts").map_or(0..0, |(ks, _)| ks);
            self.push(ClusterfileError::NoMaster { at: self.span(at) });
        }
        let registry_address = match registry_host {
            Some((a, r)) => {
                if !hosts.iter().any(|h| h.address == a) {
                    self.push(ClusterfileError::RegistryHostNotInCluster {
                        at: self.span(r),
                        host: a.to_string(),
                    });
                }
                a
            }
            None => hosts
                .iter()
                .find(|h| h.has_role(Role::Registry))
                .or(first_master)?
                .address
                .clone(),
        };
        Some(Clusterfile {
            name: name?,
            ssh,
            registry: RegistryEndpoint {
                host: registry_address,
                port: registry_port?,
            },
            env,
            kinds,
            hosts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clusterfile::tests::{ip, ok, one, with, E, HOSTS, MINIMAL};

    #[test]
    fn by_address_normalises() {
        let c = ok("name = \"c\"\n[[hosts]]\naddresses = [\"fd00::1\", \"Master.Example\"]\nroles = [\"master\"]\n");
        assert!(c.by_address("fd00:0:0::1").is_some());
        assert!(c.by_address("master.example").is_some());
        assert!(c.by_address("10.9.9.9").is_none());
    }

    #[test]
    fn no_master() {
        let (e, line, col) = one("name = \"c\"\n[[hosts]]\naddresses = [\"10.0.0.1\"]\nroles = [\"node\"]\n");
        assert!(matches!(e, E::NoMaster { .. }), "{e}");
        assert_eq!(line, 2, "{e} at column {col}");
    }

    #[test]
    fn registry_host_must_be_a_host() {
        let (e, line, col) = one(&with("[registry]\nhost = \"10.0.0.99\"\n"));
        assert!(
            matches!(&e, E::RegistryHostNotInCluster { host, .. } if host == "10.0.0.99"),
            "{e}"
        );
        assert_eq!((line, col), (3, 8));
        let c = ok(&format!(
            "{MINIMAL}[[hosts]]\naddresses = [\"10.0.0.2\"]\nroles = [\"node\", \"registry\"]\n"
        ));
        assert_eq!(c.registry.host, ip("10.0.0.2"));
    }

    #[test]
    fn a_cluster_name_that_would_escape_its_directory_or_a_shell_word_is_refused() {
        for bad in [
            "../../etc",
            "prod/eu",
            "a'b",
            "a\\nb",
            "a\\u0000b",
            "Prod",
            "-x",
            "x-",
            "a b",
        ] {
            let (e, line, col) = one(&format!("name = \"{bad}\"\n{HOSTS}"));
            assert!(
                matches!(&e, ClusterfileError::InvalidValue { key, .. } if key == "name"),
                "{bad}: {e:?}"
            );
            assert_eq!((line, col), (1, 8), "{bad}");
            let text = e.to_string();
            assert!(!text.contains('\n') || text.contains("hint"), "{text}");
            assert!(!text.contains('\0'), "{text}");
        }
        let (e, ..) = one(&format!("name = \"{}\"\n{HOSTS}", "a".repeat(64)));
        assert!(matches!(&e, ClusterfileError::InvalidValue { key, .. } if key == "name"));
        for good in ["c", "prod-eu", "a1", &"a".repeat(63)] {
            assert_eq!(ok(&format!("name = \"{good}\"\n{HOSTS}")).name, *good);
        }
    }

    #[test]
    fn bad_env_keys() {
        let (e, line, col) = one(&with("[env]\n\"\" = \"x\"\n"));
        assert!(matches!(&e, E::BadEnvKey { key, .. } if key.is_empty()), "{e}");
        assert_eq!((line, col), (3, 1));
        let (e, ..) = one(&with("[env]\n\"1X\" = \"x\"\n"));
        assert!(matches!(e, E::BadEnvKey { .. }), "{e}");
    }
}
