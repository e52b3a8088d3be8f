//! The read side: open a bundle, check its framing, its signature against a trust root from
//! outside, then its content, and extract it.
//!
//! Order of checks, each before the next reads anything through the previous:
//! 1. [`Bundle::open`]: the stub's ELF end, the header there, the file size against the header
//!    (a truncated copy is reported here, before any hashing), the trailer, the manifest bytes
//!    and the signature block. Nothing is parsed beyond fixed-size fields.
//! 2. [`Bundle::verify_signature`]: the signer against the caller's key or fingerprint, the
//!    Ed25519 signature over header, trailer and manifest bytes; only then is the manifest
//!    parsed and validated against the trailer.
//! 3. [`Verified::verify_contents`] or [`Verified::extract`]: every region against its signed
//!    digest, every frame against its recorded decompressed size, and every file entry against
//!    its signed size and digest at its offset. A zstd frame is hashed before it is decompressed;
//!    a file is written under a staging directory and the directory is renamed into place only
//!    once every digest matched.
//!
//! Verify and extract walk the stream with the same code ([`Verified::check_stream`]): extract
//! hands each entry's checked bytes to files, verify drops them. So a bundle that verifies is a
//! bundle that extracts (issue 12): nothing extract, the installer or the registry relies on is
//! left for later.
//!
//! Files: opening and the signature check here; the compressed stream walked and checked in
//! `stream`, by [`Verified::verify_contents`] (`verify`) and [`Verified::extract`] (`extract`).

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::elf::{self, ElfError, ELF_HEADER_LEN};
use crate::keys::{Fingerprint, PublicKey};
use crate::layout::{Header, LayoutError, Trailer, HEADER_LEN, SIGNATURE_BLOCK_LEN, TRAILER_LEN};
use crate::manifest::{Manifest, ManifestError};
use crate::signed_message;

mod extract;
mod stream;
mod verify;

/// Who must have signed the bundle. It comes from the caller, never from the bundle.
#[derive(Debug, Clone)]
pub enum Trust {
    Key(PublicKey),
    Fingerprint(Fingerprint),
    /// Check integrity against the key the bundle carries, without proof of origin.
    EmbeddedKeyOnly,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("failed to read {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} is not a delivery bundle: {reason}")]
    NotABundle { path: PathBuf, reason: ElfError },
    #[error("{path}: {source}")]
    Layout { path: PathBuf, source: LayoutError },
    #[error("{path}: file is truncated inside the installer stub: expected at least {stub_len} bytes, found {actual}; copy it again and check it with `sha256sum -c`")]
    TruncatedInStub { path: PathBuf, stub_len: u64, actual: u64 },
    #[error("{path} was signed by key {found}, not by the trusted key {expected}")]
    KeyMismatch {
        path: PathBuf,
        expected: Fingerprint,
        found: Fingerprint,
    },
    #[error(
        "{path}: signature check failed: header, trailer, manifest or signature were altered (signer key {signer})"
    )]
    BadSignature { path: PathBuf, signer: String },
    #[error("{path}: {source}")]
    Manifest { path: PathBuf, source: ManifestError },
    #[error("{path}: {region} at offset {offset} ({len} bytes) does not match the signed manifest: expected {expected}, got {actual}")]
    Digest {
        path: PathBuf,
        region: String,
        offset: u64,
        len: u64,
        expected: Digest,
        actual: Digest,
    },
    #[error("{path}: frame {index} at offset {offset} does not decompress to its recorded size: {reason}")]
    Decompress {
        path: PathBuf,
        index: usize,
        offset: u64,
        reason: String,
    },
    #[error("{path}: entry `{entry}` ({size} bytes at offset {offset} of the uncompressed stream) does not match the signed manifest: expected {expected}, got {actual}")]
    EntryDigest {
        path: PathBuf,
        entry: String,
        offset: u64,
        size: u64,
        expected: Digest,
        actual: Digest,
    },
    #[error("failed to write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("{path} exists and is not empty: choose another directory or pass --overwrite")]
    DestinationNotEmpty { path: PathBuf },
    #[error(
        "another extract into {path} is running (it holds {lock}): wait for it to finish, then run again if it failed"
    )]
    DestinationBusy { path: PathBuf, lock: PathBuf },
}

