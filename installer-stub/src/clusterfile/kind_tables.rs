//! The Clusterfile tables that bundle kinds own (`[kubernetes]`): [`Tables`], parsed with their
//! defaults whatever the bundle's kind (`check-config` reads the file alone), on the walker, so
//! that their errors point at file:line:column like every other.
//!
//! What a table's keys mean is its kind's crate's (`kubernetes::config` checks every value);
//! this file only walks the table and reports. It lives here rather than beside its kind in
//! `kinds/` so that the dependency goes one way: `kinds` reads a parsed [`super::Clusterfile`],
//! and the Clusterfile knows nothing of `kinds`. A kind with a table adds a field of
//! [`Tables`], its name to [`Tables::NAMES`] and its walk here.

use std::collections::BTreeMap;

use kubernetes::config::{Kubernetes, NameRules, KEYS};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::address::{check_dns_name, Address};
use super::error::ClusterfileError;
use super::hosts::Host;
use super::walker::Cx;

/// The `[kubernetes]` table's name.
const KUBERNETES: &str = "kubernetes";

/// The Clusterfile tables that kinds own, parsed with their defaults (whatever the bundle's
/// kind: `check-config` reads the file alone).
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Tables {
    /// `[kubernetes]`.
    pub kubernetes: Kubernetes,
}

impl Tables {
    /// The top-level keys of these tables.
    pub const NAMES: [&'static str; 1] = [KUBERNETES];

    /// Parses the table `name` (one of [`Tables::NAMES`]), reporting problems to `cx` at their
    /// positions; `hosts` are the Clusterfile's hosts.
    pub(super) fn parse(&mut self, cx: &mut Cx<'_>, name: &str, table: &DeTable<'_>, hosts: &[Host]) {
        match name {
            KUBERNETES => self.kubernetes = parse_kubernetes(cx, table, hosts),
            _ => unreachable!("parse is called with the names of Tables::NAMES, got `{name}`"),
        }
    }
}

/// `[kubernetes]`: every key checked by the `kubernetes` crate, every problem at its position.
fn parse_kubernetes(cx: &mut Cx<'_>, t: &DeTable<'_>, hosts: &[Host]) -> Kubernetes {
    let rules = NameRules {
        // The kubernetes crate cannot name this crate's NameError: it takes the reason's text.
        dns_name: |s| check_dns_name(s).map_err(|e| e.to_string()),
        address: |s| Address::parse(s).map(drop).map_err(|e| e.to_string()),
    };
    let mut k = Kubernetes::default();
    let mut at: BTreeMap<&str, &Spanned<DeValue<'_>>> = BTreeMap::new();
    for (key, _, v) in cx.known(t, "[kubernetes]", KEYS) {
        at.insert(key, v);
        if key != "cert_sans" {
            let Some(s) = cx.nonempty(key, v) else { continue };
            if let Err(why) = k.set(key, &s, &rules) {
                cx.invalid(key, v, &s, &why.reason, why.hint);
            }
            continue;
        }
        let Some(items) = v.get_ref().as_array() else {
            cx.wrong_type(key, v, "an array of strings");
            continue;
        };
        for item in items.iter() {
            let Some(s) = cx.nonempty(key, item) else { continue };
            if let Err(why) = k.add_cert_san(&s, &rules) {
                cx.invalid(key, item, &s, &why.reason, why.hint);
            }
        }
    }
    if let Some(why) = k.overlap() {
        if let Some(v) = at.get("service_cidr").or(at.get("pod_cidr")).copied() {
            cx.invalid("service_cidr", v, &k.service_cidr.to_string(), &why.reason, why.hint);
        }
    }
    for h in hosts {
        let Address::Ip(ip) = h.address else { continue };
        for (key, c, why) in k.shadowing(ip) {
            let at = at.get(key).map_or_else(|| h.origin.clone(), |v| cx.span(v.span()));
            cx.push(ClusterfileError::InvalidValue {
                at,
                key: key.to_string(),
                value: c.to_string(),
                reason: why.reason,
                hint: why.hint.to_string(),
            });
        }
    }
    k
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use kubernetes::config::Cidr;

    use super::*;
    use crate::clusterfile::tests::{ok, one, with, MINIMAL};
    use crate::clusterfile::{parse_with_home, TEMPLATE};

    #[test]
    fn the_template_documents_the_table() {
        // The commented [kubernetes] example, uncommented, parses to its documented values.
        let uncommented: String = TEMPLATE
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest) if rest.starts_with("[kubernetes]") || KEYS.iter().any(|k| rest.starts_with(k)) => rest,
                _ => l,
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let c = parse_with_home(Path::new("cluster.toml"), &uncommented, Some("/home/op".into())).unwrap();
        assert_eq!(c.kinds.kubernetes.cert_sans, ["k8s.example.com"]);
        assert_eq!(c.kinds.kubernetes.pod_cidr, Kubernetes::default().pod_cidr);
    }

