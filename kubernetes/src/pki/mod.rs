//! The Kubernetes PKI, made by the installer before kubeadm runs: the three CAs, the service
//! account key pair and every leaf certificate kubeadm would make, in kubeadm's file layout
//! (`ca.crt`, `apiserver.crt`, `etcd/server.crt`, ...), valid for 100 years. kubeadm uses
//! certificates it finds in `/etc/kubernetes/pki` instead of making its own 1-year ones, as long
//! as they chain to the CA there and carry the names it needs; [`ensure`] makes them so.
//!
//! Decisions worth knowing:
//! - RSA 2048 and SHA-256, as kubeadm's defaults: nothing in the cluster has to be told.
//! - One `apiserver`, `etcd/server` and `etcd/peer` certificate for all masters, naming every
//!   master's hostname and address, so the same directory is valid on each of them.
//! - [`ensure`] converges: a missing file is made, a leaf that lacks a name it needs now (a new
//!   master, a new SAN) or does not chain to its CA is issued again, everything else is kept. A
//!   CA is never replaced: renewing a CA means a new cluster.
//! - [`renew`] issues every leaf again for 100 years from now with the same key, subject and
//!   names; the CAs and the service account keys are not touched (sealos issue 4113: an upgrade
//!   that regenerated the CA broke every kubeconfig).
//! - Not covered: the client certificates inside kubeadm's kubeconfig files (`admin.conf`,
//!   `controller-manager.conf`, `scheduler.conf`, `super-admin.conf`) are made by kubeadm and
//!   last one year; the kubelet's own client certificate rotates by itself.

mod error;
mod kubeconfig;
mod list;
mod x509;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use openssl::x509::X509;

pub use error::PkiError;
pub use list::{list, CertInfo};

use crate::os::Os;
use kubeconfig::{kubeconfigs, renew_kubeconfig};
use x509::{issue, issue_leaf, issued_by, load_ca, new_key, read_cert, read_key, sans_of, subject, Profile};

type Result<T, E = PkiError> = std::result::Result<T, E>;

/// A way to read one certificate of a master, by path relative to its PKI directory.
pub type Fetch<'a> = dyn FnMut(&str) -> std::result::Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> + 'a;

/// 100 years, in days (leap days included).
pub const VALIDITY_DAYS: i64 = 36_525;

/// The names the certificates must carry for one cluster.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Every master: its hostname and the address the Clusterfile gives for it.
    pub masters: Vec<(String, String)>,
    /// The first address of the service CIDR (the `kubernetes` service).
    pub service_ip: IpAddr,
    /// The cluster's DNS domain, `cluster.local` by default.
    pub dns_domain: String,
    /// The host part of the control-plane endpoint.
    pub endpoint_host: String,
    /// More names or addresses for the API server certificate.
    pub extra_sans: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Usage {
    Server,
    Client,
    Both,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Names {
    None,
    Apiserver,
    Etcd,
}

/// A CA: file stem and common name.
struct Ca {
    stem: &'static str,
    cn: &'static str,
}

const CAS: [Ca; 3] = [
    Ca {
        stem: "ca",
        cn: "kubernetes",
    },
    Ca {
        stem: "front-proxy-ca",
        cn: "front-proxy-ca",
    },
    Ca {
        stem: "etcd/ca",
        cn: "etcd-ca",
    },
];

/// A leaf certificate as kubeadm makes it (`cmd/kubeadm/app/phases/certs/certlist.go`).
struct Leaf {
    stem: &'static str,
    ca: &'static str,
    /// Common name; `None`: the first master's hostname (kubeadm uses the node name).
    cn: Option<&'static str>,
    org: Option<&'static str>,
    usage: Usage,
    names: Names,
}

const LEAVES: [Leaf; 7] = [
    Leaf {
        stem: "apiserver",
        ca: "ca",
        cn: Some("kube-apiserver"),
        org: None,
        usage: Usage::Server,
        names: Names::Apiserver,
    },
    Leaf {
        stem: "apiserver-kubelet-client",
        ca: "ca",
        cn: Some("kube-apiserver-kubelet-client"),
        org: Some("system:masters"),
        usage: Usage::Client,
        names: Names::None,
    },
    Leaf {
        stem: "front-proxy-client",
        ca: "front-proxy-ca",
        cn: Some("front-proxy-client"),
        org: None,
        usage: Usage::Client,
        names: Names::None,
    },
    Leaf {
        stem: "etcd/server",
        ca: "etcd/ca",
        cn: None,
        org: None,
        usage: Usage::Both,
        names: Names::Etcd,
    },
    Leaf {
        stem: "etcd/peer",
        ca: "etcd/ca",
        cn: None,
        org: None,
        usage: Usage::Both,
        names: Names::Etcd,
    },
    Leaf {
        stem: "etcd/healthcheck-client",
        ca: "etcd/ca",
        cn: Some("kube-etcd-healthcheck-client"),
        org: None,
        usage: Usage::Client,
        names: Names::None,
    },
    Leaf {
        stem: "apiserver-etcd-client",
        ca: "etcd/ca",
        cn: Some("kube-apiserver-etcd-client"),
        org: None,
        usage: Usage::Client,
        names: Names::None,
    },
];

/// What [`ensure`] or [`renew`] did.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub created: Vec<String>,
    pub reissued: Vec<String>,
    pub kept: Vec<String>,
}

