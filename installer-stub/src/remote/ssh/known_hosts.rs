//! Host keys, checked by us because libssh2 checks none: the key a host offers is looked up in
//! the OpenSSH known_hosts file line by line; an unknown key is refused or (accept-new) appended,
//! a changed one always refused with the line to remove. The key types known_hosts lists for a
//! host are offered first, as OpenSSH does.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Mutex;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use bundle_format::digest::Digest;
use ssh2::{CheckResult, HostKeyType, KnownHostFileKind};

use super::{HostKeyPolicy, SshError, Target};

/// Serialises appends to known_hosts files among the threads of this process.
static KNOWN_HOSTS_LOCK: Mutex<()> = Mutex::new(());

/// The host field of a known_hosts line: `host` on port 22, `[host]:port` otherwise.
fn known_hosts_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

fn key_type_name(t: HostKeyType) -> Option<&'static str> {
    Some(match t {
        HostKeyType::Rsa => "ssh-rsa",
        HostKeyType::Dss => "ssh-dss",
        HostKeyType::Ecdsa256 => "ecdsa-sha2-nistp256",
        HostKeyType::Ecdsa384 => "ecdsa-sha2-nistp384",
        HostKeyType::Ecdsa521 => "ecdsa-sha2-nistp521",
        HostKeyType::Ed25519 => "ssh-ed25519",
        HostKeyType::Unknown => return None,
    })
}

/// The host argument of `ssh-keygen -R` as typed on a shell line (`host` or `'[host]:port'`).
pub(super) fn keygen_host_arg(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("'[{host}]:{port}'")
    }
}

/// One OpenSSH known_hosts line (with newline) for a key.
fn known_hosts_line(host: &str, port: u16, key_type: &str, key: &[u8]) -> String {
    format!(
        "{} {} {}\n",
        known_hosts_name(host, port),
        key_type,
        STANDARD.encode(key)
    )
}

/// `SHA256:...` as ssh-keygen -l prints it.
fn fingerprint(key: &[u8]) -> String {
    format!("SHA256:{}", STANDARD_NO_PAD.encode(Digest::of(key).0))
}

/// The result of checking a host key against a known_hosts file.
#[derive(Debug, PartialEq, Eq)]
enum KeyCheck {
    Match,
    NotFound,
    /// 1-based line and the fingerprint of the key stored there.
    Mismatch {
        line: usize,
        old_fingerprint: String,
    },
}

/// Checks `key` for `host:port` against known_hosts `text`, line by line so one line libssh2
/// cannot parse (a certificate authority, an unsupported key type) does not hide the rest.
fn check_known_hosts(
    sess: &ssh2::Session,
    text: &str,
    host: &str,
    port: u16,
    key: &[u8],
) -> Result<KeyCheck, ssh2::Error> {
    let mut found = KeyCheck::NotFound;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let mut kh = sess.known_hosts()?;
        if kh.read_str(trimmed, KnownHostFileKind::OpenSSH).is_err() {
            continue;
        }
        match kh.check_port(host, port, key) {
            CheckResult::Match => return Ok(KeyCheck::Match),
            CheckResult::Mismatch => {
                if found == KeyCheck::NotFound {
                    let old = trimmed
                        .split_whitespace()
                        .nth(if trimmed.starts_with('@') { 3 } else { 2 })
                        .and_then(|b| STANDARD.decode(b).ok())
                        .map(|k| fingerprint(&k))
                        .unwrap_or_else(|| "an unreadable key".into());
                    found = KeyCheck::Mismatch {
                        line: i + 1,
                        old_fingerprint: old,
                    };
                }
            }
            CheckResult::NotFound | CheckResult::Failure => {}
        }
    }
    // OpenSSH semantics: any matching line accepts (a host may have several key types listed);
    // otherwise a line for this host with another key of the same type is a change.
    Ok(found)
}

/// Puts the host key algorithms of the keys known_hosts lists for this host first, as OpenSSH
/// does: a host with RSA and Ed25519 keys whose RSA key alone is known then offers the RSA key
/// instead of looking changed. Best effort: any failure leaves libssh2's default order.
pub(super) fn prefer_known_key_types(sess: &ssh2::Session, target: &Target) {
    let Ok(text) = fs::read_to_string(&target.known_hosts) else {
        return;
    };
    let mut known: Vec<&str> = Vec::new();
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let Ok(mut kh) = sess.known_hosts() else { return };
        if kh.read_str(line, KnownHostFileKind::OpenSSH).is_err() {
            continue;
        }
        // With a key that cannot match, a line for this host answers Mismatch, others NotFound.
        if matches!(
            kh.check_port(&target.host, target.port, b"no such key"),
            CheckResult::Mismatch
        ) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if let Some(t) = fields.get(if line.starts_with('@') { 2 } else { 1 }) {
                known.push(t);
            }
        }
    }
    if known.is_empty() {
        return;
    }
    let Ok(supported) = sess.supported_algs(ssh2::MethodType::HostKey) else {
        return;
    };
    let mut prefs: Vec<&str> = Vec::new();
    for t in known {
        let algs: &[&str] = if t == "ssh-rsa" {
            &["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]
        } else {
            &[t][..]
        };
        prefs.extend(algs.iter().filter(|a| supported.contains(a)));
    }
    prefs.extend(supported.iter().copied());
    let mut seen = std::collections::BTreeSet::new();
    prefs.retain(|a| seen.insert(*a));
    let _ = sess.method_pref(ssh2::MethodType::HostKey, &prefs.join(","));
}

