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

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Mutex;

use crate::digest::{hash_region, Digest, Hasher, CHUNK};
use crate::elf::{self, ElfError, ELF_HEADER_LEN};
use crate::keys::{Fingerprint, PublicKey};
use crate::layout::{Header, LayoutError, Trailer, HEADER_LEN, SIGNATURE_BLOCK_LEN, TRAILER_LEN};
use crate::lock::lock_exclusive;
use crate::manifest::{Data, Entry, Manifest, ManifestError};
use crate::{signed_message, Progress};

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

    /// The file entries whose content is in the stream, in stream order (the manifest's
    /// validation guarantees that path order is stream order).
    fn stream_files(&self) -> Vec<&Entry> {
        let in_stream = |e: &&Entry| {
            matches!(
                e,
                Entry::File {
                    data: Data::Stream(_),
                    ..
                }
            )
        };
        self.manifest.entries.iter().filter(in_stream).collect()
    }

    /// Check everything a later command reads: the stub and every stored blob against their
    /// digests (hashed in place on `threads` threads), and, alongside, the compressed stream as
    /// [`Self::extract`] checks it: every frame's digest and decompressed size, every file
    /// entry's size and digest at its offset. Memory stays bounded: frames are decompressed in
    /// pieces and nothing is kept.
    pub fn verify_contents(&self, threads: usize, progress: &dyn Progress) -> Result<(), ReadError> {
        let mut regions = self.regions();
        regions.sort_by_key(|r| std::cmp::Reverse(r.len));
        let files = self.stream_files();
        let in_place: u64 = regions.iter().map(|r| r.len).sum();
        progress.phase("verify", in_place + self.manifest.raw_stream_len());
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let failures = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            let stream = s.spawn(|| self.check_stream(&files, &mut Discard, progress));
            for _ in 0..threads.max(1) {
                s.spawn(|| {
                    let mut buf = vec![0u8; CHUNK];
                    while !stop.load(Ordering::Relaxed) {
                        let Some(r) = regions.get(next.fetch_add(1, Ordering::Relaxed)) else {
                            return;
                        };
                        let result =
                            hash_region(&self.bundle.file, r.offset, r.len, &mut buf, &|n| progress.advance(n));
                        let failure = match result {
                            Ok(actual) if actual == r.digest => continue,
                            Ok(actual) => self.digest_error(r, actual),
                            Err(source) => ReadError::Io {
                                path: self.bundle.path.clone(),
                                source,
                            },
                        };
                        stop.store(true, Ordering::Relaxed);
                        failures
                            .lock()
                            .expect("no panics while locked")
                            .push((r.offset, failure));
                    }
                });
            }
            if let Err(e) = stream.join().expect("the stream thread does not panic") {
                let offset = self.bundle.trailer.stream_offset;
                failures.lock().expect("no panics while locked").push((offset, e));
            }
        });
        // The first failure in file order, whichever thread found it first.
        let mut failures = failures.into_inner().expect("no panics while locked");
        failures.sort_by_key(|(offset, _)| *offset);
        match failures.into_iter().next() {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
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

    /// Extract every entry into `dest`, checking every digest on the way. `dest` must not exist
    /// or be empty, unless `overwrite`. The tree is built in a staging directory beside `dest`
    /// and renamed into place only when complete, so a failure leaves nothing behind and a
    /// re-run after a kill starts clean.
    pub fn extract(&self, dest: &Path, overwrite: bool, progress: &dyn Progress) -> Result<ExtractSummary, ReadError> {
        let werr = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ReadError::Write { path, source }
        };
        let name = dest.file_name().ok_or_else(|| {
            werr(dest)(io::Error::new(
                io::ErrorKind::InvalidInput,
                "destination has no file name",
            ))
        })?;
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        // One extract per destination at a time: a second one would delete the first one's
        // staging directory, and the first would then rename an empty tree into place.
        fs::create_dir_all(&parent).map_err(werr(&parent))?;
        let mut lock_name = std::ffi::OsString::from(".");
        lock_name.push(name);
        lock_name.push(".delivery-lock");
        let lock_path = parent.join(lock_name);
        let _lock = lock_exclusive(&lock_path).map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock => ReadError::DestinationBusy {
                path: dest.to_path_buf(),
                lock: lock_path.clone(),
            },
            _ => werr(&lock_path)(e),
        })?;
        let existing = match fs::read_dir(dest) {
            Ok(mut it) => Some(it.next().is_some()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(werr(dest)(e)),
        };
        if existing == Some(true) && !overwrite {
            return Err(ReadError::DestinationNotEmpty {
                path: dest.to_path_buf(),
            });
        }
        let mut staging_name = std::ffi::OsString::from(".");
        staging_name.push(name);
        staging_name.push(".delivery-partial");
        let staging = parent.join(&staging_name);
        remove_if_present(&staging).map_err(werr(&staging))?;
        fs::create_dir_all(&parent).map_err(werr(&parent))?;
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&staging)
            .map_err(werr(&staging))?;

        let mut old_name = staging_name.clone();
        old_name.push("-old");
        let old = parent.join(old_name);
        // Whatever fails from here on, the staging directory goes: a re-run starts clean.
        let result = (|| -> Result<ExtractSummary, ReadError> {
            let summary = self.extract_into(&staging, progress)?;
            // The staging directory was private while it filled; the result is an ordinary one.
            fs::set_permissions(&staging, fs::Permissions::from_mode(0o755)).map_err(werr(&staging))?;
            sync_tree(&staging).map_err(werr(&staging))?;
            if existing.is_some() {
                remove_if_present(&old).map_err(werr(&old))?;
                fs::rename(dest, &old).map_err(werr(dest))?;
                if let Err(e) = fs::rename(&staging, dest) {
                    let _ = fs::rename(&old, dest); // put the previous tree back
                    return Err(werr(dest)(e));
                }
                // The new tree is in place; a leftover old one is removed by the next run.
                let _ = remove_if_present(&old);
            } else {
                fs::rename(&staging, dest).map_err(werr(dest))?;
            }
            File::open(&parent).and_then(|d| d.sync_all()).map_err(werr(&parent))?;
            Ok(summary)
        })();
        if result.is_err() {
            let _ = remove_if_present(&staging);
        }
        result
    }

    fn extract_into(&self, root: &Path, progress: &dyn Progress) -> Result<ExtractSummary, ReadError> {
        let m = &self.manifest;
        let werr = |path: PathBuf| move |source| ReadError::Write { path, source };
        let mut summary = ExtractSummary::default();
        let stream_files = self.stream_files();
        let mut blob_files = Vec::new();
        for e in &m.entries {
            match e {
                Entry::Dir { path, .. } => {
                    let p = root.join(path);
                    fs::DirBuilder::new().mode(0o700).create(&p).map_err(werr(p))?;
                    summary.dirs += 1;
                }
                Entry::File {
                    data: Data::Blob(_), ..
                } => blob_files.push(e),
                Entry::File { .. } | Entry::Symlink { .. } => {}
            }
        }
        let total = m.raw_stream_len() + blob_files.iter().map(|e| file_size(e)).sum::<u64>();
        progress.phase("extract", total);
        summary.files = stream_files.len() + blob_files.len();
        summary.bytes = stream_files.iter().chain(&blob_files).map(|e| file_size(e)).sum();

        std::thread::scope(|s| {
            let stream = s.spawn(|| self.check_stream(&stream_files, &mut ExtractFiles::new(root), progress));
            let blobs = self.extract_blobs(root, &blob_files, progress);
            let stream = stream.join().expect("the stream thread does not panic");
            blobs.and(stream)
        })?;

        for e in &m.entries {
            if let Entry::Symlink { path, target } = e {
                let p = root.join(path);
                std::os::unix::fs::symlink(target, &p).map_err(werr(p))?;
                summary.symlinks += 1;
            }
        }
        // Directory modes last, deepest first, so a read-only directory is filled before.
        for e in m.entries.iter().rev() {
            if let Entry::Dir { path, mode } = e {
                let p = root.join(path);
                fs::set_permissions(&p, fs::Permissions::from_mode(*mode & MODE_MASK)).map_err(werr(p))?;
            }
        }
        Ok(summary)
    }

    /// Stub and stored-blob files, on the calling thread.
    fn extract_blobs(&self, root: &Path, files: &[&Entry], progress: &dyn Progress) -> Result<(), ReadError> {
        let t = &self.bundle.trailer;
        let mut buf = vec![0u8; CHUNK];
        let stub = self.regions().into_iter().next().expect("the stub region is first");
        let actual =
            hash_region(&self.bundle.file, 0, t.stub_len, &mut buf, &|_| {}).map_err(|source| ReadError::Io {
                path: self.bundle.path.clone(),
                source,
            })?;
        if actual != stub.digest {
            return Err(self.digest_error(&stub, actual));
        }
        for e in files {
            let Entry::File {
                path,
                mode,
                size,
                data: Data::Blob(i),
                ..
            } = e
            else {
                continue;
            };
            let blob = &self.manifest.blobs[*i];
            let offset = t.blobs_offset + blob.offset;
            let target = root.join(path);
            let werr = |source| ReadError::Write {
                path: target.clone(),
                source,
            };
            let mut out = create_file(&target).map_err(werr)?;
            let mut h = Hasher::new();
            let mut done = 0;
            while done < *size {
                let n = (*size - done).min(CHUNK as u64) as usize;
                self.bundle
                    .file
                    .read_exact_at(&mut buf[..n], offset + done)
                    .map_err(|source| ReadError::Io {
                        path: self.bundle.path.clone(),
                        source,
                    })?;
                h.update(&buf[..n]);
                out.write_all(&buf[..n]).map_err(werr)?;
                done += n as u64;
                progress.advance(n as u64);
            }
            let actual = h.finish();
            if actual != blob.sha256 {
                let r = Region {
                    name: format!("stored blob {i} for `{path}`"),
                    offset,
                    len: *size,
                    digest: blob.sha256,
                };
                return Err(self.digest_error(&r, actual));
            }
            out.set_permissions(fs::Permissions::from_mode(*mode & MODE_MASK))
                .map_err(werr)?;
        }
        Ok(())
    }

    /// The compressed stream, checked as every reader relies on it: one thread checks and
    /// decompresses the frames ([`Self::decompress_frames`]), this one walks the decompressed
    /// stream, hands every file entry's bytes to `sink` and checks the entry's size and digest
    /// at its offset. `files` are the stream's file entries in stream order.
    ///
    /// Entries span frames (frames are fixed-size cuts of one tar stream), and an entry's
    /// SHA-256 is one sequential computation, so the walk is sequential; it runs alongside the
    /// decompression, and [`Self::verify_contents`] runs it alongside the in-place hashing.
    fn check_stream(
        &self,
        files: &[&Entry],
        sink: &mut dyn EntrySink,
        progress: &dyn Progress,
    ) -> Result<(), ReadError> {
        let (tx, rx) = sync_channel::<Vec<u8>>(2);
        std::thread::scope(|s| {
            let frames = s.spawn(move || self.decompress_frames(tx));
            let walked = self.walk_stream(files, rx, sink, progress);
            let frames = frames.join().expect("the frame thread does not panic");
            // A frame error explains a short stream better than the walker's complaint.
            frames.and(walked)
        })
    }

    /// Every frame in order: its compressed bytes read whole (at most
    /// [`MAX_FRAME`](crate::manifest::MAX_FRAME), a cap the manifest's validation enforces) and checked against their digest before zstd sees them,
    /// then decompressed in pieces of at most [`CHUNK`] bytes sent on `tx`. A frame must
    /// decompress to exactly its recorded size: the entries' offsets count on it.
    fn decompress_frames(&self, tx: SyncSender<Vec<u8>>) -> Result<(), ReadError> {
        use zstd::zstd_safe::{get_error_name, DCtx, DParameter, InBuffer, OutBuffer, ResetDirective};
        let t = &self.bundle.trailer;
        let ioerr = |source| ReadError::Io {
            path: self.bundle.path.clone(),
            source,
        };
        let mut dctx = DCtx::create();
        let mut compressed = Vec::new();
        let mut offset = t.stream_offset;
        for (index, f) in self.manifest.frames.iter().enumerate() {
            compressed.resize(f.size as usize, 0);
            self.bundle.file.read_exact_at(&mut compressed, offset).map_err(ioerr)?;
            let actual = Digest::of(&compressed);
            if actual != f.sha256 {
                let r = Region {
                    name: format!("compressed stream frame {index}"),
                    offset,
                    len: f.size,
                    digest: f.sha256,
                };
                return Err(self.digest_error(&r, actual));
            }
            let decompress = |reason: String| ReadError::Decompress {
                path: self.bundle.path.clone(),
                index,
                offset,
                reason,
            };
            let zstd_err = |code| decompress(get_error_name(code).to_string());
            dctx.reset(ResetDirective::SessionOnly).map_err(zstd_err)?;
            // A frame is at most MAX_FRAME_RAW (2^24) bytes: no window beyond that is needed.
            dctx.set_parameter(DParameter::WindowLogMax(24)).map_err(zstd_err)?;
            let mut input = InBuffer::around(&compressed);
            let mut produced = 0u64;
            let mut frame_done = false;
            while !(frame_done && input.pos() == compressed.len()) {
                let mut chunk = Vec::with_capacity(CHUNK);
                while chunk.len() < CHUNK && !(frame_done && input.pos() == compressed.len()) {
                    let (before_in, before_out) = (input.pos(), chunk.len());
                    let mut out = OutBuffer::around_pos(&mut chunk, before_out);
                    let hint = dctx.decompress_stream(&mut out, &mut input).map_err(zstd_err)?;
                    frame_done = hint == 0;
                    if input.pos() == before_in && chunk.len() == before_out {
                        return Err(decompress("the frame ends early".into()));
                    }
                }
                produced += chunk.len() as u64;
                if produced > f.raw_size {
                    return Err(decompress(format!("more than the recorded {} bytes", f.raw_size)));
                }
                if tx.send(chunk).is_err() {
                    return Ok(()); // the walker stopped and reports why
                }
            }
            if produced != f.raw_size {
                return Err(decompress(format!("got {produced} bytes, expected {}", f.raw_size)));
            }
            offset += f.size;
        }
        Ok(())
    }

    /// Walk the decompressed stream arriving on `rx` (in order, from offset 0): every entry of
    /// `files` gets its bytes `[offset, offset + size)` handed to `sink`, and its digest checked
    /// before `sink` finishes it. Empty files have no bytes in the stream and come first.
    fn walk_stream(
        &self,
        files: &[&Entry],
        rx: Receiver<Vec<u8>>,
        sink: &mut dyn EntrySink,
        progress: &dyn Progress,
    ) -> Result<(), ReadError> {
        let bad_range = |e: &Entry| ReadError::Manifest {
            path: self.bundle.path.clone(),
            source: ManifestError::BadStreamRange {
                path: e.path().to_string(),
                offset: stream_offset(e),
                size: file_size(e),
            },
        };
        for &e in files.iter().filter(|e| file_size(e) == 0) {
            sink.start(e)?;
            self.check_entry(e, Hasher::new())?;
            sink.finish(e)?;
        }
        let mut files = files.iter().copied().filter(|e| file_size(e) > 0).peekable();
        let mut open: Option<(&Entry, Hasher, u64)> = None;
        let mut pos = 0u64; // stream offset of the chunk's first byte
        for chunk in rx {
            let end = pos + chunk.len() as u64;
            loop {
                if open.is_none() {
                    match files.peek() {
                        Some(e) if stream_offset(e) < end => {
                            let e = files.next().expect("peeked");
                            if stream_offset(e) < pos {
                                return Err(bad_range(e)); // out of stream order
                            }
                            sink.start(e)?;
                            open = Some((e, Hasher::new(), 0));
                        }
                        _ => break,
                    }
                }
                let (e, h, done) = open.as_mut().expect("a file is open");
                let (offset, size) = (stream_offset(e), file_size(e));
                let from = offset + *done;
                let to = (offset + size).min(end);
                let part = &chunk[(from - pos) as usize..(to - pos) as usize];
                h.update(part);
                sink.write(part)?;
                *done += part.len() as u64;
                if *done < size {
                    break; // continues in the next chunk
                }
                let (e, h, _) = open.take().expect("a file is open");
                self.check_entry(e, h)?;
                sink.finish(e)?;
            }
            progress.advance(chunk.len() as u64);
            pos = end;
        }
        // The stream ended inside an entry or before it.
        match open.map(|(e, _, _)| e).or_else(|| files.next()) {
            Some(e) => Err(bad_range(e)),
            None => Ok(()),
        }
    }

    /// The entry's bytes, all hashed into `h`, against its signed digest.
    fn check_entry(&self, e: &Entry, h: Hasher) -> Result<(), ReadError> {
        let Entry::File { path, size, sha256, .. } = e else {
            unreachable!("only files are in the stream")
        };
        let actual = h.finish();
        if actual != *sha256 {
            return Err(ReadError::EntryDigest {
                path: self.bundle.path.clone(),
                entry: path.clone(),
                offset: stream_offset(e),
                size: *size,
                expected: *sha256,
                actual,
            });
        }
        Ok(())
    }
}