impl Report {
    pub fn summary(&self) -> String {
        format!(
            "{} created, {} issued again, {} kept",
            self.created.len(),
            self.reissued.len(),
            self.kept.len()
        )
    }
}

impl Spec {
    /// DNS names and IP addresses one kind of leaf must carry.
    fn names(&self, kind: Names) -> (BTreeSet<String>, BTreeSet<IpAddr>) {
        let mut dns = BTreeSet::new();
        let mut ips = BTreeSet::new();
        let mut add = |s: &str, dns: &mut BTreeSet<String>| match s.trim_matches(['[', ']']).parse::<IpAddr>() {
            Ok(ip) => {
                ips.insert(ip);
            }
            Err(_) => {
                dns.insert(s.to_ascii_lowercase());
            }
        };
        match kind {
            Names::None => {}
            Names::Apiserver => {
                for n in [
                    "kubernetes",
                    "kubernetes.default",
                    "kubernetes.default.svc",
                    "localhost",
                ] {
                    add(n, &mut dns);
                }
                add(&format!("kubernetes.default.svc.{}", self.dns_domain), &mut dns);
                add(&self.service_ip.to_string(), &mut dns);
                add("127.0.0.1", &mut dns);
                add(&self.endpoint_host, &mut dns);
                for s in &self.extra_sans {
                    add(s, &mut dns);
                }
                for (name, address) in &self.masters {
                    add(name, &mut dns);
                    add(address, &mut dns);
                }
            }
            Names::Etcd => {
                for n in ["localhost", "127.0.0.1", "::1"] {
                    add(n, &mut dns);
                }
                for (name, address) in &self.masters {
                    add(name, &mut dns);
                    add(address, &mut dns);
                }
            }
        }
        (dns, ips)
    }

    fn first_master(&self) -> &str {
        self.masters.first().map_or("localhost", |(n, _)| n.as_str())
    }
}

