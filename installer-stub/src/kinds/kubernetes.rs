//! The Kubernetes bundle kind in the stub: the adapter between the `kubernetes` crate and the
//! generic installer. A bundle that carries `kubernetes.toml` is one. The installer then makes
//! the cluster's PKI on the master once the bundle is unpacked, copies it to every master
//! (`pki` step, after `copy`, before the hooks; see [`kubernetes::pki::to_push`]) and renders
//! the hooks with a `kubernetes` object ([`KubernetesVars`]: the Clusterfile's `[kubernetes]`
//! with defaults, `version` from `kubernetes.toml`, `ca_cert_hash` of the CA it made). Its
//! Clusterfile table, `[kubernetes]`, is parsed with the Clusterfile
//! ([`kinds`](crate::clusterfile::Clusterfile::kinds)); this kind reads it from there.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use anyhow::{Context, Result};
use bundle_format::manifest::Manifest;
use kubernetes::bundle::{kubernetes_version, KUBERNETES_TOML};
use kubernetes::pki;
use kubernetes::vars::KubernetesVars;

use super::{BundleKind, KindContext};
use crate::clusterfile::{endpoint_host, Host, Role};
use crate::remote::Remote;

/// The kind's name (its Clusterfile table, `[kubernetes]`, has the same).
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
        bundle_format::io::write_atomic_mode(path, bytes, mode)
    }

    fn live_pid(&self, pid_file: &Path, ours: &dyn Fn(&str) -> bool) -> Option<i32> {
        crate::process::live_pid(pid_file, ours)
    }

    fn spawn_detached(&self, cmd: Command, log: File) -> io::Result<u32> {
        crate::process::spawn_detached(cmd, log)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
