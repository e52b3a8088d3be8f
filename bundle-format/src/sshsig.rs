//! Detached signatures in OpenSSH's SSHSIG format, so a customer can check a bundle with
//! nothing but
//!
//! ```text
//! ssh-keygen -Y verify -f allowed_signers -I vendor -n delivery -s delivery.run.sig < delivery.run
//! ```
//!
//! This module owns making and checking those signatures and the `allowed_signers` line that
//! names the vendor key. Bundles can be several GB, so the caller hashes the file while
//! streaming it and passes only its SHA-256; the signatures therefore always name hash
//! algorithm `sha256` (ssh-keygen verifies with whichever algorithm the signature names; its
//! own default for signing is `sha512`, so sign with `-O hashalg=sha256` to get one we accept).
//!
//! Format ([PROTOCOL.sshsig]; `string` is a big-endian `uint32` length and the bytes). The file
//! is `-----BEGIN SSH SIGNATURE-----`, the base64 of the blob below in 70-column lines, and
//! `-----END SSH SIGNATURE-----`, each line ending in `\n`:
//!
//! ```text
//! byte[6]  "SSHSIG"
//! uint32   version              1
//! string   public key wire blob (see crate::keys)
//! string   namespace            "delivery"
//! string   reserved             ""
//! string   hash algorithm       "sha256"
//! string   signature:
//!     string  "ssh-ed25519"
//!     string  Ed25519 signature (64 bytes) over the signed data
//! ```
//!
//! Signed data, which is never stored:
//!
//! ```text
//! byte[6]  "SSHSIG"
//! string   namespace
//! string   reserved             ""
//! string   hash algorithm       "sha256"
//! string   SHA-256 of the message (32 bytes)
//! ```
//!
//! `allowed_signers` lines are described in the ALLOWED SIGNERS section of [ssh-keygen(1)].
//!
//! Why not RustCrypto's `ssh-key` crate, which also reads and writes SSHSIG: its
//! `SshSig::sign` and `PublicKey::verify` take the whole message as one `&[u8]` and hash it
//! inside, and a bundle is several GB read once as a stream (its SHA-256 is computed while the
//! file is checked or written). With it we would still build the signed data above by hand;
//! what would be left to it is the armor and a dozen `string` fields, which [`crate::keys`]
//! already reads for the key file. We accept one key type and one hash, so every refusal can
//! say what to do (`-O hashalg=sha256`, an Ed25519 key) instead of "unsupported algorithm".
//!
//! [PROTOCOL.sshsig]: https://github.com/openssh/openssh-portable/blob/master/PROTOCOL.sshsig
//! [ssh-keygen(1)]: https://man.openbsd.org/ssh-keygen#ALLOWED_SIGNERS

use crate::keys::{armor, unarmor, Fingerprint, PublicKey, Reader, SigningKey, Truncated, Writer};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// The namespace bundle signatures are made in; `ssh-keygen -Y verify -n delivery`.
pub const NAMESPACE: &str = "delivery";

const MAGIC: &[u8] = b"SSHSIG";
const VERSION: u32 = 1;
const HASH: &str = "sha256";
const LABEL: &str = "SSH SIGNATURE";
const SIGNATURE_TYPE: &str = "ssh-ed25519";

#[derive(Debug, thiserror::Error)]
pub enum SshSigError {
    #[error(
        "not an SSH signature: expected `-----BEGIN SSH SIGNATURE-----` and \
         `-----END SSH SIGNATURE-----` lines"
    )]
    NotArmored,
    #[error("malformed SSH signature: {what}")]
    Malformed { what: String },
    #[error("unsupported SSH signature version {0}; only version 1 is supported")]
    UnsupportedVersion(u32),
    #[error(
        "signature uses hash algorithm {0:?}; only sha256 is supported, \
         sign with `ssh-keygen -Y sign -O hashalg=sha256`"
    )]
    UnsupportedHash(String),
    #[error("signature is for namespace {found:?}, expected {expected:?}")]
    WrongNamespace { expected: String, found: String },
    #[error("signature was made by key {found}, not by the trusted key {expected}")]
    KeyMismatch { expected: Fingerprint, found: Fingerprint },
    #[error(
        "signature does not match the data; the file was changed or the signature is for \
         another file"
    )]
    BadSignature,
}

