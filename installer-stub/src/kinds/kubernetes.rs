//! The Kubernetes bundle kind in the stub: the adapter between the `kubernetes` crate and the
//! generic installer. A bundle that carries `kubernetes.toml` is one. The installer then makes
//! the cluster's PKI on the master once the bundle is unpacked, copies it to every master
//! (`pki` step, after `copy`, before the hooks; see [`kubernetes::pki::to_push`]) and renders
//! the hooks with a `kubernetes` object ([`KubernetesVars`]: the Clusterfile's `[kubernetes]`
//! with defaults, `version` from `kubernetes.toml`, `ca_cert_hash` of the CA it made). Its
//! Clusterfile table is parsed here, on the Clusterfile's walker, so that its errors point at
//! file:line:column like every other.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use anyhow::{Context, Result};
use bundle_format::manifest::Manifest;
use kubernetes::bundle::{kubernetes_version, KUBERNETES_TOML};
use kubernetes::config::{Kubernetes as Table, NameRules, KEYS};
use kubernetes::pki;
use kubernetes::vars::KubernetesVars;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::{BundleKind, KindContext};
use crate::clusterfile::{check_dns_name, endpoint_host, Address, ClusterfileError, Cx, Host, Role};
use crate::remote::Remote;

/// The kind's name, and its Clusterfile table's.
pub(crate) const NAME: &str = "kubernetes";

/// The step that copies the PKI to a master.
const PKI: &str = "pki";

/// Whether a bundle is a Kubernetes bundle: it carries `kubernetes.toml`.
pub(crate) fn detect(manifest: &Manifest) -> bool {
    manifest.entries.iter().any(|e| e.path() == KUBERNETES_TOML)
}

/// The kind, with what it learns on the master.
#[derive(Default)]
pub(crate) struct Kubernetes {
    /// The bundle's Kubernetes version and the CA's hash, once its PKI is made.
    made: Mutex<Option<(String, String)>>,
}

/// The installer's copy of the cluster's PKI (the masters get theirs from it).
fn pki_dir(cx: &KindContext) -> PathBuf {
    cx.state_dir.join("pki")
}

fn pki_spec(cx: &KindContext) -> pki::Spec {
    let c = cx.cluster;
    let k = &c.kinds.kubernetes;
    pki::Spec {
        masters: c
            .masters()
            .map(|h| {
                let a = h.address.to_string();
                (cx.host_name(&a), a)
            })
            .collect(),
        service_ip: k.service_cidr.first_host(),
        dns_domain: k.dns_domain.clone(),
        endpoint_host: k.endpoint_host.clone(),
        extra_sans: k.cert_sans.clone(),
    }
}

impl BundleKind for Kubernetes {
    fn name(&self) -> &'static str {
        NAME
    }

    fn steps(&self, host: &Host) -> Vec<&'static str> {
        if host.has_role(Role::Master) {
            vec![PKI]
        } else {
            Vec::new()
        }
    }

    fn describe(&self, _: &str) -> &'static str {
        "Kubernetes certificates (100 years) to /etc/kubernetes/pki"
    }

    fn prepare_master(&self, cx: &KindContext, tree: &Path) -> Result<Option<(&'static str, String)>> {
        let version = kubernetes_version(tree)?;
        let dir = pki_dir(cx);
        let report = pki::ensure(&StubOs, &dir, &pki_spec(cx))
            .with_context(|| format!("failed to make the Kubernetes PKI in {}", dir.display()))?;
        let said = format!("Kubernetes {version} PKI in {}: {}", dir.display(), report.summary());
        let hash = pki::ca_cert_hash(&dir)?;
        *self.made.lock().expect("no panics while locked") = Some((version, hash));
        Ok(Some((PKI, said)))
    }

    /// The cluster's PKI into a master's /etc/kubernetes/pki: what it lacks, or has older or
    /// short of names (see [`pki::to_push`]); never over another cluster's CA.
    fn run_step(&self, _: &str, cx: &KindContext, r: &mut dyn Remote) -> Result<String> {
        let dir = pki_dir(cx);
        let files = pki::files(&dir)?;
        let mut list = String::from("cd /etc/kubernetes/pki 2>/dev/null || exit 0\n");
        for f in &files {
            list.push_str(&format!("[ -f '{0}' ] && sha256sum '{0}' || true\n", f.display()));
        }
        let out = r.run_ok("reading /etc/kubernetes/pki", &list, &[])?;
        let remote: BTreeMap<String, String> = out
            .lines()
            .filter_map(|l| {
                l.split_once("  ")
                    .map(|(h, f)| (f.trim().to_string(), h.trim().to_string()))
            })
            .collect();
        let mut fetch = |rel: &str| -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
            Ok(r.run_ok(
                "reading a certificate",
                &format!("cat '/etc/kubernetes/pki/{rel}'\n"),
                &[],
            )?
            .into_bytes())
        };
        let push = pki::to_push(&dir, &pki_spec(cx), &remote, &mut fetch)?;
        if push.is_empty() {
            return Ok(format!("{} files already there", files.len()));
        }
        // Keys travel in the script on stdin (never on a command line) and land with mode 0600.
        let mut script = String::from("set -eu\numask 077\nP=/etc/kubernetes/pki\nmkdir -p \"$P/etcd\"\n");
        for rel in &push {
            let text = fs::read_to_string(dir.join(rel))
                .with_context(|| format!("failed to read {}", dir.join(rel).display()))?;
            let mode = if rel.ends_with(".key") { "0600" } else { "0644" };
            script.push_str(&format!(
                "cat > \"$P/{rel}.tmp\" <<'DELIVERY_EOF'\n{}\nDELIVERY_EOF\nchmod {mode} \"$P/{rel}.tmp\"\n",
                text.trim_end()
            ));
        }
        script.push_str("sync -f \"$P\" 2>/dev/null || sync\n");
        for rel in &push {
            script.push_str(&format!("mv \"$P/{rel}.tmp\" \"$P/{rel}\"\n"));
        }
        r.run_ok("writing /etc/kubernetes/pki", &script, &[])?;
        Ok(format!("{} of {} files written", push.len(), files.len()))
    }

    fn hook_vars(&self, cx: &KindContext) -> BTreeMap<&'static str, serde_json::Value> {
        let c = cx.cluster;
        let k = &c.kinds.kubernetes;
        let (version, ca_cert_hash) = self
            .made
            .lock()
            .expect("no panics while locked")
            .clone()
            .unwrap_or_default();
        let vars = KubernetesVars {
            version,
            pod_cidr: k.pod_cidr.to_string(),
            service_cidr: k.service_cidr.to_string(),
            service_ip: k.service_cidr.first_host().to_string(),
            dns_domain: k.dns_domain.clone(),
            endpoint: format!("{}:{}", endpoint_host(&k.endpoint_host), k.endpoint_port),
            endpoint_host: k.endpoint_host.clone(),
            endpoint_port: k.endpoint_port,
            cert_sans: k.cert_sans.clone(),
            ca_cert_hash,
            apiservers: c
                .masters()
                .map(|h| format!("{}:6443", endpoint_host(&h.address.to_string())))
                .collect(),
        };
        let value = serde_json::to_value(vars).expect("plain strings and numbers serialize");
        BTreeMap::from([(NAME, value)])
    }
}

