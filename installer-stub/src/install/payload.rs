//! Payloads: the tars of bundle files each host gets, made once on the master from the
//! extracted bundle (`<state>/bundle`), byte-for-byte reproducible (entry order of the
//! manifest, zero times and owners), written atomically with their SHA-256 beside them.
//! Also the whole bundle file's SHA-256, for the copy on the registry host.

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bundle_format::io::HashingWriter;
use bundle_format::manifest::{Entry, Manifest, PERMISSION_BITS};

use super::plan::{in_payload, Payload};

/// A payload tar on the master.
#[derive(Debug, Clone)]
pub struct Built {
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
}

/// Makes `<dir>/<name>.tar` from the extracted bundle at `tree`, or reuses it when its
/// recorded digest still matches the file.
pub fn build(manifest: &Manifest, tree: &Path, payload: &Payload, dir: &Path) -> Result<Built> {
    let path = dir.join(format!("{}.tar", payload.name));
    let sum_path = dir.join(format!("{}.tar.sha256", payload.name));
    if let (Ok(sum), Ok(meta)) = (fs::read_to_string(&sum_path), fs::metadata(&path)) {
        if let Some((hex, size)) = sum.trim().split_once(' ') {
            if size.parse::<u64>().ok() == Some(meta.len()) && hex.len() == 64 {
                return Ok(Built {
                    path,
                    sha256: hex.to_string(),
                    size: meta.len(),
                });
            }
        }
    }
    fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    let tmp = dir.join(format!(".{}.tar.{}.tmp", payload.name, std::process::id()));
    let result = (|| -> Result<Built> {
        let file = File::create(&tmp).with_context(|| format!("failed to create {}", tmp.display()))?;
        let writer = HashingWriter::new(io::BufWriter::with_capacity(1 << 20, file));
        let mut tar = tar::Builder::new(writer);
        for entry in &manifest.entries {
            if !in_payload(entry.path(), &payload.prefixes) {
                continue;
            }
            append(&mut tar, tree, entry)
                .with_context(|| format!("failed to add {} to the {} payload", entry.path(), payload.name))?;
        }
        let mut writer = tar.into_inner().context("failed to finish the payload tar")?;
        writer.flush()?;
        let (inner, digest, written) = writer.finish();
        let file = inner.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        let sha256 = digest.hex();
        fs::rename(&tmp, &path)?;
        bundle_format::io::write_atomic(&sum_path, format!("{sha256} {written}\n").as_bytes())?;
        Ok(Built {
            path: path.clone(),
            sha256,
            size: written,
        })
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("failed to make the payload {}", path.display()))
}

/// Hosts unpack payloads as root with `tar -xf`, which keeps every mode bit it is given:
/// the headers carry permission bits only, whatever the signed manifest records.
fn append<W: Write>(tar: &mut tar::Builder<W>, tree: &Path, entry: &Entry) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    match entry {
        Entry::Dir { path, mode } => {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(*mode & PERMISSION_BITS);
            header.set_size(0);
            tar.append_data(&mut header, format!("{path}/"), io::empty())?;
        }
        Entry::File { path, mode, size, .. } => {
            let file =
                File::open(tree.join(path)).with_context(|| format!("failed to open {}", tree.join(path).display()))?;
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(*mode & PERMISSION_BITS);
            header.set_size(*size);
            tar.append_data(&mut header, path, BufReader::with_capacity(1 << 20, file).take(*size))?;
        }
        Entry::Symlink { path, target } => {
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_mode(0o777);
            header.set_size(0);
            tar.append_link(&mut header, path, target)?;
        }
    }
    Ok(())
}

/// The stub alone (the bundle's first `stub.size` bytes, the `delivery` executable without
/// the payload) at `<dir>/delivery`, checked against the signed stub digest. Hosts get it as
/// `<root>/bin/delivery` for the commands they run themselves (`lb`).
pub fn stub(bundle: &Path, stub: &bundle_format::manifest::Region, dir: &Path) -> Result<Built> {
    let path = dir.join("delivery");
    let want = stub.sha256.hex();
    if fs::metadata(&path).is_ok_and(|m| m.len() == stub.size) && file_sha256(&path)? == want {
        return Ok(Built {
            path,
            sha256: want,
            size: stub.size,
        });
    }
    fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    let tmp = dir.join(format!(".delivery.{}.tmp", std::process::id()));
    let mut from = File::open(bundle)
        .with_context(|| format!("failed to open {}", bundle.display()))?
        .take(stub.size);
    let mut writer =
        HashingWriter::new(File::create(&tmp).with_context(|| format!("failed to create {}", tmp.display()))?);
    io::copy(&mut from, &mut writer)?;
    let (inner, digest, written) = writer.finish();
    inner.sync_all()?;
    if written != stub.size || digest.hex() != want {
        let _ = fs::remove_file(&tmp);
        anyhow::bail!("the stub of {} does not match its signed digest", bundle.display());
    }
    fs::rename(&tmp, &path)?;
    Ok(Built {
        path,
        sha256: want,
        size: stub.size,
    })
}

