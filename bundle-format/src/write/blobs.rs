//! Phase 2 of the writer: stored blobs copied into place as they are while being hashed, and
//! the whole output file hashed alongside, in order, for `.sha256` and the SSH signature.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender};

use crate::digest::{Digest, Hasher, CHUNK};
use crate::io::read_full;
use crate::Progress;

use super::{stopped, WriteError};

/// Hash `[0, blobs_offset)` from the file, then every chunk sent on `rx`, in order.
pub(super) fn hash_whole_file(out: &File, blobs_offset: u64, rx: Receiver<Vec<u8>>) -> io::Result<Digest> {
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

pub(super) fn copy_blob(
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
