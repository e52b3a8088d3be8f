//! The file and stream helpers both binaries use: files that appear whole or not at all
//! ([`write_atomic`], [`AtomicFile`]), reading until a buffer is full ([`read_full`]), and a
//! reader and a writer that hash what passes through them ([`HashingReader`],
//! [`HashingWriter`]).
//!
//! They live here, in the one crate both binaries depend on, so there is one copy of each
//! (issue 13). Like `std::fs::write`, the functions return the bare [`io::Error`]: every caller
//! names the file in its own words, with the action it was doing.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::digest::{Digest, Hasher};
use crate::Progress;

/// Writes `bytes` to `path` atomically with mode 0600: see [`write_atomic_mode`].
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_mode(path, bytes, 0o600)
}

/// Writes `bytes` to `path` so that a reader, or the file system after a crash, sees the old
/// file or the new one and never a part: a temporary name in the same directory, fsync,
/// `mode` (exactly, whatever the umask), rename, fsync of the directory. The parent directory
/// must exist. On an error the temporary file is removed.
pub fn write_atomic_mode(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let mut file = AtomicFile::beside(path)?;
    file.write_all(bytes)?;
    file.commit(path, mode)
}

/// A file being written under a temporary name in its destination's directory: [`commit`]
/// renames it to the destination, dropping it uncommitted removes it. For output too large to
/// hold in memory (a whole bundle), or whose name is known only at the end (a file named by its
/// digest); small files go through [`write_atomic_mode`].
///
/// [`commit`]: AtomicFile::commit
pub struct AtomicFile {
    file: File,
    tmp: PathBuf,
    committed: bool,
}

impl AtomicFile {
    /// Creates `.<name>.<pid>.<n>.tmp` beside `dest`, mode 0600 until [`commit`](Self::commit):
    /// never a name another writer (thread or process) uses at the same time. Open for reading
    /// too: the bundle writer hashes what it wrote from the file itself.
    pub fn beside(dest: &Path) -> io::Result<AtomicFile> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tmp = parent_dir(dest).join(format!(".{name}.{}.{n}.tmp", std::process::id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        Ok(AtomicFile {
            file,
            tmp,
            committed: false,
        })
    }

    /// The open temporary file, for positioned writes.
    pub fn as_file(&self) -> &File {
        &self.file
    }

    /// Gives the file `mode`, syncs it, renames it to `dest` (in the directory it was created
    /// in: a rename does not cross file systems) and syncs the directory, so the new name
    /// survives a crash.
    pub fn commit(mut self, dest: &Path, mode: u32) -> io::Result<()> {
        self.file.set_permissions(fs::Permissions::from_mode(mode))?;
        self.file.sync_all()?;
        fs::rename(&self.tmp, dest)?;
        self.committed = true;
        File::open(parent_dir(dest))?.sync_all()
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// The directory `path` is in: `.` for a bare file name.
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Reads until `buf` is full or the reader is at its end; returns how many bytes were read.
/// Unlike `read_exact`, a short source is not an error: the caller sees how short it was.
pub fn read_full<R: Read + ?Sized>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A reader that computes the SHA-256 and the length of everything read through it, and may
/// report each read to a [`Progress`]: a file is read once, however many things need it.
pub struct HashingReader<'p, R> {
    inner: R,
    hasher: Hasher,
    len: u64,
    progress: Option<&'p dyn Progress>,
}

impl<'p, R: Read> HashingReader<'p, R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Hasher::new(),
            len: 0,
            progress: None,
        }
    }

    /// Also calls `progress.advance(n)` after each read of `n` bytes.
    pub fn with_progress(mut self, progress: &'p dyn Progress) -> Self {
        self.progress = Some(progress);
        self
    }

    /// How many bytes have been read so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing has been read yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The digest of everything read.
    pub fn finish(self) -> Digest {
        self.hasher.finish()
    }
}