/// SHA-256 (hex) of a whole file, streamed.
pub fn file_sha256(path: &Path) -> Result<String> {
    let file = File::open(path).with_context(|| format!("failed to open {}", path.display()))?;
    let len = file
        .metadata()
        .with_context(|| format!("failed to read {}", path.display()))?
        .len();
    let mut buf = vec![0u8; bundle_format::digest::CHUNK];
    let digest = bundle_format::digest::hash_region(&file, 0, len, &mut buf, &|_| {})
        .with_context(|| format!("failed to read {}", path.display()))?;
    Ok(digest.hex())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bundle_format::manifest::Data;

    fn manifest() -> Manifest {
        serde_json::from_str(
            r#"{"format_version":1,"bundle":{"name":"a","version":"1","created":"2026-01-01T00:00:00Z","labels":{},"env":{},"apps":[],"launch":null,"bases":[]},
            "stub":{"sha256":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":0},"frames":[],"blobs":[],"images":[],"entries":[]}"#,
        )
        .unwrap()
    }

    #[test]
    fn tars_are_reproducible_and_reused() {
        let tree = tempfile::tempdir().unwrap();
        fs::create_dir_all(tree.path().join("rootfs/bin")).unwrap();
        fs::write(tree.path().join("rootfs/bin/tool"), b"#!/bin/sh\n").unwrap();
        fs::write(tree.path().join("charts.yaml"), b"x").unwrap();
        let mut m = manifest();
        m.entries = vec![
            Entry::File {
                path: "charts.yaml".into(),
                mode: 0o644,
                size: 1,
                sha256: bundle_format::Digest::of(b"x"),
                data: Data::Stream(0),
            },
            Entry::Dir {
                path: "rootfs".into(),
                mode: 0o755,
            },
            Entry::Dir {
                path: "rootfs/bin".into(),
                mode: 0o755,
            },
            Entry::File {
                path: "rootfs/bin/tool".into(),
                mode: 0o755,
                size: 10,
                sha256: bundle_format::Digest::of(b"#!/bin/sh\n"),
                data: Data::Stream(1),
            },
        ];
        let p = Payload {
            name: "node".into(),
            prefixes: vec!["rootfs/".into()],
            files: 1,
            bytes: 10,
        };
        let out1 = tempfile::tempdir().unwrap();
        let out2 = tempfile::tempdir().unwrap();
        let a = build(&m, tree.path(), &p, out1.path()).unwrap();
        let b = build(&m, tree.path(), &p, out2.path()).unwrap();
        assert_eq!(a.sha256, b.sha256);
        assert_eq!(a.sha256, file_sha256(&a.path).unwrap());
        let names: Vec<String> = tar::Archive::new(File::open(&a.path).unwrap())
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["rootfs/", "rootfs/bin/", "rootfs/bin/tool"]);
        // A second build reuses the file (its digest is recorded beside it).
        let before = fs::metadata(&a.path).unwrap().modified().unwrap();
        let again = build(&m, tree.path(), &p, out1.path()).unwrap();
        assert_eq!(again.sha256, a.sha256);
        assert_eq!(fs::metadata(&a.path).unwrap().modified().unwrap(), before);
    }

    /// A manifest signed by the trusted key may still record setuid, setgid and sticky bits
    /// (a compromised build machine, a hostile Kubefile's `COPY` of a setuid file). Hosts
    /// unpack payloads as root with `tar -xf`, which would keep them.
    #[test]
    fn setuid_setgid_and_sticky_bits_in_a_signed_manifest_never_reach_a_payload() {
        let tree = tempfile::tempdir().unwrap();
        fs::create_dir_all(tree.path().join("rootfs/tmp")).unwrap();
        fs::write(tree.path().join("rootfs/su"), b"#!/bin/sh\n").unwrap();
        let mut m = manifest();
        m.entries = vec![
            Entry::Dir {
                path: "rootfs".into(),
                mode: 0o755,
            },
            Entry::File {
                path: "rootfs/su".into(),
                mode: 0o6755,
                size: 10,
                sha256: bundle_format::Digest::of(b"#!/bin/sh\n"),
                data: Data::Stream(0),
            },
            Entry::Dir {
                path: "rootfs/tmp".into(),
                mode: 0o1777,
            },
        ];
        let p = Payload {
            name: "node".into(),
            prefixes: vec!["rootfs/".into()],
            files: 1,
            bytes: 10,
        };
        let out = tempfile::tempdir().unwrap();
        let built = build(&m, tree.path(), &p, out.path()).unwrap();
        let modes: Vec<(String, u32)> = tar::Archive::new(File::open(&built.path).unwrap())
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.path().unwrap().display().to_string(), e.header().mode().unwrap())
            })
            .collect();
        assert_eq!(
            modes,
            [
                ("rootfs/".to_string(), 0o755),
                ("rootfs/su".to_string(), 0o755),
                ("rootfs/tmp/".to_string(), 0o777)
            ]
        );
    }
}
