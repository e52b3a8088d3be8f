//! Ed25519 keys in the formats OpenSSH uses, so a vendor can sign with a key made by
//! `ssh-keygen -t ed25519` (or `delivery keygen`) and a customer can check signatures with
//! nothing but `ssh-keygen`.
//!
//! This module owns the private key file, the public key line, the public key wire blob and its
//! fingerprint, plain Ed25519 signing ([RFC 8032]), and the small SSH wire reader/writer and
//! base64 armor that [`crate::sshsig`] shares.
//!
//! `string` below is a big-endian `uint32` length followed by that many bytes ([RFC 4251 §5]).
//!
//! Public key wire blob ([RFC 8709 §4]) and the forms built on it:
//!
//! ```text
//! string  "ssh-ed25519"
//! string  public key (32 bytes)
//!
//! public key line:  "ssh-ed25519 " base64(blob) [" " comment] "\n"
//! fingerprint:      "SHA256:" base64-without-padding(SHA-256(blob))   (as `ssh-keygen -lf` prints)
//! ```
//!
//! Private key file ([PROTOCOL.key]): the lines `-----BEGIN OPENSSH PRIVATE KEY-----` and
//! `-----END OPENSSH PRIVATE KEY-----` around the base64 of the bytes below, wrapped at 70
//! columns. Only unencrypted files (cipher `none`) holding one `ssh-ed25519` key are accepted.
//!
//! ```text
//! byte[15] "openssh-key-v1\0"
//! string   cipher name        "none"
//! string   kdf name           "none"
//! string   kdf options        ""
//! uint32   number of keys     1
//! string   public key wire blob
//! string   private section, a multiple of 8 bytes long:
//!     uint32  checkint        } equal; random in ssh-keygen, derived from the
//!     uint32  checkint        } public key here so the output is deterministic
//!     string  "ssh-ed25519"
//!     string  public key (32 bytes)
//!     string  seed (32 bytes) || public key (32 bytes)
//!     string  comment
//!     byte    1, 2, 3, ...    padding up to the block size 8
//! ```
//!
//! Why not RustCrypto's `ssh-key` crate: it reads every OpenSSH key type, encrypted keys and
//! certificates, while a vendor key here is one unencrypted Ed25519 key, whose two file forms
//! are the few fields above over `ed25519-dalek`, which we use anyway for the bundle's own
//! signature. Keeping the subset ours lets each refusal name its fix (an encrypted key: decrypt
//! it with `ssh-keygen -p`; an RSA key: make an Ed25519 one), and lets the private key file we
//! write be deterministic (the check integers derived from the key, not random).
//!
//! [RFC 8032]: https://www.rfc-editor.org/rfc/rfc8032
//! [RFC 4251 §5]: https://www.rfc-editor.org/rfc/rfc4251#section-5
//! [RFC 8709 §4]: https://www.rfc-editor.org/rfc/rfc8709#section-4
//! [PROTOCOL.key]: https://github.com/openssh/openssh-portable/blob/master/PROTOCOL.key

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use ed25519_dalek::Signer as _;
use ring::digest::{digest, SHA256};
use ring::rand::{SecureRandom as _, SystemRandom};
use std::fmt;
use std::str::FromStr;

const KEY_TYPE: &str = "ssh-ed25519";
const PRIVATE_KEY_LABEL: &str = "OPENSSH PRIVATE KEY";
const PRIVATE_KEY_MAGIC: &[u8] = b"openssh-key-v1\0";
const PRIVATE_BLOCK_SIZE: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "not an OpenSSH private key (expected `-----BEGIN OPENSSH PRIVATE KEY-----`); \
         make one with `delivery keygen` or `ssh-keygen -t ed25519`"
    )]
    NotOpensshPrivateKey,
    #[error(
        "private key is protected by a passphrase; decrypt it with \
         `ssh-keygen -p -N '' -f FILE` or make a new one with `delivery keygen`"
    )]
    Encrypted,
    #[error(
        "unsupported key type {found:?}; only ssh-ed25519 keys are supported, \
         make one with `delivery keygen` or `ssh-keygen -t ed25519`"
    )]
    UnsupportedKeyType { found: String },
    #[error("malformed OpenSSH key: {what}")]
    Malformed { what: String },
    #[error("private key check values differ; the key file is corrupt")]
    CheckIntMismatch,
    #[error("private key does not match the public key stored with it; the key file is corrupt")]
    PublicKeyMismatch,
    #[error("not an OpenSSH public key line: {reason}")]
    BadPublicKeyLine { reason: String },
    #[error(
        "invalid key fingerprint {input:?}; expected `SHA256:` and 43 base64 characters, \
         as `ssh-keygen -lf KEY.pub` prints"
    )]
    BadFingerprint { input: String },
    #[error("signature does not verify with this Ed25519 public key")]
    BadSignature,
    #[error("the system random number generator failed")]
    Random,
}