impl ReadError {
    /// Whether this is a verification failure (the bundle is damaged, altered or not trusted),
    /// as opposed to a local I/O problem. Installers map it to exit code 3.
    pub fn is_verification_failure(&self) -> bool {
        !matches!(
            self,
            ReadError::Io { .. }
                | ReadError::Write { .. }
                | ReadError::DestinationNotEmpty { .. }
                | ReadError::DestinationBusy { .. }
        )
    }
}

/// A bundle whose framing was checked, not yet its signature.
pub struct Bundle {
    path: PathBuf,
    file: File,
    trailer: Trailer,
    header: [u8; HEADER_LEN as usize],
    trailer_bytes: [u8; TRAILER_LEN as usize],
    manifest: Vec<u8>,
    signer: [u8; 32],
    signature: [u8; 64],
}

impl Bundle {
    /// Open and check the framing of the bundle at `path`.
    pub fn open(path: &Path) -> Result<Bundle, ReadError> {
        let io_err = |source| ReadError::Io {
            path: path.to_path_buf(),
            source,
        };
        let layout = |source| ReadError::Layout {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io_err)?;
        let actual = file.metadata().map_err(io_err)?.len();
        let read_at = |buf: &mut [u8], at: u64| file.read_exact_at(buf, at).map_err(io_err);

        let not_bundle = |reason| ReadError::NotABundle {
            path: path.to_path_buf(),
            reason,
        };
        if actual < ELF_HEADER_LEN as u64 {
            return Err(not_bundle(ElfError::NotElf));
        }
        let mut head = [0u8; ELF_HEADER_LEN];
        read_at(&mut head, 0)?;
        let tables = elf::parse_header(&head).map_err(not_bundle)?;
        let ph_len = tables.phentsize.saturating_mul(tables.phnum);
        if ph_len > 1 << 20 || tables.phoff.saturating_add(ph_len) > actual {
            return Err(not_bundle(ElfError::Malformed("program header table is out of range")));
        }
        let mut ph = vec![0u8; ph_len as usize];
        read_at(&mut ph, tables.phoff)?;
        let stub_len = elf::end_of_elf(&tables, &ph).map_err(not_bundle)?;
        if stub_len.saturating_add(HEADER_LEN) > actual {
            return Err(ReadError::TruncatedInStub {
                path: path.to_path_buf(),
                stub_len,
                actual,
            });
        }
        let mut header = [0u8; HEADER_LEN as usize];
        read_at(&mut header, stub_len)?;
        let expected = Header::decode(&header, stub_len).map_err(layout)?.total_len;
        if actual < expected {
            return Err(layout(LayoutError::Truncated { expected, actual }));
        }
        if actual > expected {
            return Err(layout(LayoutError::TooLong { expected, actual }));
        }
        let mut trailer_bytes = [0u8; TRAILER_LEN as usize];
        read_at(&mut trailer_bytes, actual - TRAILER_LEN)?;
        let trailer = Trailer::decode(&trailer_bytes, actual - TRAILER_LEN).map_err(layout)?;
        if trailer.total_len != actual || trailer.stub_len != stub_len {
            return Err(layout(LayoutError::Inconsistent("trailer disagrees with the header")));
        }
        let mut manifest = vec![0u8; trailer.manifest_len() as usize];
        read_at(&mut manifest, trailer.manifest_offset)?;
        let mut block = [0u8; SIGNATURE_BLOCK_LEN as usize];
        read_at(&mut block, trailer.signature_offset)?;
        let signer = block[..32].try_into().expect("32 bytes");
        let signature = block[32..].try_into().expect("64 bytes");
        Ok(Bundle {
            path: path.to_path_buf(),
            file,
            trailer,
            header,
            trailer_bytes,
            manifest,
            signer,
            signature,
        })
    }

    pub fn trailer(&self) -> &Trailer {
        &self.trailer
    }