fn malformed(what: impl Into<String>) -> SshSigError {
    SshSigError::Malformed { what: what.into() }
}

impl From<Truncated> for SshSigError {
    fn from(Truncated(what): Truncated) -> Self {
        malformed(format!("{what} is truncated"))
    }
}

/// What the Ed25519 signature covers.
fn signed_data(namespace: &str, message_sha256: &[u8; 32]) -> Vec<u8> {
    Writer::default()
        .raw(MAGIC)
        .string(namespace)
        .string("")
        .string(HASH)
        .string(message_sha256)
        .finish()
}

/// An armored signature over a message whose SHA-256 is `message_sha256`, byte for byte what
/// `ssh-keygen -Y sign -n NAMESPACE -O hashalg=sha256` writes for the same key and message.
/// `namespace` must not be empty (ssh-keygen refuses empty namespaces).
pub fn sign_sha256(key: &SigningKey, namespace: &str, message_sha256: &[u8; 32]) -> String {
    let signature = key.sign(&signed_data(namespace, message_sha256));
    let blob = Writer::default()
        .raw(MAGIC)
        .u32(VERSION)
        .string(key.public().wire_blob())
        .string(namespace)
        .string("")
        .string(HASH)
        .string(Writer::default().string(SIGNATURE_TYPE).string(signature).finish())
        .finish();
    armor(LABEL, &blob)
}

/// Checks an armored signature made by `trusted` in `namespace` over a message whose SHA-256 is
/// `message_sha256`.
pub fn verify_sha256(
    armored: &str,
    trusted: &PublicKey,
    namespace: &str,
    message_sha256: &[u8; 32],
) -> Result<(), SshSigError> {
    let body = unarmor(armored, LABEL).ok_or(SshSigError::NotArmored)?;
    let blob = STANDARD
        .decode(body)
        .map_err(|e| malformed(format!("bad base64 between the armor lines: {e}")))?;
    let mut r = Reader::new(&blob);
    if r.bytes(MAGIC.len(), "magic")? != MAGIC {
        return Err(malformed("does not start with \"SSHSIG\""));
    }
    let version = r.u32("version")?;
    if version != VERSION {
        return Err(SshSigError::UnsupportedVersion(version));
    }
    let signer = r.string("public key")?;
    if signer != trusted.wire_blob() {
        return Err(SshSigError::KeyMismatch {
            expected: trusted.fingerprint(),
            found: Fingerprint::of_wire_blob(signer),
        });
    }
    let found_namespace = r.string("namespace")?;
    if found_namespace != namespace.as_bytes() {
        return Err(SshSigError::WrongNamespace {
            expected: namespace.to_owned(),
            found: String::from_utf8_lossy(found_namespace).into_owned(),
        });
    }
    r.string("reserved")?; // ignored, as ssh-keygen does
    let hash = r.string("hash algorithm")?;
    if hash != HASH.as_bytes() {
        return Err(SshSigError::UnsupportedHash(String::from_utf8_lossy(hash).into_owned()));
    }
    let mut s = Reader::new(r.string("signature")?);
    if !r.rest().is_empty() {
        return Err(malformed("trailing bytes after the signature"));
    }
    if s.string("signature type")? != SIGNATURE_TYPE.as_bytes() {
        return Err(malformed("signature type does not match the ssh-ed25519 key"));
    }
    let signature: &[u8; 64] = s
        .string("Ed25519 signature")?
        .try_into()
        .map_err(|_| malformed("Ed25519 signature is not 64 bytes"))?;
    if !s.rest().is_empty() {
        return Err(malformed("trailing bytes after the Ed25519 signature"));
    }
    trusted
        .verify(&signed_data(namespace, message_sha256), signature)
        .map_err(|_| SshSigError::BadSignature)
}