fn malformed(what: impl Into<String>) -> KeyError {
    KeyError::Malformed { what: what.into() }
}

/// An Ed25519 private key with the comment OpenSSH stores beside it.
#[derive(Clone)]
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
    comment: String,
}

impl fmt::Debug for SigningKey {
    /// Shows the fingerprint and comment, never the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("fingerprint", &self.public().fingerprint().as_str())
            .field("comment", &self.comment)
            .finish()
    }
}

impl SigningKey {
    /// A new key with a seed from the operating system's random number generator.
    pub fn generate(comment: &str) -> Result<Self, KeyError> {
        let mut seed = [0u8; 32];
        SystemRandom::new().fill(&mut seed).map_err(|_| KeyError::Random)?;
        Ok(Self::from_seed(seed, comment))
    }

    /// The key for a given 32-byte seed (RFC 8032 "private key"); for deterministic tests.
    pub fn from_seed(seed: [u8; 32], comment: &str) -> Self {
        Self {
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
            comment: comment.to_owned(),
        }
    }

    /// Parses an unencrypted `openssh-key-v1` file holding one Ed25519 key.
    pub fn from_openssh(text: &str) -> Result<Self, KeyError> {
        let body = unarmor(text, PRIVATE_KEY_LABEL).ok_or(KeyError::NotOpensshPrivateKey)?;
        let blob = STANDARD
            .decode(body)
            .map_err(|e| malformed(format!("bad base64 between the armor lines: {e}")))?;
        let mut r = Reader::new(&blob);
        if r.bytes(PRIVATE_KEY_MAGIC.len(), "magic")? != PRIVATE_KEY_MAGIC {
            return Err(KeyError::NotOpensshPrivateKey);
        }
        let cipher = r.string("cipher name")?;
        let kdf = r.string("kdf name")?;
        r.string("kdf options")?;
        if cipher != b"none" {
            return Err(KeyError::Encrypted);
        }
        if kdf != b"none" {
            return Err(malformed(format!(
                "kdf {:?} with cipher \"none\"",
                String::from_utf8_lossy(kdf)
            )));
        }
        let count = r.u32("number of keys")?;
        if count != 1 {
            return Err(malformed(format!("file holds {count} keys, expected 1")));
        }
        let outer_public = PublicKey::from_wire_blob(r.string("public key")?)?;
        let private = r.string("private section")?;
        if !r.rest().is_empty() {
            return Err(malformed("trailing bytes after the private section"));
        }
        if private.len() % PRIVATE_BLOCK_SIZE != 0 {
            return Err(malformed("private section is not a multiple of the block size 8"));
        }

        let mut p = Reader::new(private);
        if p.u32("checkint")? != p.u32("checkint")? {
            return Err(KeyError::CheckIntMismatch);
        }
        let key_type = p.string("private key type")?;
        if key_type != KEY_TYPE.as_bytes() {
            return Err(KeyError::UnsupportedKeyType {
                found: String::from_utf8_lossy(key_type).into_owned(),
            });
        }
        let public: &[u8; 32] = p
            .string("public key")?
            .try_into()
            .map_err(|_| malformed("private section's public key is not 32 bytes"))?;
        let secret: &[u8; 64] = p
            .string("private key")?
            .try_into()
            .map_err(|_| malformed("private key is not 64 bytes (seed || public key)"))?;
        let (seed, public_copy) = secret.split_at(32);
        let comment = String::from_utf8_lossy(p.string("comment")?).into_owned();
        let padding_ok = (1..=u8::MAX).zip(p.rest()).all(|(want, got)| want == *got);
        if !padding_ok || p.rest().len() >= PRIVATE_BLOCK_SIZE {
            return Err(malformed("padding after the comment is not 1, 2, 3, ..."));
        }

        let key = Self::from_seed(seed.try_into().expect("half of 64 bytes"), &comment);
        let derived = key.public().to_bytes();
        if derived != *public || public_copy != public || outer_public.to_bytes() != *public {
            return Err(KeyError::PublicKeyMismatch);
        }
        Ok(key)
    }