/// Where [`Verified::walk_stream`] puts the bytes of each file entry of the stream.
trait EntrySink {
    fn start(&mut self, entry: &Entry) -> Result<(), ReadError>;
    fn write(&mut self, part: &[u8]) -> Result<(), ReadError>;
    /// Called once the entry's size and digest matched.
    fn finish(&mut self, entry: &Entry) -> Result<(), ReadError>;
}

/// Verify: the bytes are checked and dropped.
struct Discard;

impl EntrySink for Discard {
    fn start(&mut self, _: &Entry) -> Result<(), ReadError> {
        Ok(())
    }
    fn write(&mut self, _: &[u8]) -> Result<(), ReadError> {
        Ok(())
    }
    fn finish(&mut self, _: &Entry) -> Result<(), ReadError> {
        Ok(())
    }
}

/// Extract: each entry becomes a file under `root`, which gets its mode once its digest matched.
struct ExtractFiles<'a> {
    root: &'a Path,
    open: Option<(File, PathBuf)>,
}

impl<'a> ExtractFiles<'a> {
    fn new(root: &'a Path) -> Self {
        ExtractFiles { root, open: None }
    }
}

impl EntrySink for ExtractFiles<'_> {
    fn start(&mut self, entry: &Entry) -> Result<(), ReadError> {
        let p = self.root.join(entry.path());
        let f = create_file(&p).map_err(|source| ReadError::Write {
            path: p.clone(),
            source,
        })?;
        self.open = Some((f, p));
        Ok(())
    }
    fn write(&mut self, part: &[u8]) -> Result<(), ReadError> {
        let (f, p) = self.open.as_mut().expect("started before written");
        f.write_all(part).map_err(|source| ReadError::Write {
            path: p.clone(),
            source,
        })
    }
    fn finish(&mut self, entry: &Entry) -> Result<(), ReadError> {
        let Entry::File { mode, .. } = entry else {
            unreachable!("only files are in the stream")
        };
        let (f, p) = self.open.take().expect("started before finished");
        f.set_permissions(fs::Permissions::from_mode(*mode & MODE_MASK))
            .map_err(|source| ReadError::Write { path: p, source })
    }
}