/// Makes `dir` hold a complete PKI for `spec`: missing files are made, leaves that lack a
/// needed name or do not chain to their CA are issued again, the rest is kept.
pub fn ensure(os: &dyn Os, dir: &Path, spec: &Spec) -> Result<Report> {
    let mut report = Report::default();
    for ca in &CAS {
        let crt = dir.join(format!("{}.crt", ca.stem));
        let key = dir.join(format!("{}.key", ca.stem));
        match (crt.exists(), key.exists()) {
            (true, true) => report.kept.push(ca.stem.to_string()),
            (false, false) => {
                let k = new_key()?;
                let cert = issue(
                    &*subject(ca.cn, None)?,
                    &k,
                    None,
                    Profile::Ca,
                    &(BTreeSet::new(), BTreeSet::new()),
                )?;
                write(os, &key, &k.rsa()?.private_key_to_pem()?, 0o600)?;
                write(os, &crt, &cert.to_pem()?, 0o644)?;
                report.created.push(ca.stem.to_string());
            }
            _ => {
                return Err(PkiError::HalfCa {
                    dir: dir.to_owned(),
                    stem: ca.stem,
                })
            }
        }
    }
    let sa_key = dir.join("sa.key");
    let sa_pub = dir.join("sa.pub");
    if sa_key.exists() {
        let k = read_key(&sa_key)?;
        if !sa_pub.exists() {
            write(os, &sa_pub, &k.public_key_to_pem()?, 0o644)?;
        }
        report.kept.push("sa".to_string());
    } else {
        let k = new_key()?;
        write(os, &sa_key, &k.rsa()?.private_key_to_pem()?, 0o600)?;
        write(os, &sa_pub, &k.public_key_to_pem()?, 0o644)?;
        report.created.push("sa".to_string());
    }
    for leaf in &LEAVES {
        let (ca_cert, ca_key) = load_ca(dir, leaf.ca)?;
        let crt = dir.join(format!("{}.crt", leaf.stem));
        let key = dir.join(format!("{}.key", leaf.stem));
        let wanted = spec.names(leaf.names);
        if crt.exists() && key.exists() {
            let cert = read_cert(&crt)?;
            let (dns, ips) = sans_of(&cert);
            if issued_by(&cert, &ca_cert) && wanted.0.is_subset(&dns) && wanted.1.is_subset(&ips) {
                report.kept.push(leaf.stem.to_string());
                continue;
            }
            // Keep every name it had (a SAN removed from the Clusterfile stays: harmless).
            let names = (&wanted.0 | &dns, &wanted.1 | &ips);
            let cert = issue_leaf(leaf, spec, &read_key(&key)?, (&ca_cert, &ca_key), &names)?;
            write(os, &crt, &cert.to_pem()?, 0o644)?;
            report.reissued.push(leaf.stem.to_string());
        } else {
            let k = new_key()?;
            let cert = issue_leaf(leaf, spec, &k, (&ca_cert, &ca_key), &wanted)?;
            write(os, &key, &k.rsa()?.private_key_to_pem()?, 0o600)?;
            write(os, &crt, &cert.to_pem()?, 0o644)?;
            report.created.push(leaf.stem.to_string());
        }
    }
    Ok(report)
}

/// Issues every leaf in `dir` again, valid 100 years from now, with its key, subject and
/// names; CAs and service account keys stay as they are. Leaves that do not chain to their CA
/// are refused (they are not this PKI's).
pub fn renew(os: &dyn Os, dir: &Path) -> Result<Report> {
    require_dir(dir)?;
    let mut report = Report::default();
    for ca in &CAS {
        if dir.join(format!("{}.crt", ca.stem)).exists() {
            report.kept.push(ca.stem.to_string());
        }
    }
    for leaf in &LEAVES {
        let crt = dir.join(format!("{}.crt", leaf.stem));
        if !crt.exists() {
            continue;
        }
        let (ca_cert, ca_key) = load_ca(dir, leaf.ca)?;
        let old = read_cert(&crt)?;
        if !issued_by(&old, &ca_cert) {
            return Err(PkiError::ForeignLeaf {
                cert: crt,
                dir: dir.to_owned(),
                ca: leaf.ca,
            });
        }
        let key = read_key(&dir.join(format!("{}.key", leaf.stem)))?;
        let names = sans_of(&old);
        let cert = issue(
            old.subject_name(),
            &key,
            Some((&ca_cert, &ca_key)),
            Profile::Leaf(leaf.usage),
            &names,
        )?;
        write(os, &crt, &cert.to_pem()?, 0o644)?;
        report.reissued.push(leaf.stem.to_string());
    }
    let (ca_cert, ca_key) = load_ca(dir, "ca")?;
    for (name, path) in kubeconfigs(dir) {
        renew_kubeconfig(os, &path, &ca_cert, &ca_key)?;
        report.reissued.push(name);
    }
    if report.reissued.is_empty() {
        return Err(PkiError::NoLeaves { dir: dir.to_owned() });
    }
    Ok(report)
}

