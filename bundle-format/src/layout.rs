//! The fixed-size header and trailer, and the regions they delimit.
//!
//! ```text
//!  0                stub_len        +64            blobs_offset     manifest_offset  signature_offset   total_len
//!  | stub (ELF)     | header (64 B) | zstd frames  | stored blobs   | manifest JSON  | key+sig (96 B) | trailer (64 B) |
//! ```
//! Header, at the stub's ELF end (found from the start of the file, so a truncated copy still
//! says how long it should be), all integers little-endian:
//! `magic "DLVRY\0HD" | version u32 | reserved u32 = 0 | total_len u64 | 40 zero bytes`.
//!
//! Trailer, the last 64 bytes:
//! `magic "DLVRY\0TR" | version u32 | reserved u32 = 0 | stub_len u64 | stream_offset u64 |
//! blobs_offset u64 | manifest_offset u64 | signature_offset u64 | total_len u64`.
//!
//! The regions tile the file with no gap: `stream_offset = stub_len + 64`, and each region ends
//! where the next begins. The signature block is a 32-byte Ed25519 public key followed by a
//! 64-byte signature.

use crate::FORMAT_VERSION;

pub const HEADER_MAGIC: [u8; 8] = *b"DLVRY\0HD";
pub const TRAILER_MAGIC: [u8; 8] = *b"DLVRY\0TR";
pub const HEADER_LEN: u64 = 64;
pub const TRAILER_LEN: u64 = 64;
pub const SIGNATURE_BLOCK_LEN: u64 = 96;
/// The manifest is read into memory before parsing: cap it.
pub const MAX_MANIFEST_LEN: u64 = 256 << 20;

/// What is wrong with the framing of a file that claims to be a bundle.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LayoutError {
    #[error("no bundle header at byte {offset} (the stub's end): not a delivery bundle, or its stub was replaced")]
    NoHeader { offset: u64 },
    #[error("no bundle trailer at byte {offset}: the file was cut or appended to")]
    NoTrailer { offset: u64 },
    #[error("bundle format version {found} is not supported by this program (it reads version {supported}): use a newer delivery")]
    UnsupportedVersion { found: u32, supported: u32 },
    #[error("file is truncated: expected {expected} bytes, found {actual} ({missing} missing); copy it again and check it with `sha256sum -c`", missing = expected - actual)]
    Truncated { expected: u64, actual: u64 },
    #[error("file is too long: expected {expected} bytes, found {actual}; something was appended to it")]
    TooLong { expected: u64, actual: u64 },
    #[error("bundle layout is inconsistent: {0}")]
    Inconsistent(&'static str),
}

/// The 64 bytes after the stub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub total_len: u64,
}

impl Header {
    pub fn encode(&self) -> [u8; HEADER_LEN as usize] {
        let mut b = [0u8; HEADER_LEN as usize];
        b[..8].copy_from_slice(&HEADER_MAGIC);
        b[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[16..24].copy_from_slice(&self.total_len.to_le_bytes());
        b
    }

    /// Decode the header found at `offset`.
    pub fn decode(b: &[u8; HEADER_LEN as usize], offset: u64) -> Result<Self, LayoutError> {
        if b[..8] != HEADER_MAGIC {
            return Err(LayoutError::NoHeader { offset });
        }
        check_version(&b[8..12])?;
        if b[12..16] != [0; 4] || b[24..].iter().any(|&x| x != 0) {
            return Err(LayoutError::Inconsistent("reserved header bytes are not zero"));
        }
        Ok(Header {
            total_len: u64_at(b, 16),
        })
    }
}

/// The last 64 bytes of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    pub stub_len: u64,
    pub stream_offset: u64,
    pub blobs_offset: u64,
    pub manifest_offset: u64,
    pub signature_offset: u64,
    pub total_len: u64,
}

