//! [`Verified::extract`]: the bundle's tree written under a staging directory beside the
//! destination, each file given its mode only once its digest matched, and the directory
//! renamed into place only when everything did, so a failure or a kill leaves nothing behind.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::digest::{hash_region, Hasher, CHUNK};
use crate::lock::lock_exclusive;
use crate::manifest::{Data, Entry};
use crate::Progress;

use super::stream::{file_size, EntrySink};
use super::{ExtractSummary, ReadError, Region, Verified};

impl Verified {
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