/// Which files of the PKI in `dir` a master must get, given the SHA-256 of the files it has
/// (`remote`, by relative path; absent files are missing) and a way to read one of its
/// certificates. CAs and service account keys must be ours or absent: a different one is
/// another cluster's PKI and an error. A leaf the master has is kept when it chains to our CA,
/// names everything `spec` needs and expires no sooner than ours (`cert --renew` ran there);
/// otherwise ours replaces it (certificate and key together).
pub fn to_push(
    dir: &Path,
    spec: &Spec,
    remote: &BTreeMap<String, String>,
    fetch: &mut Fetch<'_>,
) -> Result<Vec<String>> {
    let sha = |rel: &str| -> Result<String> {
        let path = dir.join(rel);
        let bytes = fs::read(&path).map_err(|source| PkiError::Read { path, source })?;
        Ok(bundle_format::digest::Digest::of(&bytes).hex())
    };
    let mut push = Vec::new();
    let fixed = CAS
        .iter()
        .flat_map(|c| [format!("{}.crt", c.stem), format!("{}.key", c.stem)])
        .chain(["sa.key".to_string(), "sa.pub".to_string()]);
    for rel in fixed {
        match remote.get(&rel) {
            None => push.push(rel),
            Some(theirs) if *theirs == sha(&rel)? => {}
            Some(_) => return Err(PkiError::OtherCluster { file: rel }),
        }
    }
    for leaf in &LEAVES {
        let (crt, key) = (format!("{}.crt", leaf.stem), format!("{}.key", leaf.stem));
        let same = remote.get(&crt) == Some(&sha(&crt)?) && remote.get(&key) == Some(&sha(&key)?);
        if same {
            continue;
        }
        if remote.contains_key(&crt) && remote.contains_key(&key) {
            let theirs = X509::from_pem(&fetch(&crt).map_err(PkiError::Fetch)?).ok();
            let ours = read_cert(&dir.join(&crt))?;
            let (ca, _) = load_ca(dir, leaf.ca)?;
            let wanted = spec.names(leaf.names);
            let keep = theirs.is_some_and(|t| {
                let (dns, ips) = sans_of(&t);
                issued_by(&t, &ca)
                    && wanted.0.is_subset(&dns)
                    && wanted.1.is_subset(&ips)
                    && t.not_after() >= ours.not_after()
            });
            if keep {
                continue;
            }
        }
        push.push(crt);
        push.push(key);
    }
    Ok(push)
}

/// kubeadm's `--discovery-token-ca-cert-hash`: `sha256:` and the hex SHA-256 of the cluster
/// CA's public key (SubjectPublicKeyInfo, DER).
pub fn ca_cert_hash(dir: &Path) -> Result<String> {
    let ca = read_cert(&dir.join("ca.crt"))?;
    let spki = ca.public_key()?.public_key_to_der()?;
    Ok(format!("sha256:{}", bundle_format::digest::Digest::of(&spki).hex()))
}

/// The files of a PKI directory that go to every master, relative to the directory.
pub fn files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for stem in CAS.iter().map(|c| c.stem).chain(LEAVES.iter().map(|l| l.stem)) {
        out.push(PathBuf::from(format!("{stem}.crt")));
        out.push(PathBuf::from(format!("{stem}.key")));
    }
    out.push(PathBuf::from("sa.key"));
    out.push(PathBuf::from("sa.pub"));
    for f in &out {
        if !dir.join(f).exists() {
            return Err(PkiError::Missing {
                file: f.clone(),
                dir: dir.to_owned(),
            });
        }
    }
    Ok(out)
}

fn require_dir(dir: &Path) -> Result<()> {
    if !dir.join("ca.crt").exists() {
        return Err(PkiError::NoPki { dir: dir.to_owned() });
    }
    Ok(())
}