impl Trailer {
    pub fn encode(&self) -> [u8; TRAILER_LEN as usize] {
        let mut b = [0u8; TRAILER_LEN as usize];
        b[..8].copy_from_slice(&TRAILER_MAGIC);
        b[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        for (i, v) in [
            self.stub_len,
            self.stream_offset,
            self.blobs_offset,
            self.manifest_offset,
            self.signature_offset,
            self.total_len,
        ]
        .into_iter()
        .enumerate()
        {
            b[16 + 8 * i..24 + 8 * i].copy_from_slice(&v.to_le_bytes());
        }
        b
    }

    /// Decode the trailer found at `offset` and check that its regions tile the file.
    pub fn decode(b: &[u8; TRAILER_LEN as usize], offset: u64) -> Result<Self, LayoutError> {
        if b[..8] != TRAILER_MAGIC {
            return Err(LayoutError::NoTrailer { offset });
        }
        check_version(&b[8..12])?;
        if b[12..16] != [0; 4] {
            return Err(LayoutError::Inconsistent("reserved trailer bytes are not zero"));
        }
        let t = Trailer {
            stub_len: u64_at(b, 16),
            stream_offset: u64_at(b, 24),
            blobs_offset: u64_at(b, 32),
            manifest_offset: u64_at(b, 40),
            signature_offset: u64_at(b, 48),
            total_len: u64_at(b, 56),
        };
        t.check()?;
        Ok(t)
    }

    /// The regions must follow each other with no gap and no overlap.
    pub fn check(&self) -> Result<(), LayoutError> {
        use LayoutError::Inconsistent;
        // Checked: a hostile trailer's stub length near u64::MAX must be an error, not a panic.
        if self.stub_len.checked_add(HEADER_LEN) != Some(self.stream_offset) {
            return Err(Inconsistent("the stream does not start right after the header"));
        }
        if !(self.stream_offset <= self.blobs_offset
            && self.blobs_offset <= self.manifest_offset
            && self.manifest_offset < self.signature_offset)
        {
            return Err(Inconsistent("regions are out of order"));
        }
        if self.signature_offset.checked_add(SIGNATURE_BLOCK_LEN + TRAILER_LEN) != Some(self.total_len) {
            return Err(Inconsistent(
                "the signature block does not end where the trailer begins",
            ));
        }
        if self.manifest_len() > MAX_MANIFEST_LEN {
            return Err(Inconsistent("the manifest is larger than 256 MiB"));
        }
        Ok(())
    }

    pub fn stream_len(&self) -> u64 {
        self.blobs_offset - self.stream_offset
    }
    pub fn blobs_len(&self) -> u64 {
        self.manifest_offset - self.blobs_offset
    }
    pub fn manifest_len(&self) -> u64 {
        self.signature_offset - self.manifest_offset
    }
}

fn check_version(b: &[u8]) -> Result<(), LayoutError> {
    let found = u32::from_le_bytes(b.try_into().expect("4 bytes"));
    if found != FORMAT_VERSION {
        return Err(LayoutError::UnsupportedVersion {
            found,
            supported: FORMAT_VERSION,
        });
    }
    Ok(())
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Trailer {
        Trailer {
            stub_len: 1000,
            stream_offset: 1064,
            blobs_offset: 2000,
            manifest_offset: 3000,
            signature_offset: 3500,
            total_len: 3500 + 96 + 64,
        }
    }

    #[test]
    fn round_trip() {
        let t = sample();
        assert_eq!(Trailer::decode(&t.encode(), 0).unwrap(), t);
        let h = Header { total_len: 77 };
        assert_eq!(Header::decode(&h.encode(), 0).unwrap(), h);
    }

    #[test]
    fn unknown_version_is_named() {
        let mut b = sample().encode();
        b[8..12].copy_from_slice(&7u32.to_le_bytes());
        assert_eq!(
            Trailer::decode(&b, 0).unwrap_err(),
            LayoutError::UnsupportedVersion {
                found: 7,
                supported: FORMAT_VERSION
            }
        );
    }

    #[test]
    fn gaps_are_rejected() {
        let mut t = sample();
        t.stream_offset += 1;
        assert!(Trailer::decode(&t.encode(), 0).is_err());
        let mut t = sample();
        t.total_len += 1;
        assert!(Trailer::decode(&t.encode(), 0).is_err());
    }

    #[test]
    fn a_stub_length_that_overflows_is_an_error_not_a_panic() {
        let mut t = sample();
        t.stub_len = u64::MAX - 10;
        assert_eq!(
            Trailer::decode(&t.encode(), 0).unwrap_err(),
            LayoutError::Inconsistent("the stream does not start right after the header")
        );
    }
}
