//! Phase 1 of the writer: the file stream. One thread lays the compressible files out as a tar
//! stream (normalised headers, each file hashed as it is read) cut into fixed-size chunks;
//! worker threads compress each chunk into an independent zstd frame and hash it; the calling
//! thread writes the frames in order.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use crate::digest::Digest;
use crate::io::HashingReader;
use crate::manifest::Frame;
use crate::Progress;

use super::{stopped, InputEntry, Options, WriteError};

pub(super) struct Stream {
    pub(super) frames: Vec<Frame>,
    /// (offset in the uncompressed stream, digest) of each compressed file, in path order.
    pub(super) files: Vec<(u64, Digest)>,
    pub(super) raw_len: u64,
}

type Compressed = io::Result<(u64, Vec<u8>, u64, Digest)>;

pub(super) fn write_stream(
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
