//! `cert --list`: every certificate of a PKI directory and of kubeadm's kubeconfigs beside it,
//! with subject, issuer, expiry and names.

use std::fs;
use std::net::IpAddr;
use std::path::Path;

use openssl::asn1::Asn1Time;
use openssl::x509::X509;

use super::kubeconfig::{kubeconfig_client, kubeconfigs};
use super::x509::{common_name, not_after, read_cert, same_name, sans_of};
use super::{require_dir, PkiError, Result};

/// One certificate as `cert --list` shows it.
#[derive(Debug, Clone)]
pub struct CertInfo {
    /// Path under the PKI directory, without `.crt`.
    pub name: String,
    pub subject: String,
    pub issuer: String,
    pub not_after: String,
    pub days_left: i64,
    pub ca: bool,
    pub sans: Vec<String>,
}

/// Every certificate in `dir` (and `dir/etcd`), CAs first.
pub fn list(dir: &Path) -> Result<Vec<CertInfo>> {
    require_dir(dir)?;
    let mut files = Vec::new();
    for sub in [dir.to_path_buf(), dir.join("etcd")] {
        let Ok(entries) = fs::read_dir(&sub) else { continue };
        for e in entries {
            let path = e
                .map_err(|source| PkiError::Read {
                    path: sub.clone(),
                    source,
                })?
                .path();
            if path.extension().is_some_and(|x| x == "crt") {
                files.push(path);
            }
        }
    }
    let now = Asn1Time::days_from_now(0)?;
    let mut out = Vec::new();
    for path in files {
        let cert = read_cert(&path)?;
        let name = path
            .strip_prefix(dir)
            .unwrap_or(&path)
            .with_extension("")
            .to_string_lossy()
            .into_owned();
        let diff = now.diff(cert.not_after())?;
        let (dns, ips) = sans_of(&cert);
        out.push(CertInfo {
            subject: common_name(cert.subject_name()),
            issuer: common_name(cert.issuer_name()),
            not_after: not_after(cert.not_after()),
            days_left: i64::from(diff.days),
            ca: same_name(cert.subject_name(), cert.issuer_name()),
            sans: dns.into_iter().chain(ips.iter().map(IpAddr::to_string)).collect(),
            name,
        });
    }
    for (name, path) in kubeconfigs(dir) {
        let text = fs::read_to_string(&path).map_err(|source| PkiError::Read {
            path: path.clone(),
            source,
        })?;
        let Some(cert) = kubeconfig_client(&text).and_then(|(c, _)| X509::from_pem(&c).ok()) else {
            continue;
        };
        out.push(CertInfo {
            subject: common_name(cert.subject_name()),
            issuer: common_name(cert.issuer_name()),
            not_after: not_after(cert.not_after()),
            days_left: i64::from(now.diff(cert.not_after())?.days),
            ca: false,
            sans: Vec::new(),
            name,
        });
    }
    out.sort_by(|a, b| (!a.ca, a.name.ends_with(".conf"), &a.name).cmp(&(!b.ca, b.name.ends_with(".conf"), &b.name)));
    Ok(out)
}
