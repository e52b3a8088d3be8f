//! The compressed stream, walked the one way every reader relies on: frames hashed before zstd
//! sees them and decompressed to their recorded size on one thread, the tar stream walked on
//! another, every file entry's bytes handed to an [`EntrySink`] and checked against its signed
//! size and digest at its offset. Verify and extract differ only in the sink.

use std::os::unix::fs::FileExt;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use crate::digest::{Digest, Hasher, CHUNK};
use crate::manifest::{Data, Entry, ManifestError};
use crate::Progress;

use super::{ReadError, Region, Verified};

impl Verified {
    /// The file entries whose content is in the stream, in stream order (the manifest's
    /// validation guarantees that path order is stream order).
    pub(super) fn stream_files(&self) -> Vec<&Entry> {
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

    /// The compressed stream, checked as every reader relies on it: one thread checks and
    /// decompresses the frames ([`Self::decompress_frames`]), this one walks the decompressed
    /// stream, hands every file entry's bytes to `sink` and checks the entry's size and digest
    /// at its offset. `files` are the stream's file entries in stream order.
    ///
    /// Entries span frames (frames are fixed-size cuts of one tar stream), and an entry's
    /// SHA-256 is one sequential computation, so the walk is sequential; it runs alongside the
    /// decompression, and [`Self::verify_contents`] runs it alongside the in-place hashing.
    pub(super) fn check_stream(
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
pub(super) trait EntrySink {
    fn start(&mut self, entry: &Entry) -> Result<(), ReadError>;
    fn write(&mut self, part: &[u8]) -> Result<(), ReadError>;
    /// Called once the entry's size and digest matched.
    fn finish(&mut self, entry: &Entry) -> Result<(), ReadError>;
}

/// Verify: the bytes are checked and dropped.
pub(super) struct Discard;

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

pub(super) fn file_size(e: &Entry) -> u64 {
    match e {
        Entry::File { size, .. } => *size,
        _ => 0,
    }
}

pub(super) fn stream_offset(e: &Entry) -> u64 {
    match e {
        Entry::File {
            data: Data::Stream(o), ..
        } => *o,
        _ => 0,
    }
}