    /// Check the signature, then parse and validate the manifest.
    pub fn verify_signature(self, trust: &Trust) -> Result<Verified, ReadError> {
        let path = self.path.clone();
        let bad = |signer: String| ReadError::BadSignature {
            path: path.clone(),
            signer,
        };
        let signer = PublicKey::from_bytes(&self.signer).map_err(|_| bad("(not a valid Ed25519 key)".into()))?;
        let found = signer.fingerprint();
        let origin_checked = match trust {
            Trust::Key(k) if *k != signer => {
                return Err(ReadError::KeyMismatch {
                    path,
                    expected: k.fingerprint(),
                    found,
                });
            }
            Trust::Fingerprint(f) if *f != found => {
                return Err(ReadError::KeyMismatch {
                    path,
                    expected: f.clone(),
                    found,
                });
            }
            Trust::EmbeddedKeyOnly => false,
            _ => true,
        };
        let message = signed_message(&self.header, &self.trailer_bytes, &self.manifest);
        signer
            .verify(&message, &self.signature)
            .map_err(|_| bad(found.to_string()))?;
        let manifest = Manifest::from_json(&self.manifest)
            .and_then(|m| m.validate(&self.trailer).map(|()| m))
            .map_err(|source| ReadError::Manifest {
                path: path.clone(),
                source,
            })?;
        Ok(Verified {
            bundle: self,
            manifest,
            signer,
            origin_checked,
            id: Digest::of(&message),
        })
    }
}

/// A bundle whose signature and manifest were checked. Its content is checked as it is read.
pub struct Verified {
    bundle: Bundle,
    manifest: Manifest,
    signer: PublicKey,
    origin_checked: bool,
    id: Digest,
}

/// One region of the file with its signed digest.
struct Region {
    name: String,
    offset: u64,
    len: u64,
    digest: Digest,
}

/// What extraction produced.
#[derive(Debug, Clone, Default)]
pub struct ExtractSummary {
    pub files: usize,
    pub dirs: usize,
    pub symlinks: usize,
    pub bytes: u64,
}

impl Verified {
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    /// What identifies this bundle's content: the SHA-256 of the signed message (header, trailer
    /// and manifest, which carries the digest of every byte). Two files with the same id hold
    /// the same bundle; the installer's journal records it.
    pub fn id(&self) -> Digest {
        self.id
    }
    pub fn signer(&self) -> &PublicKey {
        &self.signer
    }
    /// Whether the signer was checked against a key or fingerprint from the caller.
    pub fn origin_checked(&self) -> bool {
        self.origin_checked
    }
    pub fn trailer(&self) -> &Trailer {
        &self.bundle.trailer
    }
    pub fn path(&self) -> &Path {
        &self.bundle.path
    }
    pub fn file(&self) -> &File {
        &self.bundle.file
    }

    /// The regions hashed where they lie: the stub and every stored blob. Frames are hashed by
    /// [`Self::check_stream`], each before it is decompressed.
    fn regions(&self) -> Vec<Region> {
        let t = &self.bundle.trailer;
        let m = &self.manifest;
        let mut regions = vec![Region {
            name: "installer stub".into(),
            offset: 0,
            len: t.stub_len,
            digest: m.stub.sha256,
        }];
        for (i, b) in m.blobs.iter().enumerate() {
            let offset = t.blobs_offset + b.offset;
            regions.push(Region {
                name: format!("stored blob {i} ({})", b.sha256),
                offset,
                len: b.size,
                digest: b.sha256,
            });
        }
        regions
    }

    fn digest_error(&self, r: &Region, actual: Digest) -> ReadError {
        ReadError::Digest {
            path: self.bundle.path.clone(),
            region: r.name.clone(),
            offset: r.offset,
            len: r.len,
            expected: r.digest,
            actual,
        }
    }
}

/// Why a trust root given by the user cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("failed to read public key {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path} is not an OpenSSH ed25519 public key line: {source}")]
    Key {
        path: PathBuf,
        source: crate::keys::KeyError,
    },
    #[error("`{input}` is not a key fingerprint like SHA256:<43 base64 characters> (as `ssh-keygen -lf vendor.pub` prints it)")]
    Fingerprint { input: String },
}

impl Trust {
    /// The trust root from a public key file (`vendor.pub`) or a fingerprint, or none.
    pub fn from_args(key: Option<&Path>, fingerprint: Option<&str>) -> Result<Trust, TrustError> {
        if let Some(path) = key {
            let text = fs::read_to_string(path).map_err(|source| TrustError::Read {
                path: path.into(),
                source,
            })?;
            let k = PublicKey::from_openssh_line(&text).map_err(|source| TrustError::Key {
                path: path.into(),
                source,
            })?;
            return Ok(Trust::Key(k));
        }
        if let Some(fp) = fingerprint {
            let f = fp
                .parse()
                .map_err(|_| TrustError::Fingerprint { input: fp.to_string() })?;
            return Ok(Trust::Fingerprint(f));
        }
        Ok(Trust::EmbeddedKeyOnly)
    }
}