impl<R: Read> Read for HashingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        if let Some(p) = self.progress {
            p.advance(n as u64);
        }
        Ok(n)
    }
}

/// A writer that hashes what passes through it to `inner`: the payload tars the installer
/// makes are hashed as they are written, never read back.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
    len: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Hasher::new(),
            len: 0,
        }
    }

    /// The writer, the digest of everything written to it and how many bytes that was.
    pub fn finish(self) -> (W, Digest, u64) {
        (self.inner, self.hasher.finish(), self.len)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::os::unix::fs::FileExt;
    use std::sync::atomic::AtomicU64;

    fn names(dir: &Path) -> BTreeSet<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn write_atomic_replaces_the_file_with_the_exact_mode_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        fs::write(&path, b"old").unwrap();
        write_atomic_mode(&path, b"new", 0o644).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o7777, 0o644);
        write_atomic(&path, b"secret").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"secret");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o7777, 0o600);
        assert_eq!(names(dir.path()), BTreeSet::from(["state.json".to_string()]));
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_removes_the_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("target");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("inside"), b"x").unwrap();
        // Renaming a file over a non-empty directory fails after the temporary was written.
        assert!(write_atomic(&path, b"data").is_err());
        assert!(path.join("inside").is_file());
        assert_eq!(names(dir.path()), BTreeSet::from(["target".to_string()]));
        assert!(write_atomic(&dir.path().join("missing/file"), b"data").is_err());
    }

    #[test]
    fn an_uncommitted_atomic_file_is_removed_and_the_destination_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("delivery.run");
        fs::write(&dest, b"previous").unwrap();
        let mut a = AtomicFile::beside(&dest).unwrap();
        let b = AtomicFile::beside(&dest).unwrap();
        a.write_all(b"half").unwrap();
        let mut back = [0u8; 4];
        a.as_file()
            .read_exact_at(&mut back, 0)
            .expect("what was written reads back");
        assert_eq!(&back, b"half");
        assert_eq!(names(dir.path()).len(), 3, "two writers get two temporary names");
        drop(a);
        drop(b);
        assert_eq!(names(dir.path()), BTreeSet::from(["delivery.run".to_string()]));
        assert_eq!(fs::read(&dest).unwrap(), b"previous");
    }

    #[test]
    fn read_full_fills_across_short_reads_and_reports_a_short_source() {
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = buf.len().min(self.0.len()).min(3);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut buf = [0u8; 8];
        assert_eq!(read_full(&mut Trickle(b"0123456789"), &mut buf).unwrap(), 8);
        assert_eq!(&buf, b"01234567");
        let mut buf = [0u8; 8];
        let source: &mut dyn Read = &mut Trickle(b"abcde");
        assert_eq!(read_full(source, &mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"abcde");
    }

    #[test]
    fn hashing_reader_hashes_counts_and_reports_what_passes() {
        struct Count(AtomicU64);
        impl Progress for Count {
            fn phase(&self, _: &str, _: u64) {}
            fn advance(&self, n: u64) {
                self.0.fetch_add(n, Ordering::Relaxed);
            }
        }
        let data = vec![7u8; 100_000];
        let count = Count(AtomicU64::new(0));
        let mut r = HashingReader::new(&data[..]).with_progress(&count);
        assert!(r.is_empty());
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, data);
        assert_eq!(r.len(), 100_000);
        assert_eq!(count.0.load(Ordering::Relaxed), 100_000);
        assert_eq!(r.finish(), Digest::of(&data));
    }

    #[test]
    fn hashing_writer_hashes_and_counts_what_reaches_its_writer() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut w = HashingWriter::new(Vec::new());
        for chunk in data.chunks(7_777) {
            w.write_all(chunk).unwrap();
        }
        let (inner, digest, len) = w.finish();
        assert_eq!(inner, data);
        assert_eq!(digest, Digest::of(&data));
        assert_eq!(len, data.len() as u64);
    }
}
