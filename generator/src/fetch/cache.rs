//! The local content-addressed blob cache: `<cache_dir>/blobs/sha256/<hex>`, the same shape as
//! an OCI layout's blob directory.
//!
//! A blob appears under its final name only after its bytes were hashed while they streamed
//! in, matched the expected digest and size, and were synced: it is written to
//! `.incoming-*` in the same directory and renamed. A failed or mismatching download leaves
//! nothing behind (the temporary file is deleted when dropped). Cache hits on small blobs
//! (manifests, configs: read and parsed anyway) are re-hashed, and a mismatching file is
//! removed; layers are checked by size only unless `verify_cached_layers` asks for a re-hash,
//! because the bundle writer hashes every blob again as it packs it.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use bundle_format::digest::{Digest, Hasher, CHUNK};

use super::FetchError;

pub(crate) struct Cache {
    blobs: PathBuf,
}

/// What a finished write produced.
#[derive(Debug)]
pub(crate) struct Stored {
    pub digest: Digest,
    pub path: PathBuf,
}

/// Why a write into the cache failed.
#[derive(Debug)]
pub(crate) enum StoreError {
    /// Writing the cache failed.
    Write { path: PathBuf, source: io::Error },
    /// Reading the source failed (a broken connection, an unreadable file).
    Read(io::Error),
    /// The bytes were not the expected ones: their digest and (possibly partial) size.
    Mismatch { actual: Digest, size: u64, too_long: bool },
}

impl Cache {
    /// Open (creating if needed) the cache rooted at `dir`.
    pub(crate) fn open(dir: &Path) -> Result<Cache, FetchError> {
        let blobs = dir.join("blobs").join("sha256");
        fs::create_dir_all(&blobs).map_err(|error| FetchError::Io {
            path: blobs.clone(),
            action: "create the image cache directory",
            error,
        })?;
        Ok(Cache { blobs })
    }

    pub(crate) fn path(&self, digest: &Digest) -> PathBuf {
        self.blobs.join(digest.hex())
    }

    /// The cached file for `digest` if it exists with `size` bytes.
    pub(crate) fn lookup(&self, digest: &Digest, size: u64) -> Option<PathBuf> {
        let path = self.path(digest);
        match fs::metadata(&path) {
            Ok(m) if m.is_file() && m.len() == size => Some(path),
            _ => None,
        }
    }

    /// Whether the cached file for `digest` hashes to it; a file that does not is removed.
    pub(crate) fn rehash(&self, digest: &Digest) -> bool {
        let path = self.path(digest);
        let ok = File::open(&path)
            .and_then(|mut f| hash_reader(&mut f))
            .is_ok_and(|(d, _)| d == *digest);
        if !ok {
            let _ = fs::remove_file(&path);
        }
        ok
    }

    /// The bytes of a cached blob of at most `cap` bytes, re-hashed. A cached file that does not
    /// match its name is removed (and `None` returned) so that it is fetched again.
    pub(crate) fn read_small(&self, digest: &Digest, cap: u64) -> Option<Vec<u8>> {
        let path = self.path(digest);
        let meta = fs::metadata(&path).ok()?;
        if !meta.is_file() || meta.len() > cap {
            return None;
        }
        let bytes = fs::read(&path).ok()?;
        if Digest::of(&bytes) == *digest {
            Some(bytes)
        } else {
            let _ = fs::remove_file(&path);
            None
        }
    }

    /// Store `bytes`, which the caller already checked hash to `digest`.
    pub(crate) fn store_bytes(&self, digest: &Digest, bytes: &[u8]) -> Result<PathBuf, FetchError> {
        if let Some(p) = self.lookup(digest, bytes.len() as u64) {
            return Ok(p);
        }
        match self.store(&mut &bytes[..], Some((digest, bytes.len() as u64)), &|_| {}) {
            Ok(s) => Ok(s.path),
            Err(StoreError::Write { path, source }) => Err(FetchError::Io {
                path,
                action: "write the image cache",
                error: source,
            }),
            Err(StoreError::Read(_) | StoreError::Mismatch { .. }) => {
                unreachable!("bytes in memory cannot fail to read, and their digest was checked")
            }
        }
    }

