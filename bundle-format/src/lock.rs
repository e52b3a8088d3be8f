//! Exclusive locks on destinations: the one an extract takes beside its target directory and
//! the one `install` takes on its state directory. A second process asking for a held lock is
//! told at once (no waiting) and can name the holder from what it recorded in the file.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// An exclusive `flock` on a lock file, removed (while still held) when dropped, so a finished
/// run leaves nothing behind. A killed one leaves the file, which the next run locks as usual:
/// the kernel released the lock with the process.
#[derive(Debug)]
pub struct LockFile {
    path: PathBuf,
    file: File,
}

impl LockFile {
    /// Records who holds the lock (a pid, a command) for [`holder`] to show a waiting process.
    pub fn record(&mut self, holder: &str) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.write_all(holder.as_bytes())?;
        self.file.flush()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        // Drop runs before the fields are dropped: the file goes while the lock is held.
        let _ = fs::remove_file(&self.path);
    }
}

/// `path` created if needed and locked with `flock(LOCK_EX | LOCK_NB)`; `WouldBlock` if another
/// holds it. A lock taken on a file that its holder removed meanwhile is taken again on the new
/// one (the inode at `path` must be the one locked).
pub fn lock_exclusive(path: &Path) -> io::Result<LockFile> {
    loop {
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        // SAFETY: flock on a file descriptor this function owns; no memory is passed.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let held = f.metadata()?;
        match fs::metadata(path) {
            Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => {
                return Ok(LockFile {
                    path: path.to_path_buf(),
                    file: f,
                })
            }
            _ => continue, // removed by the previous holder: lock the new file
        }
    }
}

/// What the holder of the lock at `path` recorded, if anything (first line, at most 200 bytes).
pub fn holder(path: &Path) -> Option<String> {
    let text = fs::read(path).ok()?;
    let text = String::from_utf8_lossy(&text[..text.len().min(200)]);
    let line = text.lines().next()?.trim();
    (!line.is_empty() && !line.chars().any(char::is_control)).then(|| line.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_refuses_a_second_holder_and_names_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".lock");
        let mut first = lock_exclusive(&path).unwrap();
        first.record("pid 42: install").unwrap();
        let second = lock_exclusive(&path).unwrap_err();
        assert_eq!(second.kind(), io::ErrorKind::WouldBlock);
        assert_eq!(holder(&path).as_deref(), Some("pid 42: install"));
        drop(first);
        assert!(!path.exists(), "a released lock leaves no file");
        lock_exclusive(&path).expect("free again once released");
    }
}