    /// The key as `ssh-keygen -t ed25519 -N ''` would write it, except that the two checkints
    /// are derived from the public key instead of random (they only matter for encrypted keys).
    pub fn to_openssh(&self) -> String {
        let public = self.public();
        let blob = public.wire_blob();
        let checkint = u32::from_be_bytes(
            digest(&SHA256, &blob).as_ref()[..4]
                .try_into()
                .expect("a SHA-256 digest has at least 4 bytes"),
        );
        let mut private = Writer::default()
            .u32(checkint)
            .u32(checkint)
            .string(KEY_TYPE)
            .string(public.to_bytes())
            .string(self.key.to_keypair_bytes()) // seed || public key
            .string(&self.comment)
            .finish();
        let padding = (PRIVATE_BLOCK_SIZE - private.len() % PRIVATE_BLOCK_SIZE) % PRIVATE_BLOCK_SIZE;
        private.extend(1..=padding as u8);
        let file = Writer::default()
            .raw(PRIVATE_KEY_MAGIC)
            .string("none")
            .string("none")
            .string("")
            .u32(1)
            .string(&blob)
            .string(&private)
            .finish();
        armor(PRIVATE_KEY_LABEL, &file)
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.key.verifying_key())
    }

    pub fn comment(&self) -> &str {
        &self.comment
    }

    /// A plain Ed25519 signature (RFC 8032) over `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }
}

/// An Ed25519 public key.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct PublicKey(ed25519_dalek::VerifyingKey);

impl PublicKey {
    /// Fails with [`KeyError::Malformed`] if the bytes are not a point on the curve.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, KeyError> {
        ed25519_dalek::VerifyingKey::from_bytes(bytes)
            .map(Self)
            .map_err(|_| malformed("public key bytes are not a valid Ed25519 point"))
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// Parses the contents of a `.pub` file: exactly one `ssh-ed25519 BASE64 [comment]` line;
    /// blank lines, `#` lines and surrounding whitespace are ignored. The comment is dropped.
    pub fn from_openssh_line(text: &str) -> Result<Self, KeyError> {
        let bad = |reason: &str| KeyError::BadPublicKeyLine {
            reason: reason.to_owned(),
        };
        let mut lines = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        let line = lines.next().ok_or_else(|| bad("no key line found"))?;
        if lines.next().is_some() {
            return Err(bad("more than one key line; give exactly one key"));
        }
        let mut fields = line.split_whitespace();
        let key_type = fields.next().ok_or_else(|| bad("empty line"))?;
        if key_type.starts_with("-----BEGIN") {
            return Err(bad("this is a private key file; give the `.pub` file instead"));
        }
        if key_type != KEY_TYPE {
            return Err(KeyError::UnsupportedKeyType {
                found: key_type.to_owned(),
            });
        }
        let encoded = fields
            .next()
            .ok_or_else(|| bad("nothing after `ssh-ed25519`; expected the base64 key"))?;
        let blob = STANDARD
            .decode(encoded)
            .map_err(|e| bad(&format!("key is not valid base64: {e}")))?;
        Self::from_wire_blob(&blob)
    }

    /// `ssh-ed25519 BASE64 comment\n`, or `ssh-ed25519 BASE64\n` for an empty comment.
    pub fn to_openssh_line(&self, comment: &str) -> String {
        let encoded = STANDARD.encode(self.wire_blob());
        if comment.is_empty() {
            format!("{KEY_TYPE} {encoded}\n")
        } else {
            format!("{KEY_TYPE} {encoded} {comment}\n")
        }
    }

    /// `string "ssh-ed25519" || string key`, the form SSH signs, hashes and sends.
    pub fn wire_blob(&self) -> Vec<u8> {
        Writer::default().string(KEY_TYPE).string(self.to_bytes()).finish()
    }

