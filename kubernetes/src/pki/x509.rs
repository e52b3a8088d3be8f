//! The X.509 work of the PKI, on OpenSSL: keys, names, issuing a CA or a leaf with kubeadm's
//! extensions, reading certificates and keys, and the questions [`super`] asks of them (which
//! names, which issuer).

use std::collections::BTreeSet;
use std::fs;
use std::net::IpAddr;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use openssl::asn1::{Asn1Time, Asn1TimeRef};
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName, SubjectKeyIdentifier,
};
use openssl::x509::{X509NameBuilder, X509NameRef, X509};

use super::{Leaf, PkiError, Result, Spec, Usage, VALIDITY_DAYS};

/// Certificates start 5 minutes in the past, so a host whose clock is a little behind accepts them.
const BACKDATE_SECS: i64 = 300;
const RSA_BITS: u32 = 2048;

#[derive(Debug, Clone, Copy)]
pub(super) enum Profile {
    Ca,
    Leaf(Usage),
}

pub(super) fn new_key() -> Result<PKey<Private>> {
    Ok(PKey::from_rsa(Rsa::generate(RSA_BITS).map_err(PkiError::NewKey)?)?)
}

pub(super) fn subject(cn: &str, org: Option<&str>) -> Result<openssl::x509::X509Name> {
    let mut b = X509NameBuilder::new()?;
    if let Some(o) = org {
        b.append_entry_by_nid(Nid::ORGANIZATIONNAME, o)?;
    }
    b.append_entry_by_nid(Nid::COMMONNAME, cn)?;
    Ok(b.build())
}

pub(super) fn issue(
    subject: &X509NameRef,
    key: &PKey<Private>,
    issuer: Option<(&X509, &PKey<Private>)>,
    profile: Profile,
    names: &(BTreeSet<String>, BTreeSet<IpAddr>),
) -> Result<X509> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut b = X509::builder()?;
    b.set_version(2)?;
    let mut serial = BigNum::new()?;
    serial.rand(127, MsbOption::MAYBE_ZERO, false)?;
    b.set_serial_number(&*serial.to_asn1_integer()?)?;
    b.set_subject_name(subject)?;
    b.set_issuer_name(issuer.map_or(subject, |(c, _)| c.subject_name()))?;
    b.set_not_before(&*Asn1Time::from_unix(now - BACKDATE_SECS)?)?;
    b.set_not_after(&*Asn1Time::from_unix(now + VALIDITY_DAYS * 86_400)?)?;
    b.set_pubkey(key)?;
    match profile {
        Profile::Ca => {
            b.append_extension(BasicConstraints::new().critical().ca().build()?)?;
            b.append_extension(
                KeyUsage::new()
                    .critical()
                    .digital_signature()
                    .key_encipherment()
                    .key_cert_sign()
                    .build()?,
            )?;
        }
        Profile::Leaf(usage) => {
            b.append_extension(BasicConstraints::new().critical().build()?)?;
            b.append_extension(
                KeyUsage::new()
                    .critical()
                    .digital_signature()
                    .key_encipherment()
                    .build()?,
            )?;
            let mut eku = ExtendedKeyUsage::new();
            if matches!(usage, Usage::Server | Usage::Both) {
                eku.server_auth();
            }
            if matches!(usage, Usage::Client | Usage::Both) {
                eku.client_auth();
            }
            b.append_extension(eku.build()?)?;
        }
    }
    let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(None, None))?;
    b.append_extension(ski)?;
    if let Some((ca, _)) = issuer {
        let aki = AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&b.x509v3_context(Some(ca), None))?;
        b.append_extension(aki)?;
    }
    if !names.0.is_empty() || !names.1.is_empty() {
        let mut san = SubjectAlternativeName::new();
        for d in &names.0 {
            san.dns(d);
        }
        for ip in &names.1 {
            san.ip(&ip.to_string());
        }
        let ext = san.build(&b.x509v3_context(issuer.map(|(c, _)| c.as_ref()), None))?;
        b.append_extension(ext)?;
    }
    b.sign(issuer.map_or(key, |(_, k)| k), MessageDigest::sha256())?;
    Ok(b.build())
}

/// A leaf of kind `leaf` for `key`, with these names, signed by `ca`.
pub(super) fn issue_leaf(
    leaf: &Leaf,
    spec: &Spec,
    key: &PKey<Private>,
    ca: (&X509, &PKey<Private>),
    names: &(BTreeSet<String>, BTreeSet<IpAddr>),
) -> Result<X509> {
    let cn = leaf.cn.unwrap_or(spec.first_master());
    issue(
        &*subject(cn, leaf.org)?,
        key,
        Some(ca),
        Profile::Leaf(leaf.usage),
        names,
    )
}

pub(super) fn load_ca(dir: &Path, stem: &str) -> Result<(X509, PKey<Private>)> {
    Ok((
        read_cert(&dir.join(format!("{stem}.crt")))?,
        read_key(&dir.join(format!("{stem}.key")))?,
    ))
}

pub(super) fn read_cert(path: &Path) -> Result<X509> {
    X509::from_pem(&read(path)?).map_err(|source| PkiError::NotCertificate {
        path: path.to_owned(),
        source,
    })
}

pub(super) fn read_key(path: &Path) -> Result<PKey<Private>> {
    PKey::private_key_from_pem(&read(path)?).map_err(|source| PkiError::NotKey {
        path: path.to_owned(),
        source,
    })
}

/// The DNS names (lowercase) and IP addresses a certificate names.
pub(super) fn sans_of(cert: &X509) -> (BTreeSet<String>, BTreeSet<IpAddr>) {
    let mut dns = BTreeSet::new();
    let mut ips = BTreeSet::new();
    for name in cert.subject_alt_names().into_iter().flatten() {
        if let Some(d) = name.dnsname() {
            dns.insert(d.to_ascii_lowercase());
        } else if let Some(ip) = name.ipaddress() {
            match ip.len() {
                4 => {
                    ips.insert(IpAddr::from(<[u8; 4]>::try_from(ip).expect("length checked")));
                }
                16 => {
                    ips.insert(IpAddr::from(<[u8; 16]>::try_from(ip).expect("length checked")));
                }
                _ => {}
            }
        }
    }
    (dns, ips)
}

/// Whether `cert` was signed by `ca` and names it as its issuer.
pub(super) fn issued_by(cert: &X509, ca: &X509) -> bool {
    ca.public_key().is_ok_and(|k| cert.verify(&k).unwrap_or(false)) && same_name(cert.issuer_name(), ca.subject_name())
}

pub(super) fn same_name(a: &X509NameRef, b: &X509NameRef) -> bool {
    matches!((a.to_der(), b.to_der()), (Ok(x), Ok(y)) if x == y)
}

pub(super) fn common_name(name: &X509NameRef) -> String {
    name.entries_by_nid(Nid::COMMONNAME)
        .next()
        .and_then(|e| e.data().to_string().ok())
        .unwrap_or_default()
}

pub(super) fn not_after(t: &Asn1TimeRef) -> String {
    t.to_string()
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|source| PkiError::Read {
        path: path.to_owned(),
        source,
    })
}
