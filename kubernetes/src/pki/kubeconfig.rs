//! kubeadm's kubeconfig files beside the PKI directory (`admin.conf`, ...): finding them,
//! reading their embedded client certificate, and issuing it again for 100 years in place.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use openssl::pkey::{PKey, Private};
use openssl::x509::X509;

use super::x509::{issue, issued_by, Profile};
use super::{write, Os, PkiError, Result, Usage};

/// The kubeconfig files kubeadm writes beside the PKI directory, whose client certificates it
/// makes for one year (the kubelet's own rotates by itself): (name, path) of those present.
pub(super) fn kubeconfigs(dir: &Path) -> Vec<(String, PathBuf)> {
    let Some(parent) = dir.parent() else { return Vec::new() };
    KUBECONFIGS
        .iter()
        .map(|n| (n.to_string(), parent.join(n)))
        .filter(|(_, p)| p.is_file())
        .collect()
}

const KUBECONFIGS: [&str; 4] = [
    "admin.conf",
    "super-admin.conf",
    "controller-manager.conf",
    "scheduler.conf",
];

/// The `client-certificate-data` / `client-key-data` values of a kubeconfig (one user).
pub(super) fn kubeconfig_client(text: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    use base64::Engine;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v.trim()).ok())
    };
    Some((field("client-certificate-data:")?, field("client-key-data:")?))
}

/// Issues a kubeconfig's client certificate again for 100 years (same key and subject), in
/// place; the rest of the file is kept byte for byte.
pub(super) fn renew_kubeconfig(os: &dyn Os, path: &Path, ca_cert: &X509, ca_key: &PKey<Private>) -> Result<()> {
    use base64::Engine;
    let text = fs::read_to_string(path).map_err(|source| PkiError::Read {
        path: path.to_owned(),
        source,
    })?;
    let Some((cert_pem, key_pem)) = kubeconfig_client(&text) else {
        return Err(PkiError::KubeconfigWithoutClient { path: path.to_owned() });
    };
    let old = X509::from_pem(&cert_pem).map_err(|source| PkiError::KubeconfigCertificate {
        path: path.to_owned(),
        source,
    })?;
    if !issued_by(&old, ca_cert) {
        return Err(PkiError::ForeignKubeconfig { path: path.to_owned() });
    }
    let key = PKey::private_key_from_pem(&key_pem).map_err(|source| PkiError::KubeconfigKey {
        path: path.to_owned(),
        source,
    })?;
    let cert = issue(
        old.subject_name(),
        &key,
        Some((ca_cert, ca_key)),
        Profile::Leaf(Usage::Client),
        &(BTreeSet::new(), BTreeSet::new()),
    )?;
    let encoded = base64::engine::general_purpose::STANDARD.encode(cert.to_pem()?);
    let mut out = String::with_capacity(text.len() + 512);
    for line in text.split_inclusive('\n') {
        match line.find("client-certificate-data:") {
            Some(at) => {
                out.push_str(&line[..at]);
                out.push_str("client-certificate-data: ");
                out.push_str(&encoded);
                out.push('\n');
            }
            None => out.push_str(line),
        }
    }
    write(os, path, out.as_bytes(), 0o600)
}