/// Writes through a temp name with `mode`, fsynced, then renamed; parents made as needed.
fn write(os: &dyn Os, path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|source| PkiError::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
    }
    os.write_atomic(path, bytes, mode).map_err(|source| PkiError::Write {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::TestOs;
    use kubeconfig::kubeconfig_client;
    use openssl::asn1::Asn1Time;
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;

    fn spec() -> Spec {
        Spec {
            masters: vec![("m1".into(), "10.0.0.11".into()), ("m2".into(), "10.0.0.12".into())],
            service_ip: "10.96.0.1".parse().unwrap(),
            dns_domain: "cluster.local".into(),
            endpoint_host: "apiserver.cluster.local".into(),
            extra_sans: vec!["k8s.example.com".into(), "192.0.2.10".into()],
        }
    }

    #[test]
    fn makes_every_file_then_keeps_them() {
        let d = tempfile::tempdir().unwrap();
        let r = ensure(&TestOs, d.path(), &spec()).unwrap();
        assert_eq!(r.created.len(), 3 + 1 + 7, "{r:?}");
        assert_eq!(files(d.path()).unwrap().len(), 22);
        let before = fs::read(d.path().join("apiserver.crt")).unwrap();
        let r = ensure(&TestOs, d.path(), &spec()).unwrap();
        assert!(r.created.is_empty() && r.reissued.is_empty(), "{r:?}");
        assert_eq!(fs::read(d.path().join("apiserver.crt")).unwrap(), before);
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(d.path().join("etcd/ca.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn apiserver_names_and_chain() {
        let d = tempfile::tempdir().unwrap();
        ensure(&TestOs, d.path(), &spec()).unwrap();
        let c = read_cert(&d.path().join("apiserver.crt")).unwrap();
        let (dns, ips) = sans_of(&c);
        for n in [
            "kubernetes.default.svc.cluster.local",
            "m1",
            "m2",
            "apiserver.cluster.local",
            "k8s.example.com",
        ] {
            assert!(dns.contains(n), "{n} missing from {dns:?}");
        }
        for ip in ["10.96.0.1", "10.0.0.11", "10.0.0.12", "192.0.2.10", "127.0.0.1"] {
            assert!(ips.contains(&ip.parse().unwrap()), "{ip} missing from {ips:?}");
        }
        let ca = read_cert(&d.path().join("ca.crt")).unwrap();
        assert!(c.verify(&*ca.public_key().unwrap()).unwrap());
        let etcd_ca = read_cert(&d.path().join("etcd/ca.crt")).unwrap();
        assert!(!c.verify(&*etcd_ca.public_key().unwrap()).unwrap());
        let days = Asn1Time::days_from_now(0).unwrap().diff(c.not_after()).unwrap().days;
        assert!((36_520..=36_525).contains(&days), "{days}");
    }

    #[test]
    fn a_new_master_reissues_only_the_leaves_that_name_masters() {
        let d = tempfile::tempdir().unwrap();
        ensure(&TestOs, d.path(), &spec()).unwrap();
        let ca = fs::read(d.path().join("ca.crt")).unwrap();
        let mut s = spec();
        s.masters.push(("m3".into(), "10.0.0.13".into()));
        let r = ensure(&TestOs, d.path(), &s).unwrap();
        assert_eq!(r.reissued, ["apiserver", "etcd/server", "etcd/peer"]);
        assert_eq!(fs::read(d.path().join("ca.crt")).unwrap(), ca);
        let (dns, _) = sans_of(&read_cert(&d.path().join("etcd/peer.crt")).unwrap());
        assert!(dns.contains("m3"));
    }

    #[test]
    fn renew_keeps_cas_keys_and_names() {
        let d = tempfile::tempdir().unwrap();
        ensure(&TestOs, d.path(), &spec()).unwrap();
        let ca = fs::read(d.path().join("ca.crt")).unwrap();
        let key = fs::read(d.path().join("apiserver.key")).unwrap();
        let old = read_cert(&d.path().join("apiserver.crt")).unwrap();
        let r = renew(&TestOs, d.path()).unwrap();
        assert_eq!(r.reissued.len(), 7);
        let new = read_cert(&d.path().join("apiserver.crt")).unwrap();
        assert_ne!(
            old.serial_number().to_bn().unwrap(),
            new.serial_number().to_bn().unwrap()
        );
        assert_eq!(sans_of(&old), sans_of(&new));
        assert_eq!(fs::read(d.path().join("ca.crt")).unwrap(), ca);
        assert_eq!(fs::read(d.path().join("apiserver.key")).unwrap(), key);
    }

    #[test]
    fn a_foreign_leaf_is_refused_and_half_a_ca_is_an_error() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        ensure(&TestOs, a.path(), &spec()).unwrap();
        ensure(&TestOs, b.path(), &spec()).unwrap();
        fs::copy(b.path().join("apiserver.crt"), a.path().join("apiserver.crt")).unwrap();
        let e = renew(&TestOs, a.path()).unwrap_err().to_string();
        assert!(e.contains("was not issued by"), "{e}");
        // ensure issues it again instead (with its own key: the copied cert does not match it).
        let r = ensure(&TestOs, a.path(), &spec()).unwrap();
        assert_eq!(r.reissued, ["apiserver"]);
        fs::remove_file(a.path().join("front-proxy-ca.key")).unwrap();
        let e = ensure(&TestOs, a.path(), &spec()).unwrap_err().to_string();
        assert!(e.contains("front-proxy-ca.crt and front-proxy-ca.key"), "{e}");
    }

    #[test]
    fn list_and_hash() {
        let d = tempfile::tempdir().unwrap();
        assert!(list(d.path()).unwrap_err().to_string().contains("no ca.crt"));
        ensure(&TestOs, d.path(), &spec()).unwrap();
        let l = list(d.path()).unwrap();
        assert_eq!(l.len(), 10);
        assert!(l[..3].iter().all(|c| c.ca) && l[3..].iter().all(|c| !c.ca));
        assert!(l.iter().all(|c| c.days_left >= 36_520));
        assert!(l
            .iter()
            .any(|c| c.name == "etcd/server" && c.subject == "m1" && c.issuer == "etcd-ca"));
        let h = ca_cert_hash(d.path()).unwrap();
        assert!(h.starts_with("sha256:") && h.len() == 71, "{h}");
    }

    #[test]
    fn what_a_master_gets() {
        let d = tempfile::tempdir().unwrap();
        ensure(&TestOs, d.path(), &spec()).unwrap();
        let all: Vec<String> = files(d.path())
            .unwrap()
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let none = std::collections::BTreeMap::new();
        let mut no_fetch = |f: &str| -> std::result::Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
            panic!("fetched {f}")
        };
        let mut push = to_push(d.path(), &spec(), &none, &mut no_fetch).unwrap();
        push.sort();
        let mut want = all.clone();
        want.sort();
        assert_eq!(push, want);
        // Everything there already: nothing to push.
        let mut same: std::collections::BTreeMap<String, String> = all
            .iter()
            .map(|f| {
                (
                    f.clone(),
                    bundle_format::digest::Digest::of(&fs::read(d.path().join(f)).unwrap()).hex(),
                )
            })
            .collect();
        assert!(to_push(d.path(), &spec(), &same, &mut no_fetch).unwrap().is_empty());
        // A leaf renewed on the master (later expiry, same CA) is kept; an older one is replaced.
        let renewed = tempfile::tempdir().unwrap();
        for f in &all {
            let to = renewed.path().join(f);
            fs::create_dir_all(to.parent().unwrap()).unwrap();
            fs::copy(d.path().join(f), to).unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(1100));
        renew(&TestOs, renewed.path()).unwrap();
        let theirs = fs::read(renewed.path().join("apiserver.crt")).unwrap();
        same.insert("apiserver.crt".into(), "changed".into());
        let mut fetch = |f: &str| -> std::result::Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
            assert_eq!(f, "apiserver.crt");
            Ok(theirs.clone())
        };
        assert!(to_push(d.path(), &spec(), &same, &mut fetch).unwrap().is_empty());
        // Renewed here after the master's: every leaf there is older than ours now.
        let before: std::collections::BTreeMap<String, Vec<u8>> = all
            .iter()
            .map(|f| (f.clone(), fs::read(d.path().join(f)).unwrap()))
            .collect();
        renew(&TestOs, d.path()).unwrap();
        let mut fetch_old = |f: &str| -> std::result::Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
            Ok(before[f].clone())
        };
        let push = to_push(d.path(), &spec(), &same, &mut fetch_old).unwrap();
        assert_eq!(push.len(), 14, "{push:?}");
        assert!(push.iter().all(|f| !f.starts_with("ca.") && !f.starts_with("sa.")));
        // Another cluster's CA is refused.
        same.insert("ca.crt".into(), "other".into());
        let e = to_push(d.path(), &spec(), &same, &mut fetch_old)
            .unwrap_err()
            .to_string();
        assert!(e.contains("another cluster's PKI"), "{e}");
    }

    /// A kubeconfig as kubeadm writes it, with a one-year client certificate from `ca`.
    fn kubeconfig(dir: &Path, name: &str) -> PathBuf {
        use base64::Engine;
        let (ca, ca_key) = load_ca(dir, "ca").unwrap();
        let key = new_key().unwrap();
        let subject = subject("kubernetes-admin", Some("kubeadm:cluster-admins")).unwrap();
        let mut cert = issue(
            &subject,
            &key,
            Some((&ca, &ca_key)),
            Profile::Leaf(Usage::Client),
            &(BTreeSet::new(), BTreeSet::new()),
        )
        .unwrap();
        // One year, as kubeadm makes it.
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(cert.subject_name()).unwrap();
        b.set_issuer_name(ca.subject_name()).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
        b.set_not_after(&Asn1Time::days_from_now(365).unwrap()).unwrap();
        b.sign(&ca_key, MessageDigest::sha256()).unwrap();
        cert = b.build();
        let b64 = |v: Vec<u8>| base64::engine::general_purpose::STANDARD.encode(v);
        let text = format!(
            "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: https://apiserver.cluster.local:6443\n  name: kubernetes\nusers:\n- name: kubernetes-admin\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
            b64(ca.to_pem().unwrap()),
            b64(cert.to_pem().unwrap()),
            b64(key.private_key_to_pem_pkcs8().unwrap())
        );
        let path = dir.parent().unwrap().join(name);
        fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn renew_takes_kubeconfigs_to_100_years() {
        let root = tempfile::tempdir().unwrap();
        let d = root.path().join("pki");
        ensure(&TestOs, &d, &spec()).unwrap();
        let admin = kubeconfig(&d, "admin.conf");
        let before = fs::read_to_string(&admin).unwrap();
        let l = list(&d).unwrap();
        let row = l.iter().find(|c| c.name == "admin.conf").unwrap();
        assert!(row.days_left <= 365 && row.subject == "kubernetes-admin", "{row:?}");
        let r = renew(&TestOs, &d).unwrap();
        assert!(r.reissued.contains(&"admin.conf".to_string()), "{r:?}");
        let after = fs::read_to_string(&admin).unwrap();
        let l = list(&d).unwrap();
        let row = l.iter().find(|c| c.name == "admin.conf").unwrap();
        assert!(row.days_left >= 36_520, "{row:?}");
        // Only the certificate line changed; the key and the rest are kept.
        let changed: Vec<_> = before.lines().zip(after.lines()).filter(|(a, b)| a != b).collect();
        assert_eq!(changed.len(), 1);
        assert!(changed[0].1.trim_start().starts_with("client-certificate-data: "));
        let (cert, _) = kubeconfig_client(&after).unwrap();
        let cert = X509::from_pem(&cert).unwrap();
        let ca = read_cert(&d.join("ca.crt")).unwrap();
        assert!(cert.verify(&*ca.public_key().unwrap()).unwrap());
        let org: Vec<_> = cert
            .subject_name()
            .entries_by_nid(Nid::ORGANIZATIONNAME)
            .map(|e| e.data().to_string().unwrap())
            .collect();
        assert_eq!(org, ["kubeadm:cluster-admins"]);
    }
}
