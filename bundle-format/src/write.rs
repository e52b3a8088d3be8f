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

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use crate::digest::{Digest, Hasher, CHUNK};
use crate::elf::{self, ElfError};
use crate::io::{read_full, HashingReader};
use crate::keys::SigningKey;
use crate::layout::{Header, Trailer, HEADER_LEN, SIGNATURE_BLOCK_LEN, TRAILER_LEN};
use crate::manifest::{Blob, BundleInfo, Data, Entry, Frame, Image, Manifest, ManifestError, Region};
use crate::{signed_message, Progress, FORMAT_VERSION};

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

/// Hash `[0, blobs_offset)` from the file, then every chunk sent on `rx`, in order.
fn hash_whole_file(out: &File, blobs_offset: u64, rx: Receiver<Vec<u8>>) -> io::Result<Digest> {
    let mut h = Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    let mut pos = 0;
    while pos < blobs_offset {
        let n = (blobs_offset - pos).min(CHUNK as u64) as usize;
        out.read_exact_at(&mut buf[..n], pos)?;
        h.update(&buf[..n]);
        pos += n as u64;
    }
    for chunk in rx {
        h.update(&chunk);
    }
    Ok(h.finish())
}

fn copy_blob(
    out: &File,
    source: &Path,
    offset: u64,
    size: u64,
    at: u64,
    hash_tx: &SyncSender<Vec<u8>>,
    progress: &dyn Progress,
) -> Result<Digest, WriteError> {
    let read_err = |e| WriteError::Read {
        path: source.to_path_buf(),
        source: e,
    };
    let mut file = File::open(source).map_err(read_err)?;
    file.seek(SeekFrom::Start(offset)).map_err(read_err)?;
    // A source that is a whole file must not have grown since it was planned; a region of a
    // larger file (a base bundle's blob) ends where the region ends.
    let whole_file = offset == 0;
    let len = file.metadata().map_err(read_err)?.len();
    if whole_file && len != size {
        return Err(WriteError::Changed {
            path: source.to_path_buf(),
            expected: size,
        });
    }
    let mut f = file.take(size);
    let mut h = Hasher::new();
    let mut done = 0u64;
    loop {
        let mut buf = vec![0u8; CHUNK];
        let n = read_full(&mut f, &mut buf).map_err(read_err)?;
        if n == 0 {
            break;
        }
        buf.truncate(n);
        h.update(&buf);
        out.write_all_at(&buf, at + done).map_err(WriteError::Write)?;
        done += n as u64;
        progress.advance(n as u64);
        hash_tx.send(buf).map_err(|_| WriteError::Write(stopped()))?;
    }
    if done != size {
        return Err(WriteError::Changed {
            path: source.to_path_buf(),
            expected: size,
        });
    }
    Ok(h.finish())
}

struct Stream {
    frames: Vec<Frame>,
    /// (offset in the uncompressed stream, digest) of each compressed file, in path order.
    files: Vec<(u64, Digest)>,
    raw_len: u64,
}

type Compressed = io::Result<(u64, Vec<u8>, u64, Digest)>;

fn write_stream(
    out: &File,
    stream_offset: u64,
    entries: &[&InputEntry],
    opts: &Options,
    progress: &dyn Progress,
) -> Result<Stream, WriteError> {
    let total: u64 = entries
        .iter()
        .map(|e| match e {
            InputEntry::File {
                size, stored: false, ..
            } => *size,
            _ => 0,
        })
        .sum();
    progress.phase("compress", total);
    let threads = opts.threads.max(1);
    let (work_tx, work_rx) = sync_channel::<(u64, Vec<u8>)>(threads * 2);
    let work_rx = Arc::new(Mutex::new(work_rx));
    let (done_tx, done_rx) = sync_channel::<Compressed>(threads * 2);

    std::thread::scope(|s| {
        let producer = s.spawn(move || produce_tar(entries, work_tx, opts, progress));
        for _ in 0..threads {
            let (rx, tx) = (Arc::clone(&work_rx), done_tx.clone());
            s.spawn(move || compress_frames(&rx, &tx, opts.level));
        }
        // Only the workers may hold the queue: if they all stop, the producer must see it.
        drop(work_rx);
        drop(done_tx);

        let mut frames = Vec::new();
        let mut pending = BTreeMap::new();
        let mut pos = stream_offset;
        let mut failure = None;
        for result in &done_rx {
            match result {
                Ok((seq, frame, raw, digest)) => {
                    pending.insert(seq, (frame, raw, digest));
                }
                Err(e) => {
                    failure = Some(WriteError::Write(e));
                    break;
                }
            }
            while let Some((frame, raw, digest)) = pending.remove(&(frames.len() as u64)) {
                if let Err(e) = out.write_all_at(&frame, pos) {
                    failure = Some(WriteError::Write(e));
                    break;
                }
                pos += frame.len() as u64;
                frames.push(Frame {
                    size: frame.len() as u64,
                    raw_size: raw,
                    sha256: digest,
                });
            }
            if failure.is_some() {
                break;
            }
        }
        drop(done_rx);
        let produced = producer.join().expect("the tar thread does not panic");
        // A failed frame write explains the producer's "stopped early" better than the reverse.
        if let Some(e) = failure {
            return Err(e);
        }
        let (files, raw_len) = produced?;
        assert!(pending.is_empty(), "every frame was written in order");
        Ok(Stream { frames, files, raw_len })
    })
}