    pub(crate) fn from_wire_blob(blob: &[u8]) -> Result<Self, KeyError> {
        let mut r = Reader::new(blob);
        let key_type = r.string("key type")?;
        if key_type != KEY_TYPE.as_bytes() {
            return Err(KeyError::UnsupportedKeyType {
                found: String::from_utf8_lossy(key_type).into_owned(),
            });
        }
        let bytes: &[u8; 32] = r
            .string("public key")?
            .try_into()
            .map_err(|_| malformed("ssh-ed25519 public key is not 32 bytes"))?;
        if !r.rest().is_empty() {
            return Err(malformed("trailing bytes after the public key"));
        }
        Self::from_bytes(bytes)
    }

    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of_wire_blob(&self.wire_blob())
    }

    /// Checks a plain Ed25519 signature, rejecting non-canonical and small-order forms.
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> Result<(), KeyError> {
        self.0
            .verify_strict(message, &ed25519_dalek::Signature::from_bytes(signature))
            .map_err(|_| KeyError::BadSignature)
    }
}

/// `SHA256:` and the unpadded base64 of the SHA-256 of a key's wire blob, as `ssh-keygen -lf`
/// prints it.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// The fingerprint of any key's wire blob, including key types this module cannot use.
    pub(crate) fn of_wire_blob(blob: &[u8]) -> Self {
        Self(format!("SHA256:{}", STANDARD_NO_PAD.encode(digest(&SHA256, blob))))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Fingerprint {
    type Err = KeyError;

    /// Accepts `SHA256:` and exactly the 43 characters that encode 32 bytes, surrounding
    /// whitespace ignored.
    fn from_str(input: &str) -> Result<Self, KeyError> {
        let bad = || KeyError::BadFingerprint {
            input: input.to_owned(),
        };
        let encoded = input.trim().strip_prefix("SHA256:").ok_or_else(bad)?;
        match STANDARD_NO_PAD.decode(encoded) {
            Ok(hash) if hash.len() == 32 => Ok(Self(format!("SHA256:{encoded}"))),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// ---- SSH wire encoding and armor, shared with `crate::sshsig` ----

/// What ran out of bytes while reading SSH wire data.
#[derive(Debug)]
pub(crate) struct Truncated(pub(crate) &'static str);

impl From<Truncated> for KeyError {
    fn from(Truncated(what): Truncated) -> Self {
        malformed(format!("{what} is truncated"))
    }
}

/// Reads `uint32` and `string` values ([RFC 4251 §5]) from the front of a byte slice.
///
/// [RFC 4251 §5]: https://www.rfc-editor.org/rfc/rfc4251#section-5
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    pub(crate) fn bytes(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], Truncated> {
        let (head, tail) = self.rest.split_at_checked(len).ok_or(Truncated(what))?;
        self.rest = tail;
        Ok(head)
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, Truncated> {
        let bytes = self.bytes(4, what)?;
        Ok(u32::from_be_bytes(bytes.try_into().expect("bytes(4) returns 4 bytes")))
    }

    pub(crate) fn string(&mut self, what: &'static str) -> Result<&'a [u8], Truncated> {
        let len = self.u32(what)?;
        self.bytes(len as usize, what)
    }

    /// The bytes not read yet.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.rest
    }
}

/// Builds SSH wire data: `Writer::default().string("x").u32(1).finish()`.
#[derive(Default)]
pub(crate) struct Writer(Vec<u8>);

impl Writer {
    pub(crate) fn raw(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }

    pub(crate) fn u32(self, value: u32) -> Self {
        self.raw(&value.to_be_bytes())
    }

    pub(crate) fn string(self, bytes: impl AsRef<[u8]>) -> Self {
        let bytes = bytes.as_ref();
        let len = u32::try_from(bytes.len()).expect("SSH strings written here are far below 4 GiB");
        self.u32(len).raw(bytes)
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.0
    }
}

/// `-----BEGIN {label}-----`, the base64 of `data` in 70-column lines, `-----END {label}-----`,
/// each line ending in `\n`: the layout ssh-keygen writes for keys and signatures.
pub(crate) fn armor(label: &str, data: &[u8]) -> String {
    let encoded = STANDARD.encode(data);
    let mut out = format!("-----BEGIN {label}-----\n");
    for (i, c) in encoded.chars().enumerate() {
        if i > 0 && i % 70 == 0 {
            out.push('\n');
        }
        out.push(c);
    }
    out.push_str(&format!("\n-----END {label}-----\n"));
    out
}

/// The base64 between the armor lines with all whitespace removed, or `None` if `text` (after
/// trimming) does not start and end with them.
pub(crate) fn unarmor(text: &str, label: &str) -> Option<String> {
    let body = text
        .trim()
        .strip_prefix(&format!("-----BEGIN {label}-----"))?
        .strip_suffix(&format!("-----END {label}-----"))?;
    Some(body.split_whitespace().collect())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::fs;
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Output};

    const SSH_KEYGEN: &str = "/usr/bin/ssh-keygen";

    /// `ssh-keygen` without any agent; fails the test if it is not installed.
    pub(crate) fn ssh_keygen() -> Command {
        assert!(
            Path::new(SSH_KEYGEN).exists(),
            "{SSH_KEYGEN} is missing; these tests check compatibility with the real OpenSSH, \
             install it with `apt-get install openssh-client`"
        );
        let mut cmd = Command::new(SSH_KEYGEN);
        cmd.env_remove("SSH_AUTH_SOCK");
        cmd
    }

    /// Runs the command, failing the test with its stderr unless it exits 0; returns stdout.
    pub(crate) fn run_ok(cmd: &mut Command) -> String {
        let out: Output = cmd.output().expect("ssh-keygen runs");
        assert!(
            out.status.success(),
            "{cmd:?} failed with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("ssh-keygen prints UTF-8")
    }

    /// Writes `name` (mode 0600, as ssh-keygen insists) and `name.pub`; returns the first path.
    pub(crate) fn write_key_files(dir: &Path, name: &str, key: &SigningKey) -> PathBuf {
        let path = dir.join(name);
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(key.to_openssh().as_bytes()))
            .expect("write private key");
        fs::write(
            dir.join(format!("{name}.pub")),
            key.public().to_openssh_line(key.comment()),
        )
        .expect("write public key");
        path
    }

    fn test_key() -> SigningKey {
        SigningKey::from_seed([7; 32], "vendor@example")
    }

    fn read(path: &Path) -> String {
        fs::read_to_string(path).expect("read file")
    }

    /// Decodes a private key file's armor, for tests that tamper with the bytes.
    fn file_bytes(text: &str) -> Vec<u8> {
        STANDARD
            .decode(unarmor(text, PRIVATE_KEY_LABEL).expect("armored"))
            .expect("base64")
    }

    /// Offset of the first checkint: magic, "none", "none", "", count, public blob (51 bytes),
    /// private section length.
    const CHECKINT_AT: usize = 15 + (4 + 4) + (4 + 4) + 4 + 4 + (4 + 51) + 4;

    #[test]
    fn openssh_private_key_round_trips() {
        let key = test_key();
        let text = key.to_openssh();
        let back = SigningKey::from_openssh(&text).expect("parse our own key");
        assert_eq!(back.public(), key.public());
        assert_eq!(back.comment(), "vendor@example");
        assert_eq!(back.to_openssh(), text);
        assert_eq!(back.sign(b"m"), key.sign(b"m"));
        assert!(text.lines().all(|l| l.len() <= 70));
    }

    #[test]
    fn padding_covers_every_comment_length() {
        for len in 0..20 {
            let key = SigningKey::from_seed([len as u8; 32], &"c".repeat(len));
            let back = SigningKey::from_openssh(&key.to_openssh()).expect("parse");
            assert_eq!(back.comment().len(), len);
        }
    }

    #[test]
    fn ssh_keygen_reads_our_private_and_public_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = test_key();
        let path = write_key_files(dir.path(), "key", &key);

        let derived = run_ok(ssh_keygen().arg("-y").arg("-f").arg(&path));
        assert_eq!(derived, key.public().to_openssh_line(key.comment()));

        let listed = run_ok(ssh_keygen().arg("-lf").arg(dir.path().join("key.pub")));
        let fields: Vec<&str> = listed.split_whitespace().collect();
        assert_eq!(fields.get(1), Some(&key.public().fingerprint().as_str()), "{listed}");
    }

    #[test]
    fn loads_ssh_keygen_key_and_writes_it_back_identically() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k");
        run_ok(
            ssh_keygen()
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "someone@host", "-f"])
                .arg(&path),
        );
        let theirs = read(&path);
        let key = SigningKey::from_openssh(&theirs).expect("load ssh-keygen key");
        let public = PublicKey::from_openssh_line(&read(&path.with_extension("pub"))).expect("load ssh-keygen .pub");
        assert_eq!(key.public(), public);
        assert_eq!(key.comment(), "someone@host");

        // Same bytes except the random checkints, so the same line lengths too.
        let ours = key.to_openssh();
        let line_lengths = |t: &str| t.lines().map(str::len).collect::<Vec<_>>();
        assert_eq!(line_lengths(&ours), line_lengths(&theirs));
        let (mut ours, mut theirs) = (file_bytes(&ours), file_bytes(&theirs));
        ours[CHECKINT_AT..CHECKINT_AT + 8].fill(0);
        theirs[CHECKINT_AT..CHECKINT_AT + 8].fill(0);
        assert_eq!(ours, theirs);
    }

    #[test]
    fn refuses_encrypted_and_rsa_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let encrypted = dir.path().join("enc");
        run_ok(
            ssh_keygen()
                .args(["-q", "-t", "ed25519", "-N", "secret", "-f"])
                .arg(&encrypted),
        );
        assert!(matches!(
            SigningKey::from_openssh(&read(&encrypted)),
            Err(KeyError::Encrypted)
        ));

        let rsa = dir.path().join("rsa");
        run_ok(
            ssh_keygen()
                .args(["-q", "-t", "rsa", "-b", "1024", "-N", "", "-f"])
                .arg(&rsa),
        );
        let err = SigningKey::from_openssh(&read(&rsa)).unwrap_err();
        assert!(
            matches!(&err, KeyError::UnsupportedKeyType { found } if found == "ssh-rsa"),
            "{err:?}"
        );
        let err = PublicKey::from_openssh_line(&read(&rsa.with_extension("pub"))).unwrap_err();
        assert!(
            matches!(&err, KeyError::UnsupportedKeyType { found } if found == "ssh-rsa"),
            "{err:?}"
        );
    }

    #[test]
    fn detects_damaged_private_keys() {
        let good = file_bytes(&test_key().to_openssh());
        let load = |bytes: &[u8]| SigningKey::from_openssh(&armor(PRIVATE_KEY_LABEL, bytes));
        assert!(load(&good).is_ok());

        let mut checkint = good.clone();
        checkint[CHECKINT_AT] ^= 1;
        assert!(matches!(load(&checkint), Err(KeyError::CheckIntMismatch)));

        // The last byte of the 64-byte private key is the last byte of its public key copy.
        let private_end = CHECKINT_AT + 8 + (4 + 11) + (4 + 32) + (4 + 64);
        let mut public_copy = good.clone();
        public_copy[private_end - 1] ^= 1;
        assert!(matches!(load(&public_copy), Err(KeyError::PublicKeyMismatch)));

        let mut seed = good.clone();
        seed[private_end - 64] ^= 1;
        assert!(matches!(load(&seed), Err(KeyError::PublicKeyMismatch)));

        let mut padding = good.clone();
        *padding.last_mut().expect("non-empty") ^= 0x80;
        assert!(matches!(load(&padding), Err(KeyError::Malformed { .. })));

        assert!(matches!(load(&good[..good.len() - 9]), Err(KeyError::Malformed { .. })));
        assert!(matches!(
            SigningKey::from_openssh("hello"),
            Err(KeyError::NotOpensshPrivateKey)
        ));
        assert!(matches!(
            SigningKey::from_openssh(&armor(PRIVATE_KEY_LABEL, b"openssh-key-v2\0")),
            Err(KeyError::NotOpensshPrivateKey)
        ));
    }

    #[test]
    fn public_key_line_parsing() {
        let public = test_key().public();
        let line = public.to_openssh_line("a comment with spaces");
        assert!(line.starts_with("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI"));
        assert!(line.ends_with(" a comment with spaces\n"));
        assert_eq!(PublicKey::from_openssh_line(&line).expect("parse"), public);

        let bare = public.to_openssh_line("");
        assert_eq!(bare.split_whitespace().count(), 2);
        assert!(!bare.ends_with(" \n"));
        let padded = format!("\n  # vendor key\n\n\t{}  \n\n", bare.trim());
        assert_eq!(PublicKey::from_openssh_line(&padded).expect("parse"), public);

        let bad = |text: &str| match PublicKey::from_openssh_line(text) {
            Err(KeyError::BadPublicKeyLine { reason }) => reason,
            other => panic!("{text:?} gave {other:?}"),
        };
        bad("");
        bad("# only a comment\n");
        bad(&format!("{bare}{bare}"));
        bad("ssh-ed25519");
        bad("ssh-ed25519 not!base64");
        bad(&test_key().to_openssh());

        let other_inside = format!(
            "ssh-ed25519 {}",
            STANDARD.encode(Writer::default().string("ssh-rsa").string([1; 32]).finish())
        );
        assert!(matches!(
            PublicKey::from_openssh_line(&other_inside),
            Err(KeyError::UnsupportedKeyType { found }) if found == "ssh-rsa"
        ));
        let short = format!(
            "ssh-ed25519 {}",
            STANDARD.encode(Writer::default().string(KEY_TYPE).string([1; 31]).finish())
        );
        assert!(matches!(
            PublicKey::from_openssh_line(&short),
            Err(KeyError::Malformed { .. })
        ));
        assert!(matches!(
            PublicKey::from_openssh_line("ecdsa-sha2-nistp256 AAAA"),
            Err(KeyError::UnsupportedKeyType { found }) if found == "ecdsa-sha2-nistp256"
        ));
    }

    #[test]
    fn public_key_bytes_round_trip() {
        let public = test_key().public();
        assert_eq!(PublicKey::from_bytes(&public.to_bytes()).expect("valid"), public);
        assert_eq!(public.wire_blob().len(), 4 + 11 + 4 + 32);
    }

    #[test]
    fn sign_matches_rfc8032_test_1() {
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
                .collect()
        };
        let seed = hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
        let key = SigningKey::from_seed(seed.try_into().expect("32 bytes"), "");
        assert_eq!(
            key.public().to_bytes().to_vec(),
            hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
        );
        let signature = key.sign(b"");
        assert_eq!(
            signature.to_vec(),
            hex(concat!(
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155",
                "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
            ))
        );
        key.public().verify(b"", &signature).expect("verifies");
        assert!(matches!(
            key.public().verify(b"x", &signature),
            Err(KeyError::BadSignature)
        ));
        assert!(matches!(
            test_key().public().verify(b"", &signature),
            Err(KeyError::BadSignature)
        ));
    }

    #[test]
    fn verify_is_strict() {
        // The identity point as key and (R = identity, s = 0) "sign" every message under the
        // lenient RFC 8032 check; verify_strict refuses such small-order keys.
        let mut identity = [0; 32];
        identity[0] = 1;
        let weak = PublicKey::from_bytes(&identity).expect("a valid point");
        let mut signature = [0; 64];
        signature[0] = 1;
        assert!(matches!(
            weak.verify(b"anything", &signature),
            Err(KeyError::BadSignature)
        ));
    }

    #[test]
    fn generated_keys_differ() {
        let a = SigningKey::generate("a").expect("random");
        let b = SigningKey::generate("b").expect("random");
        assert_ne!(a.public(), b.public());
        assert_eq!(a.comment(), "a");
        assert!(!format!("{a:?}").contains(&format!("{:?}", a.key.to_bytes())));
    }

    #[test]
    fn fingerprint_parses_and_prints() {
        let fingerprint = test_key().public().fingerprint();
        assert_eq!(fingerprint.as_str().len(), "SHA256:".len() + 43);
        let parsed: Fingerprint = fingerprint.as_str().parse().expect("parse");
        assert_eq!(parsed, fingerprint);
        assert_eq!(parsed.to_string(), fingerprint.as_str());
        assert_eq!(
            format!(" {fingerprint}\n").parse::<Fingerprint>().expect("trimmed"),
            fingerprint
        );

        let b64 = &fingerprint.as_str()["SHA256:".len()..];
        for garbage in [
            "",
            "SHA256:",
            b64,
            &format!("MD5:{b64}"),
            &format!("sha256:{b64}"),
            &format!("SHA256:{b64}="),
            &format!("SHA256:{}", &b64[1..]),
            &format!("SHA256:{b64}A"),
            &format!("SHA256:!{}", &b64[1..]),
            "SHA256:JaUkkqG4KWgfxuyTSeGGi0k1G/pK+PxgzmMwrXbN8lh", // non-zero trailing bits
        ] {
            match garbage.parse::<Fingerprint>() {
                Err(KeyError::BadFingerprint { input }) => assert_eq!(input, garbage),
                other => panic!("{garbage:?} gave {other:?}"),
            }
        }
    }
}