    #[test]
    fn kubernetes_defaults_and_settings() {
        let c = ok(MINIMAL);
        assert_eq!(c.kinds.kubernetes, Kubernetes::default());
        assert_eq!(c.kinds.kubernetes.service_cidr.first_host().to_string(), "10.96.0.1");
        let c = ok(&with(
            "[kubernetes]\npod_cidr = \"172.16.0.0/16\"\nservice_cidr = \"172.17.0.0/20\"\ndns_domain = \"corp.local\"\ncontrol_plane_endpoint = \"k8s.corp:8443\"\ncert_sans = [\"k8s.example.com\", \"192.0.2.7\"]\n",
        ));
        let k = &c.kinds.kubernetes;
        assert_eq!(
            (k.pod_cidr.to_string(), k.service_cidr.to_string()),
            ("172.16.0.0/16".into(), "172.17.0.0/20".into())
        );
        assert_eq!(
            (k.endpoint_host.as_str(), k.endpoint_port, k.dns_domain.as_str()),
            ("k8s.corp", 8443, "corp.local")
        );
        assert_eq!(k.cert_sans, ["k8s.example.com", "192.0.2.7"]);
        assert!(k.pod_cidr.contains("172.16.255.1".parse().unwrap()));
        assert!(!k.pod_cidr.contains("172.17.0.1".parse().unwrap()));
        let v6: Cidr = "fd00:10::/108".parse().unwrap();
        assert_eq!(v6.first_host().to_string(), "fd00:10::1");
    }

    #[test]
    fn kubernetes_errors_point_at_the_value() {
        let (e, line, col) = one(&with("[kubernetes]\npod_cidr = \"10.244.1.0/16\"\n"));
        assert_eq!((line, col), (3, 12));
        assert!(e.to_string().contains("the network is 10.244.0.0/16"), "{e}");
        let (e, line, _) = one(&with("[kubernetes]\npod_cidr = \"10.96.0.0/16\"\n"));
        assert_eq!(line, 3);
        assert!(e.to_string().contains("overlaps pod_cidr"), "{e}");
        let (e, line, _) = one(&with("[kubernetes]\nservice_cidr = \"10.0.0.0/24\"\n"));
        assert_eq!(line, 3);
        assert!(e.to_string().contains("contains the address of host 10.0.0.1"), "{e}");
        let (e, _, _) = one(&with("[kubernetes]\ncontrol_plane_endpoint = \"apiserver\"\n"));
        assert!(e.to_string().contains("not HOST:PORT"), "{e}");
        let (e, _, _) = one(&with("[kubernetes]\ncert_sans = [\"bad name!\"]\n"));
        assert!(e.to_string().contains("bad name!"), "{e}");
        let (e, _, _) = one(&with("[kubernetes]\npod_cdir = \"10.1.0.0/16\"\n"));
        assert!(e.to_string().contains("did you mean `pod_cidr`"), "{e}");
    }
}
