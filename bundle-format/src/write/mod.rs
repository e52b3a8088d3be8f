//! The write side: turns a list of input entries and a stub into a signed bundle file.
//!
//! Two phases keep both cores busy and every byte read once:
//! 1. the file stream: one thread reads compressible files in path order, hashes them and lays
//!    them out as a tar stream cut into fixed-size chunks; worker threads compress each chunk
//!    into an independent zstd frame and hash the frame; the calling thread writes frames in
//!    order. The tar framing means `zstd -dc | tar -x` can open the stream without our tools.
//! 2. stored blobs: already-compressed files are copied as they are while being hashed, and a
//!    second thread hashes the whole output file as it is produced (for `.sha256` and the
//!    detached SSH signature), so no extra pass over the file is needed.
//!
//! The header must be written before the whole-file hash can start, and it holds the total
//! length, which depends on the manifest's length. Digests have a fixed textual length, so the
//! manifest's length is known as soon as the stream is written, before the blob digests are.
//!
//! Files: the inputs, options and [`write_bundle`] here (the plan of regions, the header,
//! manifest, signature and trailer); phase 1 in `stream`, phase 2 in `blobs`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;

use crate::digest::Digest;
use crate::elf::{self, ElfError};
use crate::io::read_full;
use crate::keys::SigningKey;
use crate::layout::{Header, Trailer, HEADER_LEN, SIGNATURE_BLOCK_LEN, TRAILER_LEN};
use crate::manifest::{Blob, BundleInfo, Data, Entry, Image, Manifest, ManifestError, Region};
use crate::{signed_message, Progress, FORMAT_VERSION};

mod blobs;
mod stream;

use blobs::{copy_blob, hash_whole_file};
use stream::write_stream;

/// One thing to put in the bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputEntry {
    Dir {
        path: String,
        mode: u32,
    },
    /// `stored`: copy as-is into the blob region instead of compressing (see [`looks_compressed`]).
    File {
        path: String,
        mode: u32,
        source: PathBuf,
        size: u64,
        stored: bool,
    },
    Symlink {
        path: String,
        target: String,
    },
}

impl InputEntry {
    pub fn path(&self) -> &str {
        match self {
            InputEntry::Dir { path, .. } | InputEntry::File { path, .. } | InputEntry::Symlink { path, .. } => path,
        }
    }
}

/// A blob whose digest is known before it is read: an image layer, config, manifest or index
/// from the image cache. Blobs with the same digest are stored once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputBlob {
    pub digest: Digest,
    pub size: u64,
    /// The file holding the blob, at `offset` (a cache file at 0, or a base bundle's blob region).
    pub source: PathBuf,
    pub offset: u64,
    /// Set for manifests and indexes (the registry answers with it).
    pub media_type: Option<String>,
}

/// Everything that goes into a bundle besides the stub.
#[derive(Debug, Clone, Copy)]
pub struct Contents<'a> {
    pub info: &'a BundleInfo,
    pub entries: &'a [InputEntry],
    pub blobs: &'a [InputBlob],
    pub images: &'a [Image],
}

