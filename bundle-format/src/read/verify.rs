//! [`Verified::verify_contents`]: every byte a later command reads, checked and dropped: the stub
//! and the stored blobs hashed in place on several threads, the stream walked alongside as
//! extract walks it. The tests here derive each bad bundle from a good one and expect verify and
//! extract to refuse it alike.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::digest::{hash_region, CHUNK};
use crate::Progress;

use super::stream::Discard;
use super::{ReadError, Verified};

impl Verified {
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
}

#[cfg(test)]
mod tests {
    use std::fs::{self, File};

    use super::*;
    use crate::digest::Digest;
    use crate::keys::SigningKey;
    use crate::manifest::BundleInfo;
    use crate::manifest::{Data, Entry, Manifest, ManifestError};
    use crate::read::stream::stream_offset;
    use crate::read::{Bundle, Trust};
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