fn compress_frames(rx: &Mutex<Receiver<(u64, Vec<u8>)>>, tx: &SyncSender<Compressed>, level: i32) {
    let mut compressor = match zstd::bulk::Compressor::new(level) {
        Ok(c) => c,
        Err(e) => {
            let _ = tx.send(Err(e));
            return;
        }
    };
    loop {
        let next = rx.lock().expect("no thread panics holding the queue").recv();
        let Ok((seq, raw)) = next else { return };
        let result = compressor.compress(&raw).map(|frame| {
            let digest = Digest::of(&frame);
            (seq, frame, raw.len() as u64, digest)
        });
        if tx.send(result).is_err() {
            return;
        }
    }
}

/// Writes the tar stream into fixed-size chunks handed to the compressors.
struct ChunkSink {
    buf: Vec<u8>,
    frame_size: usize,
    seq: u64,
    written: u64,
    tx: SyncSender<(u64, Vec<u8>)>,
}

impl ChunkSink {
    fn flush_chunk(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(self.frame_size));
        self.tx.send((self.seq, chunk)).map_err(|_| stopped())?;
        self.seq += 1;
        Ok(())
    }
}

impl Write for ChunkSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(self.frame_size - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        self.written += n as u64;
        if self.buf.len() == self.frame_size {
            self.flush_chunk()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn produce_tar(
    entries: &[&InputEntry],
    tx: SyncSender<(u64, Vec<u8>)>,
    opts: &Options,
    progress: &dyn Progress,
) -> Result<(Vec<(u64, Digest)>, u64), WriteError> {
    let sink = ChunkSink {
        buf: Vec::with_capacity(opts.frame_size),
        frame_size: opts.frame_size,
        seq: 0,
        written: 0,
        tx,
    };
    let mut tar = tar::Builder::new(sink);
    let mut files = Vec::new();
    let header = |kind: tar::EntryType, mode: u32, size: u64| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode & 0o7777);
        h.set_size(size);
        h.set_mtime(opts.mtime);
        h.set_uid(0);
        h.set_gid(0);
        h
    };
    let werr = WriteError::Write;
    for e in entries {
        match e {
            InputEntry::Dir { path, mode } => {
                let mut h = header(tar::EntryType::Directory, *mode, 0);
                tar.append_data(&mut h, format!("{path}/"), io::empty()).map_err(werr)?;
            }
            InputEntry::Symlink { path, target } => {
                let mut h = header(tar::EntryType::Symlink, 0o777, 0);
                tar.append_link(&mut h, path, target).map_err(werr)?;
            }
            InputEntry::File { stored: true, .. } => {}
            InputEntry::File {
                path,
                mode,
                source,
                size,
                stored: false,
            } => {
                let file = File::open(source).map_err(|e| WriteError::Read {
                    path: source.clone(),
                    source: e,
                })?;
                let mut reader = HashingReader::new(file.take(*size)).with_progress(progress);
                let mut h = header(tar::EntryType::Regular, *mode, *size);
                tar.append_data(&mut h, path, &mut reader)
                    .map_err(|e| WriteError::Read {
                        path: source.clone(),
                        source: e,
                    })?;
                if reader.len() != *size {
                    return Err(WriteError::Changed {
                        path: source.clone(),
                        expected: *size,
                    });
                }
                let end = tar.get_ref().written;
                files.push((end - size.div_ceil(512) * 512, reader.finish()));
            }
        }
    }
    let mut sink = tar.into_inner().map_err(werr)?;
    sink.flush_chunk().map_err(werr)?;
    Ok((files, sink.written))
}