/// How to compress.
#[derive(Debug, Clone)]
pub struct Options {
    /// zstd level.
    pub level: i32,
    /// Uncompressed bytes per zstd frame.
    pub frame_size: usize,
    /// Compression worker threads.
    pub threads: usize,
    /// Modification time recorded in the tar headers (the bundle's `created`).
    pub mtime: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            level: 3,
            frame_size: 4 << 20,
            threads: 2,
            mtime: 0,
        }
    }
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Summary {
    pub total_len: u64,
    /// SHA-256 of the whole file, for `sha256sum -c` and the detached signature.
    pub sha256: Digest,
    pub stub_len: u64,
    pub raw_stream_len: u64,
    pub stream_len: u64,
    pub blobs_len: u64,
    pub manifest_len: u64,
    pub entries: usize,
    pub frames: usize,
    pub blobs: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("the stub is not a usable executable: {0}")]
    Stub(#[from] ElfError),
    #[error("the stub already carries a payload ({len} bytes, its ELF image ends at {elf_end}): pass the bare installer-stub binary")]
    StubHasPayload { elf_end: u64, len: u64 },
    #[error("failed to read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path} changed while the bundle was being written (expected {expected} bytes): build again from a quiet context")]
    Changed { path: PathBuf, expected: u64 },
    #[error("failed to write the bundle: {0}")]
    Write(io::Error),
    #[error("the bundle's entries are invalid: {0}")]
    Entries(#[from] ManifestError),
    #[error("entry `{0}` is listed twice")]
    Duplicate(String),
    #[error("{path} does not have the digest the image cache recorded (expected {expected}, got {actual}): the cache is damaged; remove it and build again")]
    BlobDigest {
        path: PathBuf,
        expected: Digest,
        actual: Digest,
    },
}

/// Entries at least this large are candidates for the blob region.
pub const STORE_THRESHOLD: u64 = 1 << 20;

/// Whether a file's content is already compressed, so compressing it again would only cost time:
/// a known compressed format by its magic bytes, or a sample that zstd cannot shrink by 3%.
pub fn looks_compressed(path: &Path, size: u64) -> io::Result<bool> {
    if size < STORE_THRESHOLD {
        return Ok(false);
    }
    let mut sample = vec![0u8; 128 << 10];
    let n = read_full(&mut File::open(path)?, &mut sample)?;
    sample.truncate(n);
    const MAGIC: [&[u8]; 8] = [
        b"\x1f\x8b",         // gzip (image layers, .tgz charts)
        b"\x28\xb5\x2f\xfd", // zstd
        b"\xfd7zXZ\x00",     // xz
        b"BZh",              // bzip2
        b"PK\x03\x04",       // zip, jar
        b"\x89PNG",          // png
        b"\xff\xd8\xff",     // jpeg
        b"\x04\x22\x4d\x18", // lz4
    ];
    if MAGIC.iter().any(|m| sample.starts_with(m)) {
        return Ok(true);
    }
    let packed = zstd::bulk::compress(&sample, 1)?;
    Ok(packed.len() * 100 >= sample.len() * 97)
}

/// Write a bundle of `stub` and `contents` into `out` (an empty file), signed with `key`.
///
/// `out` is not synced or renamed here: the caller owns the temp-name-and-rename dance.
pub fn write_bundle(
    out: &File,
    stub: &[u8],
    contents: &Contents<'_>,
    key: &SigningKey,
    opts: &Options,
    progress: &dyn Progress,
) -> Result<Summary, WriteError> {
    let elf_end = elf::end_of_image(stub)?;
    if elf_end != stub.len() as u64 {
        return Err(WriteError::StubHasPayload {
            elf_end,
            len: stub.len() as u64,
        });
    }
    let mut entries: Vec<&InputEntry> = contents.entries.iter().collect();
    entries.sort_by(|a, b| a.path().cmp(b.path()));
    if let Some(w) = entries.windows(2).find(|w| w[0].path() == w[1].path()) {
        return Err(WriteError::Duplicate(w[0].path().to_string()));
    }

    let stub_len = stub.len() as u64;
    let stream_offset = stub_len + HEADER_LEN;
    out.write_all_at(stub, 0).map_err(WriteError::Write)?;

    // Phase 1: the compressed file stream.
    let stream = write_stream(out, stream_offset, &entries, opts, progress)?;
    let stream_len: u64 = stream.frames.iter().map(|f| f.size).sum();
    let blobs_offset = stream_offset + stream_len;

    // Lay out the stored blobs and the manifest, with placeholder digests for the blobs.
    let placeholder = Digest([0; 32]);
    let mut blobs = Vec::new();
    let mut manifest_entries = Vec::with_capacity(entries.len());
    let mut blob_sources = Vec::new();
    let mut stream_data = stream.files.into_iter();
    for e in &entries {
        manifest_entries.push(match e {
            InputEntry::Dir { path, mode } => Entry::Dir {
                path: path.clone(),
                mode: mode & 0o7777,
            },
            InputEntry::Symlink { path, target } => Entry::Symlink {
                path: path.clone(),
                target: target.clone(),
            },
            InputEntry::File {
                path,
                mode,
                source,
                size,
                stored: true,
            } => {
                let offset = blobs.last().map_or(0, |b: &Blob| b.offset + b.size);
                blobs.push(Blob {
                    offset,
                    size: *size,
                    sha256: placeholder,
                    media_type: None,
                });
                blob_sources.push((source.clone(), 0, *size, None));
                let data = Data::Blob(blobs.len() - 1);
                Entry::File {
                    path: path.clone(),
                    mode: mode & 0o7777,
                    size: *size,
                    sha256: placeholder,
                    data,
                }
            }
            InputEntry::File {
                path,
                mode,
                size,
                stored: false,
                ..
            } => {
                let (offset, sha256) = stream_data.next().expect("one stream record per compressed file");
                Entry::File {
                    path: path.clone(),
                    mode: mode & 0o7777,
                    size: *size,
                    sha256,
                    data: Data::Stream(offset),
                }
            }
        });
    }
    // Image blobs after the entries' blobs, by digest, each once.
    let mut image_blobs: BTreeMap<Digest, &InputBlob> = BTreeMap::new();
    for b in contents.blobs {
        image_blobs.entry(b.digest).or_insert(b);
    }
    for (digest, b) in image_blobs {
        let offset = blobs.last().map_or(0, |b: &Blob| b.offset + b.size);
        blobs.push(Blob {
            offset,
            size: b.size,
            sha256: digest,
            media_type: b.media_type.clone(),
        });
        blob_sources.push((b.source.clone(), b.offset, b.size, Some(digest)));
    }
    let blobs_len = blobs.last().map_or(0, |b| b.offset + b.size);
    let mut manifest = Manifest {
        format_version: FORMAT_VERSION,
        bundle: contents.info.clone(),
        stub: Region {
            size: stub_len,
            sha256: Digest::of(stub),
        },
        frames: stream.frames,
        blobs,
        images: contents.images.to_vec(),
        entries: manifest_entries,
    };
    let manifest_len = manifest.to_json().len() as u64;
    let manifest_offset = blobs_offset + blobs_len;
    let signature_offset = manifest_offset + manifest_len;
    let total_len = signature_offset + SIGNATURE_BLOCK_LEN + TRAILER_LEN;
    let trailer = Trailer {
        stub_len,
        stream_offset,
        blobs_offset,
        manifest_offset,
        signature_offset,
        total_len,
    };
    // The reader's own limits (manifest size), so a bundle we write is one we can read.
    trailer
        .check()
        .map_err(|e| WriteError::Write(io::Error::other(e.to_string())))?;
    manifest.validate(&trailer)?;
    let header = Header { total_len }.encode();
    out.write_all_at(&header, stub_len).map_err(WriteError::Write)?;

    // Phase 2: stored blobs, with the whole-file hash running alongside.
    let (hash_tx, hash_rx) = sync_channel::<Vec<u8>>(8);
    let whole = std::thread::scope(|s| -> Result<Digest, WriteError> {
        let hasher = s.spawn(move || hash_whole_file(out, blobs_offset, hash_rx));
        let result = (|| -> Result<(), WriteError> {
            progress.phase("store", blobs_len);
            let mut pos = blobs_offset;
            let mut digests = Vec::with_capacity(blob_sources.len());
            for (source, offset, size, expected) in &blob_sources {
                let digest = copy_blob(out, source, *offset, *size, pos, &hash_tx, progress)?;
                if let Some(expected) = expected.filter(|e| *e != digest) {
                    return Err(WriteError::BlobDigest {
                        path: source.clone(),
                        expected,
                        actual: digest,
                    });
                }
                digests.push(digest);
                pos += size;
            }
            for (blob, d) in manifest.blobs.iter_mut().zip(&digests) {
                blob.sha256 = *d;
            }
            for e in &mut manifest.entries {
                if let Entry::File {
                    sha256,
                    data: Data::Blob(i),
                    ..
                } = e
                {
                    *sha256 = digests[*i];
                }
            }
            let json = manifest.to_json();
            assert_eq!(json.len() as u64, manifest_len, "digests have a fixed textual length");
            let trailer_bytes = trailer.encode();
            let signature = key.sign(&signed_message(&header, &trailer_bytes, &json));
            let mut tail = json;
            tail.extend_from_slice(&key.public().to_bytes());
            tail.extend_from_slice(&signature);
            tail.extend_from_slice(&trailer_bytes);
            out.write_all_at(&tail, manifest_offset).map_err(WriteError::Write)?;
            hash_tx.send(tail).map_err(|_| WriteError::Write(stopped()))?;
            Ok(())
        })();
        drop(hash_tx);
        let digest = hasher.join().expect("the hashing thread does not panic");
        match (result, digest) {
            // The hashing thread's own failure is the cause of a send that found it gone.
            (Err(_), Err(e)) | (Ok(()), Err(e)) => Err(WriteError::Write(e)),
            (Err(e), Ok(_)) => Err(e),
            (Ok(()), Ok(d)) => Ok(d),
        }
    })?;

    Ok(Summary {
        total_len,
        sha256: whole,
        stub_len,
        raw_stream_len: stream.raw_len,
        stream_len,
        blobs_len,
        manifest_len,
        entries: manifest.entries.len(),
        frames: manifest.frames.len(),
        blobs: manifest.blobs.len(),
    })
}

/// `bundle` (a whole bundle's bytes) with its manifest replaced by `manifest`, signed again
/// with `key`: what a compromised build machine or a buggy generator could produce. For tests
/// of hostile manifests that pass every signature check.
#[cfg(any(test, feature = "test-support"))]
pub fn resign(bundle: &[u8], manifest: &Manifest, key: &SigningKey) -> Vec<u8> {
    let at = bundle.len() - TRAILER_LEN as usize;
    let t = Trailer::decode(bundle[at..].try_into().expect("64 bytes"), at as u64).expect("a good trailer");
    let json = manifest.to_json();
    let signature_offset = t.manifest_offset + json.len() as u64;
    let total_len = signature_offset + SIGNATURE_BLOCK_LEN + TRAILER_LEN;
    let trailer = Trailer {
        signature_offset,
        total_len,
        ..t
    }
    .encode();
    let header = Header { total_len }.encode();
    let mut out = bundle[..t.manifest_offset as usize].to_vec();
    out[t.stub_len as usize..(t.stub_len + HEADER_LEN) as usize].copy_from_slice(&header);
    let signature = key.sign(&signed_message(&header, &trailer, &json));
    out.extend_from_slice(&json);
    out.extend_from_slice(&key.public().to_bytes());
    out.extend_from_slice(&signature);
    out.extend_from_slice(&trailer);
    out
}

fn stopped() -> io::Error {
    io::Error::other("a worker thread stopped early")
}