/// `principal namespaces="namespace" ssh-ed25519 BASE64\n`, a line for the `allowed_signers`
/// file given to `ssh-keygen -Y verify -f`. `principal` must not contain whitespace and
/// `namespace` must not contain `"`.
pub fn allowed_signers_line(principal: &str, key: &PublicKey, namespace: &str) -> String {
    format!("{principal} namespaces=\"{namespace}\" {}", key.to_openssh_line(""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::tests::{run_ok, ssh_keygen, write_key_files};
    use ring::digest::{digest, SHA256};
    use std::fs;
    use std::path::{Path, PathBuf};

    fn sha256(bytes: &[u8]) -> [u8; 32] {
        digest(&SHA256, bytes).as_ref().try_into().expect("SHA-256 is 32 bytes")
    }

    fn vendor_key() -> SigningKey {
        SigningKey::from_seed([42; 32], "vendor")
    }

    /// A temp dir holding the vendor key files, `allowed_signers` and a 200 kB `data` file.
    struct Fixture {
        dir: tempfile::TempDir,
        key: SigningKey,
        key_path: PathBuf,
    }

    impl Fixture {
        fn new() -> Self {
            let dir = tempfile::tempdir().expect("tempdir");
            let key = vendor_key();
            let key_path = write_key_files(dir.path(), "vendor", &key);
            fs::write(
                dir.path().join("allowed_signers"),
                allowed_signers_line("vendor", &key.public(), NAMESPACE),
            )
            .expect("write allowed_signers");
            let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
            fs::write(dir.path().join("data"), data).expect("write data");
            Self { dir, key, key_path }
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }

        fn data_sha256(&self) -> [u8; 32] {
            sha256(&fs::read(self.path("data")).expect("read data"))
        }

        /// Whether `ssh-keygen -Y verify` accepts `sig` for `data` as vendor in `namespace`.
        fn ssh_keygen_verifies(&self, sig: &Path, namespace: &str) -> bool {
            ssh_keygen()
                .args(["-Y", "verify", "-I", "vendor", "-n", namespace, "-f"])
                .arg(self.path("allowed_signers"))
                .arg("-s")
                .arg(sig)
                .stdin(fs::File::open(self.path("data")).expect("open data"))
                .output()
                .expect("ssh-keygen runs")
                .status
                .success()
        }

        /// `ssh-keygen -Y sign` over `data`; returns the armored signature.
        fn ssh_keygen_sign(&self, hashalg: &str) -> String {
            let sig = self.path("data.sig");
            let _ = fs::remove_file(&sig);
            run_ok(
                ssh_keygen()
                    .args(["-q", "-Y", "sign", "-n", NAMESPACE, "-O"])
                    .arg(format!("hashalg={hashalg}"))
                    .arg("-f")
                    .arg(&self.key_path)
                    .arg(self.path("data")),
            );
            fs::read_to_string(sig).expect("read data.sig")
        }

        fn flip_data_byte(&self) {
            let mut data = fs::read(self.path("data")).expect("read data");
            data[100_000] ^= 1;
            fs::write(self.path("data"), data).expect("write data");
        }
    }

    #[test]
    fn ssh_keygen_verifies_our_signature() {
        let f = Fixture::new();
        let sig = f.path("ours.sig");
        fs::write(&sig, sign_sha256(&f.key, NAMESPACE, &f.data_sha256())).expect("write sig");
        assert!(f.ssh_keygen_verifies(&sig, NAMESPACE));
        assert!(!f.ssh_keygen_verifies(&sig, "other"));

        let other_namespace = f.path("other.sig");
        fs::write(&other_namespace, sign_sha256(&f.key, "other", &f.data_sha256())).expect("write sig");
        assert!(!f.ssh_keygen_verifies(&other_namespace, NAMESPACE));

        f.flip_data_byte();
        assert!(!f.ssh_keygen_verifies(&sig, NAMESPACE));
    }

    #[test]
    fn we_verify_ssh_keygen_signature() {
        let f = Fixture::new();
        let theirs = f.ssh_keygen_sign("sha256");
        let digest = f.data_sha256();
        verify_sha256(&theirs, &f.key.public(), NAMESPACE, &digest).expect("verifies");
        // Ed25519 is deterministic, so ours is byte for byte the same.
        assert_eq!(sign_sha256(&f.key, NAMESPACE, &digest), theirs);

        let mut flipped = digest;
        flipped[0] ^= 1;
        assert!(matches!(
            verify_sha256(&theirs, &f.key.public(), NAMESPACE, &flipped),
            Err(SshSigError::BadSignature)
        ));

        let other = SigningKey::from_seed([1; 32], "other").public();
        match verify_sha256(&theirs, &other, NAMESPACE, &digest) {
            Err(SshSigError::KeyMismatch { expected, found }) => {
                assert_eq!(expected, other.fingerprint());
                assert_eq!(found, f.key.public().fingerprint());
            }
            result => panic!("expected KeyMismatch, got {result:?}"),
        }

        match verify_sha256(&theirs, &f.key.public(), "other", &digest) {
            Err(SshSigError::WrongNamespace { expected, found }) => {
                assert_eq!((expected.as_str(), found.as_str()), ("other", NAMESPACE));
            }
            result => panic!("expected WrongNamespace, got {result:?}"),
        }
    }

    #[test]
    fn rejects_sha512_signature() {
        let f = Fixture::new();
        let theirs = f.ssh_keygen_sign("sha512");
        assert!(matches!(
            verify_sha256(&theirs, &f.key.public(), NAMESPACE, &f.data_sha256()),
            Err(SshSigError::UnsupportedHash(h)) if h == "sha512"
        ));
    }

    #[test]
    fn rejects_malformed_signatures() {
        let key = vendor_key();
        let digest = sha256(b"message");
        let good = sign_sha256(&key, NAMESPACE, &digest);
        verify_sha256(&good, &key.public(), NAMESPACE, &digest).expect("verifies");
        let check = |armored: &str| verify_sha256(armored, &key.public(), NAMESPACE, &digest);
        let blob = STANDARD
            .decode(unarmor(&good, LABEL).expect("armored"))
            .expect("base64");
        let rearmor = |bytes: &[u8]| armor(LABEL, bytes);

        assert!(matches!(check("hello"), Err(SshSigError::NotArmored)));
        assert!(matches!(
            check(&good.replace("SSH SIGNATURE", "PGP SIGNATURE")),
            Err(SshSigError::NotArmored)
        ));
        // Surrounding whitespace and CRLF line ends are fine.
        check(&format!("\n{}\n", good.replace('\n', "\r\n"))).expect("verifies");

        let mut version = blob.clone();
        version[9] = 2;
        assert!(matches!(
            check(&rearmor(&version)),
            Err(SshSigError::UnsupportedVersion(2))
        ));

        let mut magic = blob.clone();
        magic[0] = b'X';
        assert!(matches!(check(&rearmor(&magic)), Err(SshSigError::Malformed { .. })));

        assert!(matches!(
            check(&rearmor(&blob[..blob.len() - 1])),
            Err(SshSigError::Malformed { .. })
        ));
        let mut trailing = blob.clone();
        trailing.push(0);
        assert!(matches!(check(&rearmor(&trailing)), Err(SshSigError::Malformed { .. })));

        let mut signature = blob.clone();
        *signature.last_mut().expect("non-empty") ^= 1;
        assert!(matches!(check(&rearmor(&signature)), Err(SshSigError::BadSignature)));
    }

    #[test]
    fn armor_and_allowed_signers_layout() {
        let key = vendor_key();
        let armored = sign_sha256(&key, NAMESPACE, &[0; 32]);
        assert!(armored.starts_with("-----BEGIN SSH SIGNATURE-----\n"));
        assert!(armored.ends_with("\n-----END SSH SIGNATURE-----\n"));
        assert!(armored.lines().all(|l| l.len() <= 70));

        let line = allowed_signers_line("vendor", &key.public(), NAMESPACE);
        assert_eq!(
            line,
            format!("vendor namespaces=\"delivery\" {}", key.public().to_openssh_line(""))
        );
        assert!(line.starts_with("vendor namespaces=\"delivery\" ssh-ed25519 AAAA"));
        assert!(line.ends_with('\n') && !line.ends_with(" \n"));
    }
}