fn file_size(e: &Entry) -> u64 {
    match e {
        Entry::File { size, .. } => *size,
        _ => 0,
    }
}

fn stream_offset(e: &Entry) -> u64 {
    match e {
        Entry::File {
            data: Data::Stream(o), ..
        } => *o,
        _ => 0,
    }
}

fn create_file(path: &Path) -> io::Result<File> {
    OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)
}

/// Remove a tree we created, even one holding read-only directories (a bundle may carry
/// 0555 directories, which a non-root user cannot empty without making them writable first).
fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            make_dirs_writable(path)?;
            fs::remove_dir_all(path)
        }
        other => other,
    }
}

fn make_dirs_writable(path: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    if !meta.is_dir() {
        return Ok(());
    }
    fs::set_permissions(path, fs::Permissions::from_mode(meta.permissions().mode() | 0o700))?;
    for e in fs::read_dir(path)? {
        make_dirs_writable(&e?.path())?;
    }
    Ok(())
}

/// Permission bits only: a bundle never creates setuid, setgid or sticky files, even as root.
const MODE_MASK: u32 = crate::manifest::PERMISSION_BITS;

/// Flush everything under `dir` to disk with one `syncfs`, instead of one fsync per file.
fn sync_tree(dir: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let d = File::open(dir)?;
    // SAFETY: syncfs only reads the descriptor, which `d` keeps open for the call.
    if unsafe { libc::syncfs(d.as_raw_fd()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningKey;
    use crate::manifest::BundleInfo;
    use crate::write::{resign, write_bundle, Contents, InputEntry, Options};
    use crate::Quiet;

    /// The smallest stub the writer accepts: an ELF64 header and nothing else.
    fn stub() -> Vec<u8> {
        let mut s = vec![0u8; 64];
        s[..4].copy_from_slice(b"\x7fELF");
        s[4] = 2; // 64-bit
        s[5] = 1; // little-endian
        s
    }

    struct Fixture {
        dir: tempfile::TempDir,
        key: SigningKey,
        good: Vec<u8>,
        manifest: Manifest,
    }

    /// A bundle whose stream is cut into 1 KiB frames, so `d/a.txt` spans three of them, with an
    /// empty file and a stored blob besides.
    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path().join("ctx");
        fs::create_dir(&ctx).unwrap();
        let a: String = (0..300).map(|i| format!("line {i:04}\n")).collect();
        let files: [(&str, &[u8], bool); 4] = [
            ("d/a.txt", a.as_bytes(), false),
            ("d/b.txt", b"bee bytes\n", false),
            ("d/empty", b"", false),
            ("d/stored.bin", b"stored as it is", true),
        ];
        let mut entries = vec![InputEntry::Dir {
            path: "d".into(),
            mode: 0o755,
        }];
        for (i, (path, bytes, stored)) in files.into_iter().enumerate() {
            let source = ctx.join(i.to_string());
            fs::write(&source, bytes).unwrap();
            entries.push(InputEntry::File {
                path: path.into(),
                mode: 0o644,
                source,
                size: bytes.len() as u64,
                stored,
            });
        }
        let key = SigningKey::from_seed([7; 32], "vendor");
        let contents = Contents {
            info: &BundleInfo::default(),
            entries: &entries,
            blobs: &[],
            images: &[],
        };
        let opts = Options {
            frame_size: 1024,
            ..Options::default()
        };
        let path = dir.path().join("good.run");
        let out = File::create_new(&path).unwrap();
        write_bundle(&out, &stub(), &contents, &key, &opts, &Quiet).unwrap();
        let good = fs::read(&path).unwrap();
        let manifest = Bundle::open(&path)
            .unwrap()
            .verify_signature(&Trust::Key(key.public()))
            .unwrap()
            .manifest()
            .clone();
        assert!(manifest.frames.len() >= 4, "{} frames", manifest.frames.len());
        Fixture {
            dir,
            key,
            good,
            manifest,
        }
    }

    impl Fixture {
        /// The good bundle with `edit` applied to its manifest and signed by the trusted key
        /// again, opened and its signature checked.
        fn resigned(&self, name: &str, edit: impl FnOnce(&mut Manifest)) -> Result<Verified, ReadError> {
            let mut m = self.manifest.clone();
            edit(&mut m);
            let path = self.dir.path().join(name);
            fs::write(&path, resign(&self.good, &m, &self.key)).unwrap();
            Bundle::open(&path)?.verify_signature(&Trust::Key(self.key.public()))
        }

        /// `verify_contents` and `extract` both refuse the bundle, with the same error, and
        /// extract leaves nothing behind.
        fn refused_by_verify_and_extract(&self, v: &Verified) -> ReadError {
            let verify = v.verify_contents(2, &Quiet).expect_err("verify accepted the bundle");
            let out = self.dir.path().join("out");
            let extract = v.extract(&out, false, &Quiet).expect_err("extract accepted the bundle");
            assert!(!out.exists(), "extract left {}", out.display());
            assert_eq!(verify.to_string(), extract.to_string());
            verify
        }
    }

    fn file<'a>(m: &'a mut Manifest, name: &str) -> (&'a mut u64, &'a mut u64, &'a mut Digest) {
        m.entries
            .iter_mut()
            .find_map(|e| match e {
                Entry::File {
                    path,
                    size,
                    sha256,
                    data: Data::Stream(offset),
                    ..
                } if path == name => Some((offset, size, sha256)),
                _ => None,
            })
            .unwrap()
    }

    fn offset_of(m: &Manifest, name: &str) -> u64 {
        let e = m.entries.iter().find(|e| e.path() == name).unwrap();
        stream_offset(e)
    }

    /// The error names the entry and the offset its bytes were read at.
    fn assert_entry_error(e: &ReadError, name: &str, at: u64, len: u64) {
        match e {
            ReadError::EntryDigest {
                entry, offset, size, ..
            } => assert_eq!((entry.as_str(), *offset, *size), (name, at, len), "{e}"),
            other => panic!("expected an entry digest error for {name}, got {other}"),
        }
        let text = e.to_string();
        assert!(
            text.contains(&format!("`{name}`")) && text.contains(&format!("offset {at} ")),
            "{text}"
        );
    }

    #[test]
    fn good_bundle_resigned_unchanged_verifies_and_extracts() {
        let f = fixture();
        let v = f.resigned("same.run", |_| {}).unwrap();
        v.verify_contents(2, &Quiet).unwrap();
        let out = f.dir.path().join("out");
        let summary = v.extract(&out, false, &Quiet).unwrap();
        assert_eq!(summary.files, 4);
        assert_eq!(fs::read(out.join("d/b.txt")).unwrap(), b"bee bytes\n");
        assert_eq!(fs::read(out.join("d/empty")).unwrap(), b"");
    }

    #[test]
    fn signed_manifest_with_wrong_entry_digest_fails_verify() {
        let f = fixture();
        // d/a.txt spans frames: its digest is carried from one frame to the next.
        let v = f
            .resigned("digest.run", |m| *file(m, "d/a.txt").2 = Digest::of(b"other content"))
            .unwrap();
        let e = f.refused_by_verify_and_extract(&v);
        assert_entry_error(&e, "d/a.txt", offset_of(&f.manifest, "d/a.txt"), 3000);
    }

    #[test]
    fn signed_manifest_with_wrong_empty_file_digest_fails_verify() {
        let f = fixture();
        let v = f
            .resigned("empty.run", |m| *file(m, "d/empty").2 = Digest::of(b"not empty"))
            .unwrap();
        let e = f.refused_by_verify_and_extract(&v);
        assert_entry_error(&e, "d/empty", offset_of(&f.manifest, "d/empty"), 0);
    }

    #[test]
    fn signed_manifest_with_wrong_entry_size_fails_verify() {
        let f = fixture();
        let v = f.resigned("size.run", |m| *file(m, "d/b.txt").1 += 1).unwrap();
        let e = f.refused_by_verify_and_extract(&v);
        assert_entry_error(&e, "d/b.txt", offset_of(&f.manifest, "d/b.txt"), 11);
    }

    #[test]
    fn signed_manifest_with_wrong_entry_offset_fails_verify() {
        let f = fixture();
        let at = offset_of(&f.manifest, "d/b.txt") + 1;
        let v = f.resigned("offset.run", |m| *file(m, "d/b.txt").0 = at).unwrap();
        let e = f.refused_by_verify_and_extract(&v);
        assert_entry_error(&e, "d/b.txt", at, 10);
    }

    #[test]
    fn signed_manifest_with_wrong_frame_raw_size_fails_verify() {
        let f = fixture();
        for (name, delta) in [("raw-larger.run", 1i64), ("raw-smaller.run", -1)] {
            let v = f
                .resigned(name, |m| {
                    m.frames[1].raw_size = m.frames[1].raw_size.checked_add_signed(delta).unwrap()
                })
                .unwrap();
            let at = v.trailer().stream_offset + f.manifest.frames[0].size;
            match f.refused_by_verify_and_extract(&v) {
                ReadError::Decompress { index, offset, .. } => assert_eq!((index, offset), (1, at), "{name}"),
                other => panic!("{name}: expected a decompression error, got {other}"),
            }
        }
    }

    #[test]
    fn signed_manifest_with_overlapping_entries_fails_verify() {
        let f = fixture();
        let at = offset_of(&f.manifest, "d/a.txt") + 100;
        let e = f
            .resigned("overlap.run", |m| *file(m, "d/b.txt").0 = at)
            .err()
            .expect("overlapping entries passed the manifest check");
        match &e {
            ReadError::Manifest {
                source: ManifestError::BadStreamRange { path, offset, size },
                ..
            } => assert_eq!((path.as_str(), *offset, *size), ("d/b.txt", at, 10)),
            other => panic!("expected a stream range error, got {other}"),
        }
        assert!(e.to_string().contains(&format!("offset {at} ")), "{e}");
    }
}