/// The stub's atomic writes and process supervision, for the `kubernetes` crate.
pub(crate) struct StubOs;

impl kubernetes::os::Os for StubOs {
    fn write_atomic(&self, path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
        crate::install::write_atomic_mode(path, bytes, mode)
    }

    fn live_pid(&self, pid_file: &Path, ours: &dyn Fn(&str) -> bool) -> Option<i32> {
        crate::process::live_pid(pid_file, ours)
    }

    fn spawn_detached(&self, cmd: Command, log: File) -> io::Result<u32> {
        crate::process::spawn_detached(cmd, log)
    }
}

/// `[kubernetes]`: every key checked by the `kubernetes` crate, every problem at its position.
pub(crate) fn parse_table(cx: &mut Cx<'_>, t: &DeTable<'_>, hosts: &[Host]) -> Table {
    let rules = NameRules {
        dns_name: check_dns_name,
        address: |s| Address::parse(s).map(drop),
    };
    let mut k = Table::default();
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
    use super::*;
    use crate::clusterfile::tests::{ok, one, with, MINIMAL};
    use crate::clusterfile::{parse_with_home, TEMPLATE};
    use ::kubernetes::config::Cidr;
    use std::path::Path;

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
        assert_eq!(c.kinds.kubernetes.pod_cidr, Table::default().pod_cidr);
    }

    #[test]
    fn kubernetes_defaults_and_settings() {
        let c = ok(MINIMAL);
        assert_eq!(c.kinds.kubernetes, Table::default());
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

    #[test]
    fn masters_get_the_pki_after_copy_and_before_their_hooks() {
        use crate::install::plan::tests::{cluster, manifest, THREE};
        use crate::install::plan::{make, Mode};
        let c = cluster(THREE);
        let m = manifest(&["hooks/prepare/1.sh", "hooks/init/1.sh", KUBERNETES_TOML], None);
        let kind = crate::kinds::detect(&m);
        assert_eq!(kind.name(), NAME);
        let all: Vec<&Host> = c.hosts.iter().collect();
        let p = make(&*kind, Mode::Install, &c, &all, &m, "sha256:ab".into(), 1).unwrap();
        assert_eq!(
            p.hosts[0].steps,
            [
                "registry",
                "copy",
                "pki",
                "hook:prepare/1.sh",
                "hook:init/1.sh",
                "check"
            ]
        );
        assert_eq!(p.hosts[1].steps, ["copy", "pki", "hook:prepare/1.sh", "check"]);
        assert_eq!(p.hosts[2].steps, ["copy", "hook:prepare/1.sh", "check"]);
        assert!(p
            .render()
            .contains("  pki          on 10.0.0.1, 10.0.0.2: Kubernetes certificates"));
        let json = serde_json::to_value(p.json()).unwrap();
        assert_eq!(json["kubernetes"], true);
        // A plain bundle: no pki step, and the plan says it is not a Kubernetes bundle.
        let m = manifest(&["hooks/prepare/1.sh"], None);
        let kind = crate::kinds::detect(&m);
        let p = make(&*kind, Mode::Install, &c, &all, &m, "sha256:ab".into(), 1).unwrap();
        assert!(p.hosts.iter().all(|h| !h.steps.iter().any(|s| s == "pki")));
        assert!(!p.render().contains("pki"));
        assert_eq!(serde_json::to_value(p.json()).unwrap()["kubernetes"], false);
    }
}
