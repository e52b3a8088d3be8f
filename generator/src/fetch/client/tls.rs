//! The roots registry TLS trusts: the system bundle (or `SSL_CERT_FILE`), plus `--registry-ca`.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use ureq::tls::{Certificate, PemItem, RootCerts};

use super::super::FetchError;

/// System CA bundles, first found wins (Debian/Ubuntu, Fedora/RHEL, Alpine/others).
const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// System roots (from `SSL_CERT_FILE` or the distribution's bundle) plus `ca_file`. Without a
/// system bundle, the Mozilla roots compiled into webpki-roots stand in for it, unless a
/// `ca_file` is given: then only that file is trusted (webpki-roots holds trust anchors, not
/// certificates, so the two cannot be merged).
pub(crate) fn root_certs(ca_file: Option<&Path>) -> Result<RootCerts, FetchError> {
    let mut certs: Vec<Certificate<'static>> = Vec::new();
    let system = std::env::var_os("SSL_CERT_FILE")
        .map(std::path::PathBuf::from)
        .into_iter()
        .chain(SYSTEM_CA_BUNDLES.iter().map(std::path::PathBuf::from))
        .find(|p| p.is_file());
    let have_system = match &system {
        Some(p) => {
            // A broken system bundle is not this program's business: use what parses.
            if let Ok(bytes) = fs::read(p) {
                certs.extend(pem_certs(&bytes).into_iter().flatten());
            }
            !certs.is_empty()
        }
        None => false,
    };
    if let Some(path) = ca_file {
        let bytes = fs::read(path).map_err(|e| FetchError::BadCaFile {
            path: path.to_path_buf(),
            message: format!("cannot read it: {e}"),
        })?;
        let extra = pem_certs(&bytes).map_err(|e| FetchError::BadCaFile {
            path: path.to_path_buf(),
            message: format!("invalid PEM: {e}"),
        })?;
        if extra.is_empty() {
            return Err(FetchError::BadCaFile {
                path: path.to_path_buf(),
                message: "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
            });
        }
        certs.extend(extra);
        return Ok(RootCerts::Specific(Arc::new(certs)));
    }
    Ok(if have_system {
        RootCerts::Specific(Arc::new(certs))
    } else {
        RootCerts::WebPki
    })
}

fn pem_certs(bytes: &[u8]) -> Result<Vec<Certificate<'static>>, ureq::Error> {
    let mut out = Vec::new();
    for item in ureq::tls::parse_pem(bytes) {
        if let PemItem::Certificate(c) = item? {
            out.push(c);
        }
    }
    Ok(out)
}
