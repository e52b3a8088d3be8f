//! The one definition of a `delivery.run` file's bytes, shared by the generator that writes it
//! and the installer stub that reads it.
//!
//! # Layout
//! ```text
//! | stub (ELF) | header 64 B | file stream: zstd frames | stored blobs | manifest | key+sig 96 B | trailer 64 B |
//! ```
//! - **stub**: the `installer-stub` executable. Its length is its ELF image size, computed from
//!   its ELF headers ([`elf`]), so the bundle's header is found from the start of the file.
//! - **header** ([`layout::Header`]): magic `DLVRY\0HD`, format version, total file length. A
//!   truncated copy is reported with expected and actual sizes before anything is hashed.
//! - **file stream**: a tar stream (normalised headers: uid/gid 0, fixed mtime, no names) of
//!   every directory, symlink and compressible file, cut into 4 MiB chunks, each compressed as an
//!   independent zstd frame. Frames can be checked one by one before decompression, and hashed
//!   and decompressed in parallel. `zstd -dc | tar -x` opens the stream without our tools.
//! - **stored blobs**: files that are already compressed (archives: found by magic bytes or a
//!   sample zstd cannot shrink), and every blob of every container image (layers, configs,
//!   manifests, indexes), content-addressed and stored once however many images share it. All
//!   sit as they are at known offsets, so a registry serves them in place, never recompressed.
//! - **manifest** ([`manifest::Manifest`], JSON): bundle metadata, the stub's SHA-256, every
//!   frame's and blob's offset, size and SHA-256 (and media type for image manifests), every
//!   image under its full original name ([`reference`]) with its top-level manifest digest, and
//!   every entry's path, type, mode, size, SHA-256 and data location.
//! - **signature block**: the signer's Ed25519 public key (32 B) and the signature (64 B) over
//!   [`signed_message`]: a domain string, the header, the trailer and the manifest bytes.
//! - **trailer** ([`layout::Trailer`]): magic `DLVRY\0TR`, format version, and the offset of
//!   every region. Regions tile the file with no gap, so the signature covers every byte but
//!   itself: the header, trailer and manifest directly, the stub, frames and blobs through their
//!   signed digests.
//!
//! # Trust
//! The signature proves integrity against the embedded key; origin is proved only against a key
//! or fingerprint the caller obtained out of band ([`read::Trust`]). Customers who do not want to
//! run the file at all check it with `sha256sum -c` and `ssh-keygen -Y verify` ([`sshsig`]).
//!
//! # Versions
//! [`FORMAT_VERSION`] is in the header, the trailer and the manifest; a reader refuses any other
//! value with an error naming both versions.

// Errors carry the object they failed on (paths, digests, offsets); they are cold paths.
#![allow(clippy::result_large_err)]

pub mod digest;
pub mod elf;
pub mod entry_path;
pub mod io;
pub mod keys;
pub mod layout;
pub mod lock;
pub mod manifest;
#[cfg(any(test, feature = "fuzzing"))]
pub mod properties;
pub mod read;
pub mod reference;
pub mod sshsig;
pub mod write;

pub use digest::Digest;
pub use keys::{Fingerprint, PublicKey, SigningKey};
pub use read::{Bundle, ReadError, Trust, Verified};

/// The only format version this code reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// Domain separation for the bundle signature, so it can never be replayed as another kind.
pub const SIGNATURE_DOMAIN: &[u8] = b"delivery.run bundle signature v1\0";

/// The exact bytes the Ed25519 signature covers.
pub fn signed_message(header: &[u8], trailer: &[u8], manifest: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGNATURE_DOMAIN.len() + header.len() + trailer.len() + manifest.len());
    m.extend_from_slice(SIGNATURE_DOMAIN);
    m.extend_from_slice(header);
    m.extend_from_slice(trailer);
    m.extend_from_slice(manifest);
    m
}

/// Progress of long work, reported in bytes. Called from several threads at once.
pub trait Progress: Sync {
    /// A new phase (`compress`, `store`, `verify`, `extract`) of `total` bytes begins.
    fn phase(&self, name: &str, total: u64);
    /// `n` more bytes of the current phase are done.
    fn advance(&self, n: u64);
}

/// Progress that goes nowhere.
pub struct Quiet;

impl Progress for Quiet {
    fn phase(&self, _: &str, _: u64) {}
    fn advance(&self, _: u64) {}
}