pub(super) fn check_host_key(sess: &ssh2::Session, target: &Target) -> Result<(), SshError> {
    let (host, port) = (target.host.as_str(), target.port);
    let other = |action: &str, reason: String| SshError::Other {
        host: host.to_string(),
        port,
        action: action.to_string(),
        reason,
    };
    let (key, ktype) = sess
        .host_key()
        .ok_or_else(|| other("reading the host key", "the server sent none".into()))?;
    let key = key.to_vec();
    let new_fp = fingerprint(&key);
    let read = |path: &Path| -> Result<String, SshError> {
        match fs::read_to_string(path) {
            Ok(t) => Ok(t),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(other("reading known_hosts", format!("{}: {e}", path.display()))),
        }
    };
    let check = |text: &str| {
        check_known_hosts(sess, text, host, port, &key).map_err(|e| other("checking the host key", e.to_string()))
    };
    let changed = |line: usize, old_fingerprint: String| SshError::HostKeyChanged {
        host: host.to_string(),
        port,
        old_fingerprint,
        new_fingerprint: new_fp.clone(),
        known_hosts: target.known_hosts.clone(),
        line,
    };
    match check(&read(&target.known_hosts)?)? {
        KeyCheck::Match => return Ok(()),
        KeyCheck::Mismatch { line, old_fingerprint } => return Err(changed(line, old_fingerprint)),
        KeyCheck::NotFound => {}
    }
    if target.host_key_policy == HostKeyPolicy::Strict {
        return Err(SshError::HostKeyUnknown {
            host: host.to_string(),
            port,
            fingerprint: new_fp,
            known_hosts: target.known_hosts.clone(),
        });
    }
    let type_name = key_type_name(ktype).ok_or_else(|| other("reading the host key", "unknown key type".into()))?;
    let _guard = KNOWN_HOSTS_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    // Another thread may have added this host meanwhile: check again under the lock.
    let text = read(&target.known_hosts)?;
    match check(&text)? {
        KeyCheck::Match => return Ok(()),
        KeyCheck::Mismatch { line, old_fingerprint } => return Err(changed(line, old_fingerprint)),
        KeyCheck::NotFound => {}
    }
    let path = &target.known_hosts;
    let fail = |e: io::Error| other("adding the host key to known_hosts", format!("{}: {e}", path.display()));
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(fail)?;
        }
    }
    let mut f = fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(fail)?;
    let mut line = known_hosts_line(host, port, type_name, &key);
    if !text.is_empty() && !text.ends_with('\n') {
        line.insert(0, '\n');
    }
    f.write_all(line.as_bytes()).map_err(fail)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hosts_line_formats() {
        let key = [0u8, 0, 0, 11, b's', b's', b'h'];
        assert_eq!(
            known_hosts_line("10.0.0.1", 22, "ssh-ed25519", &key),
            "10.0.0.1 ssh-ed25519 AAAAC3NzaA==\n"
        );
        assert_eq!(
            known_hosts_line("node1.example", 2222, "ssh-ed25519", &key),
            "[node1.example]:2222 ssh-ed25519 AAAAC3NzaA==\n"
        );
    }

    /// An ed25519 public key blob (type string + 32 bytes), as a server would send it.
    fn fake_key(seed: u8) -> Vec<u8> {
        let mut k = vec![0, 0, 0, 11];
        k.extend_from_slice(b"ssh-ed25519");
        k.extend_from_slice(&[0, 0, 0, 32]);
        k.extend((0..32).map(|i| seed.wrapping_add(i)));
        k
    }

    #[test]
    fn known_hosts_check_finds_match_change_and_port_form() {
        let sess = ssh2::Session::new().expect("libssh2 initialises");
        let (a, b) = (fake_key(1), fake_key(2));
        let text = format!(
            "# comment\n@cert-authority *.example ssh-ed25519 {}\n{}{}",
            STANDARD.encode(&b),
            known_hosts_line("10.0.0.1", 22, "ssh-ed25519", &a),
            known_hosts_line("10.0.0.2", 2222, "ssh-ed25519", &a),
        );
        let check = |host, port, key: &[u8]| check_known_hosts(&sess, &text, host, port, key).expect("check runs");
        assert_eq!(check("10.0.0.1", 22, &a), KeyCheck::Match);
        assert_eq!(
            check("10.0.0.1", 22, &b),
            KeyCheck::Mismatch {
                line: 3,
                old_fingerprint: fingerprint(&a)
            }
        );
        assert_eq!(check("10.0.0.9", 22, &a), KeyCheck::NotFound);
        assert_eq!(check("10.0.0.2", 2222, &a), KeyCheck::Match);
        assert_eq!(
            check("10.0.0.2", 22, &a),
            KeyCheck::NotFound,
            "the [host]:port line is not for port 22"
        );
    }

    #[test]
    fn fingerprint_matches_ssh_keygen() {
        // ssh-keygen -lf of this public key printed the fingerprint below.
        let key = STANDARD
            .decode("AAAAC3NzaC1lZDI1NTE5AAAAIBIElvDNBz7jf1YYUHtCkUX3Qqu30O85n0CuaN6WANyo")
            .expect("base64");
        assert_eq!(fingerprint(&key), "SHA256:i7ZQcf4zE8raBS5S0Dq6NkHUSSU8KE6X520ZkQLwPYQ");
    }
}