    /// Stream `src` into the cache while hashing it. With `expect`, the bytes must have exactly
    /// that digest and size (reading stops as soon as there are too many); without, the blob is
    /// stored under whatever digest its bytes have.
    pub(crate) fn store(
        &self,
        src: &mut dyn Read,
        expect: Option<(&Digest, u64)>,
        progress: &dyn Fn(u64),
    ) -> Result<Stored, StoreError> {
        let write_err = |path: &Path, source| StoreError::Write {
            path: path.to_path_buf(),
            source,
        };
        let mut tmp = tempfile::Builder::new()
            .prefix(".incoming-")
            .tempfile_in(&self.blobs)
            .map_err(|e| write_err(&self.blobs, e))?;
        let mut hasher = Hasher::new();
        let mut buf = vec![0u8; CHUNK];
        let mut size = 0u64;
        loop {
            let n = match src.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(StoreError::Read(e)),
            };
            size += n as u64;
            hasher.update(&buf[..n]);
            if let Some((_, want)) = expect {
                if size > want {
                    return Err(StoreError::Mismatch {
                        actual: hasher.finish(),
                        size,
                        too_long: true,
                    });
                }
            }
            tmp.write_all(&buf[..n]).map_err(|e| write_err(tmp.path(), e))?;
            progress(n as u64);
        }
        let digest = hasher.finish();
        if let Some((want, want_size)) = expect {
            if digest != *want || size != want_size {
                return Err(StoreError::Mismatch {
                    actual: digest,
                    size,
                    too_long: false,
                });
            }
        }
        let path = self.path(&digest);
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(0o644))
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(|e| write_err(&path, e))?;
        tmp.persist(&path).map_err(|e| write_err(&path, e.error))?;
        Ok(Stored { digest, path })
    }

    /// Make the renames durable.
    pub(crate) fn sync(&self) -> Result<(), FetchError> {
        File::open(&self.blobs)
            .and_then(|d| d.sync_all())
            .map_err(|error| FetchError::Io {
                path: self.blobs.clone(),
                action: "sync the image cache directory",
                error,
            })
    }
}

/// Hash everything `r` yields.
pub(crate) fn hash_reader(r: &mut dyn Read) -> io::Result<(Digest, u64)> {
    let mut h = Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    let mut size = 0u64;
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok((h.finish(), size)),
            Ok(n) => {
                h.update(&buf[..n]);
                size += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn stores_under_the_digest_and_rejects_wrong_bytes_without_a_trace() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let good = b"hello blob".to_vec();
        let d = Digest::of(&good);
        let s = cache
            .store(&mut &good[..], Some((&d, good.len() as u64)), &|_| {})
            .unwrap();
        assert_eq!(s.path, cache.path(&d));
        assert_eq!(fs::read(&s.path).unwrap(), good);
        assert_eq!(cache.lookup(&d, good.len() as u64), Some(s.path.clone()));
        assert_eq!(cache.lookup(&d, 3), None);

        let other = Digest::of(b"other");
        let err = cache
            .store(&mut &b"tampered!!"[..], Some((&other, 10)), &|_| {})
            .unwrap_err();
        assert!(matches!(err, StoreError::Mismatch { too_long: false, .. }));
        let err = cache
            .store(&mut &b"far too long for it"[..], Some((&other, 5)), &|_| {})
            .unwrap_err();
        assert!(matches!(err, StoreError::Mismatch { too_long: true, .. }));
        assert_eq!(
            entries(&dir.path().join("blobs/sha256")),
            vec![d.hex()],
            "no temporary file is left"
        );
    }

    #[test]
    fn a_tampered_small_blob_is_dropped_from_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let d = Digest::of(b"{}");
        cache.store_bytes(&d, b"{}").unwrap();
        assert_eq!(cache.read_small(&d, 100).as_deref(), Some(&b"{}"[..]));
        fs::write(cache.path(&d), b"[]").unwrap();
        assert_eq!(cache.read_small(&d, 100), None);
        assert!(!cache.path(&d).exists());
    }
}
