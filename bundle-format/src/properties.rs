//! The properties the read side keeps on any bytes, beyond not panicking: header and trailer
//! decoding, manifest validation, and a whole bundle opened, verified and extracted. Each
//! function is one fuzz target (`fuzz/fuzz_targets/`, run by `cargo +nightly fuzz run
//! <target>`) and, on stable, a bounded property test below over seeded mutations of a real
//! small bundle (issue 12).
//!
//! A bundle whose signature does not verify is never parsed further, and random bytes do not
//! verify: [`bundle_file`] therefore also re-signs the input with a fixed key, so that mutated
//! manifests and regions reach the parser and the extractor, as they would from a signer that is
//! trusted but careless, or from anyone when only integrity is checked ([`Trust::EmbeddedKeyOnly`]).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Component, Path};

use crate::layout::{Header, Trailer, HEADER_LEN, SIGNATURE_BLOCK_LEN, TRAILER_LEN};
use crate::manifest::{Entry, Manifest};
use crate::{signed_message, Bundle, Quiet, SigningKey, Trust};

/// The key [`bundle_file`] re-signs with; the seed bundles of the tests are signed with it too.
pub fn fuzz_key() -> SigningKey {
    SigningKey::from_seed([0x12; 32], "fuzz")
}

/// 128 bytes: a header and a trailer. Whatever decodes encodes back to the same bytes, and an
/// accepted trailer's regions tile the file.
pub fn layout(data: &[u8]) {
    let mut bytes = [0u8; (HEADER_LEN + TRAILER_LEN) as usize];
    let n = data.len().min(bytes.len());
    bytes[..n].copy_from_slice(&data[..n]);
    let (h, t) = bytes.split_at(HEADER_LEN as usize);
    let (h, t): (&[u8; 64], &[u8; 64]) = (h.try_into().expect("64 bytes"), t.try_into().expect("64 bytes"));
    if let Ok(header) = Header::decode(h, 0) {
        assert_eq!(&header.encode(), h);
    }
    if let Ok(trailer) = Trailer::decode(t, 0) {
        assert_eq!(&trailer.encode(), t);
        let tiled = trailer.stub_len
            + HEADER_LEN
            + trailer.stream_len()
            + trailer.blobs_len()
            + trailer.manifest_len()
            + SIGNATURE_BLOCK_LEN
            + TRAILER_LEN;
        assert_eq!(tiled, trailer.total_len);
    }
}

/// Manifest JSON, validated against a trailer that fits its regions: an accepted manifest
/// serializes back to itself, and every entry it lists is safe to extract.
pub fn manifest(data: &[u8]) {
    let Ok(m) = Manifest::from_json(data) else {
        return;
    };
    let Some(trailer) = fitting_trailer(&m, data.len() as u64) else {
        return;
    };
    if m.validate(&trailer).is_err() {
        return;
    }
    assert_eq!(Manifest::from_json(&m.to_json()).as_ref(), Ok(&m));
    assert_safe_entries(&m);
}

/// The trailer of a file whose regions are exactly those `m` describes, if they fit in a u64.
fn fitting_trailer(m: &Manifest, manifest_len: u64) -> Option<Trailer> {
    let stream = m.frames.iter().try_fold(0u64, |a, f| a.checked_add(f.size))?;
    let blobs = m.blobs.last().map_or(Some(0), |b| b.offset.checked_add(b.size))?;
    let stream_offset = m.stub.size.checked_add(HEADER_LEN)?;
    let blobs_offset = stream_offset.checked_add(stream)?;
    let manifest_offset = blobs_offset.checked_add(blobs)?;
    let signature_offset = manifest_offset.checked_add(manifest_len)?;
    let total_len = signature_offset.checked_add(SIGNATURE_BLOCK_LEN + TRAILER_LEN)?;
    let t = Trailer {
        stub_len: m.stub.size,
        stream_offset,
        blobs_offset,
        manifest_offset,
        signature_offset,
        total_len,
    };
    t.check().ok().map(|()| t)
}

/// Every entry path is relative and climbs nowhere, and every symlink stays inside the tree.
fn assert_safe_entries(m: &Manifest) {
    for e in &m.entries {
        let path = Path::new(e.path());
        assert!(
            path.components().all(|c| matches!(c, Component::Normal(_))),
            "unsafe entry path {:?}",
            e.path()
        );
        if let Entry::Symlink { path, target } = e {
            let mut depth = path.split('/').count() - 1;
            for c in Path::new(target).components() {
                match c {
                    Component::ParentDir => {
                        depth = depth
                            .checked_sub(1)
                            .unwrap_or_else(|| panic!("{path} -> {target} escapes"))
                    }
                    Component::Normal(_) => depth += 1,
                    Component::CurDir => {}
                    Component::RootDir | Component::Prefix(_) => panic!("{path} -> {target} is absolute"),
                }
            }
        }
    }
}

/// A whole file: opened as it is, and again re-signed with [`fuzz_key`]. A bundle is refused,
/// or it verifies and then lists only safe entries, and extracting it either fails leaving
/// nothing behind, or makes exactly a tree of its entries with no link out of it.
pub fn bundle_file(data: &[u8]) {
    let dir = tempfile::tempdir().expect("a temp directory");
    let path = dir.path().join("delivery.run");
    fs::write(&path, data).expect("the temp file writes");
    let trust = Trust::Key(fuzz_key().public());
    open_verify_extract(&path, &trust, &dir.path().join("as-is"));
    if let Some(resigned) = resign(data) {
        fs::write(&path, resigned).expect("the temp file writes");
        open_verify_extract(&path, &trust, &dir.path().join("resigned"));
        open_verify_extract(&path, &Trust::EmbeddedKeyOnly, &dir.path().join("embedded"));
    }
}

/// `data` with its signature block replaced by [`fuzz_key`]'s signature over its header,
/// trailer and manifest, if its trailer decodes and locates them inside `data`.
fn resign(data: &[u8]) -> Option<Vec<u8>> {
    let len = data.len() as u64;
    let t_at = len.checked_sub(TRAILER_LEN)?;
    let trailer_bytes: &[u8; 64] = data[t_at as usize..].try_into().ok()?;
    let t = Trailer::decode(trailer_bytes, t_at).ok()?;
    let slice =
        |start: u64, n: u64| data.get(usize::try_from(start).ok()?..usize::try_from(start.checked_add(n)?).ok()?);
    let header = slice(t.stub_len, HEADER_LEN)?;
    let manifest = slice(t.manifest_offset, t.manifest_len())?;
    slice(t.signature_offset, SIGNATURE_BLOCK_LEN)?;
    let key = fuzz_key();
    let signature = key.sign(&signed_message(header, trailer_bytes, manifest));
    let mut out = data.to_vec();
    let at = t.signature_offset as usize;
    out[at..at + 32].copy_from_slice(&key.public().to_bytes());
    out[at + 32..at + 96].copy_from_slice(&signature);
    Some(out)
}

fn open_verify_extract(path: &Path, trust: &Trust, dest: &Path) {
    let Ok(bundle) = Bundle::open(path) else {
        return;
    };
    let Ok(verified) = bundle.verify_signature(trust) else {
        return;
    };
    let m = verified.manifest();
    assert_safe_entries(m);
    let contents_ok = verified.verify_contents(1, &Quiet).is_ok();
    match verified.extract(dest, false, &Quiet) {
        Ok(_) => {
            assert!(contents_ok, "extracted what did not verify");
            let listed: BTreeSet<&str> = m.entries.iter().map(Entry::path).collect();
            let root = dest.canonicalize().expect("the extracted tree exists");
            for found in walk(dest) {
                let relative = found.strip_prefix(dest).expect("under dest");
                let relative = relative.to_str().expect("entry paths are UTF-8");
                assert!(
                    listed.contains(relative),
                    "extracted {relative:?}, which no entry lists"
                );
                if let Ok(real) = found.canonicalize() {
                    assert!(
                        real.starts_with(&root),
                        "{relative} leads out of the tree to {}",
                        real.display()
                    );
                }
            }
        }
        Err(_) => assert!(
            fs::read_dir(dest).map_or(true, |mut d| d.next().is_none()),
            "a failed extract left files behind"
        ),
    }
}

/// Every path under `dir` (not following symlinks), sorted.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        out.push(path.clone());
        if is_dir {
            out.extend(walk(&path));
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use std::fs::File;

    use super::*;
    use crate::manifest::BundleInfo;
    use crate::write::{write_bundle, Contents, InputEntry, Options};

    /// The smallest ELF64 file [`crate::elf`] measures: its header and one program header
    /// whose segment is the whole file.
    fn tiny_stub() -> Vec<u8> {
        let mut elf = vec![0u8; 120];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf[0x20..0x28].copy_from_slice(&64u64.to_le_bytes()); // phoff
        elf[0x36..0x38].copy_from_slice(&56u16.to_le_bytes()); // phentsize
        elf[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes()); // phnum
        elf[64 + 32..64 + 40].copy_from_slice(&120u64.to_le_bytes()); // p_filesz
        elf
    }

    /// A real bundle signed with [`fuzz_key`]: directories, a compressed file, a stored file and
    /// two symlinks, one of them climbing to its parent.
    fn seed_bundle() -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("small");
        fs::write(&small, "hello\n").unwrap();
        let stored = dir.path().join("stored");
        fs::write(&stored, [0x1f, 0x8b, 8, 0, 1, 2, 3]).unwrap();
        let file = |path: &str, source: &Path, stored: bool| InputEntry::File {
            path: path.into(),
            mode: 0o644,
            source: source.to_path_buf(),
            size: fs::metadata(source).unwrap().len(),
            stored,
        };
        let entries = [
            InputEntry::Dir {
                path: "etc".into(),
                mode: 0o755,
            },
            InputEntry::Dir {
                path: "etc/sub".into(),
                mode: 0o755,
            },
            file("etc/a.txt", &small, false),
            file("etc/sub/b.txt", &small, false),
            file("big.tgz", &stored, true),
            InputEntry::Symlink {
                path: "etc/link".into(),
                target: "a.txt".into(),
            },
            InputEntry::Symlink {
                path: "etc/sub/up".into(),
                target: "../a.txt".into(),
            },
        ];
        let info = BundleInfo {
            name: "seed".into(),
            version: "1".into(),
            ..BundleInfo::default()
        };
        let contents = Contents {
            info: &info,
            entries: &entries,
            blobs: &[],
            images: &[],
        };
        let out_path = dir.path().join("seed.run");
        let out = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&out_path)
            .unwrap();
        write_bundle(&out, &tiny_stub(), &contents, &fuzz_key(), &Options::default(), &Quiet).unwrap();
        fs::read(&out_path).unwrap()
    }

    /// The trailer and manifest bytes of a bundle.
    fn parts(bundle: &[u8]) -> (Trailer, Vec<u8>) {
        let t_at = bundle.len() - TRAILER_LEN as usize;
        let t = Trailer::decode(bundle[t_at..].try_into().unwrap(), t_at as u64).unwrap();
        let m = bundle[t.manifest_offset as usize..t.signature_offset as usize].to_vec();
        (t, m)
    }

    /// `bundle` with its manifest replaced by `manifest`, header and trailer moved to fit.
    fn with_manifest(bundle: &[u8], manifest: &[u8]) -> Vec<u8> {
        let (t, _) = parts(bundle);
        let mut out = bundle[..t.manifest_offset as usize].to_vec();
        out.extend_from_slice(manifest);
        let signature_offset = out.len() as u64;
        out.extend_from_slice(&[0; SIGNATURE_BLOCK_LEN as usize]);
        let total_len = out.len() as u64 + TRAILER_LEN;
        let trailer = Trailer {
            signature_offset,
            total_len,
            ..t
        };
        out.extend_from_slice(&trailer.encode());
        let header = Header { total_len }.encode();
        out[t.stub_len as usize..t.stream_offset as usize].copy_from_slice(&header);
        out
    }

    /// Tokens that sit on the edges of the manifest's checks.
    const MANIFEST_TOKENS: &[&[u8]] = &[
        b"..",
        b"../",
        b"/etc/passwd",
        b"\"target\":\"../../x\"",
        b"\"path\":\"etc/sub/..\"",
        b"\"path\":\"/\"",
        b"18446744073709551615",
        b"0",
        b"\"Blob\":9",
        b"{\"Stream\":0}",
        b"\\u0000",
        b"\"Symlink\"",
        b"\"Dir\"",
        b"etc/",
    ];

    #[test]
    fn the_seed_bundle_verifies_and_extracts() {
        let bundle = seed_bundle();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seed.run");
        fs::write(&path, &bundle).unwrap();
        let verified = Bundle::open(&path)
            .unwrap()
            .verify_signature(&Trust::Key(fuzz_key().public()))
            .unwrap();
        verified.extract(&dir.path().join("out"), false, &Quiet).unwrap();
        assert_eq!(
            fs::read_to_string(dir.path().join("out/etc/sub/up")).unwrap(),
            "hello\n"
        );
        // Rebuilt around its own manifest, it is the same file but for the signature block.
        let (t, manifest) = parts(&bundle);
        let rebuilt = with_manifest(&bundle, &manifest);
        assert_eq!(rebuilt.len(), bundle.len());
        assert_eq!(resign(&rebuilt).unwrap(), bundle, "re-signing restores the signature");
        // libFuzzer starts far deeper from a real bundle than from nothing: with
        // FUZZ_SEED_DIR=fuzz/corpus this writes the seeds of the three bundle targets.
        if let Some(seeds) = std::env::var_os("FUZZ_SEED_DIR") {
            let mut layout_seed = bundle[t.stub_len as usize..t.stream_offset as usize].to_vec();
            layout_seed.extend_from_slice(&bundle[bundle.len() - TRAILER_LEN as usize..]);
            for (target, bytes) in [
                ("bundle_file", &bundle),
                ("bundle_manifest", &manifest),
                ("bundle_layout", &layout_seed),
            ] {
                let dir = Path::new(&seeds).join(target);
                fs::create_dir_all(&dir).unwrap();
                fs::write(dir.join("seed-small-bundle"), bytes).unwrap();
            }
        }
    }

    #[test]
    fn header_and_trailer_decode_round_trip() {
        let bundle = seed_bundle();
        let (t, _) = parts(&bundle);
        let mut seed = bundle[t.stub_len as usize..t.stream_offset as usize].to_vec();
        seed.extend_from_slice(&bundle[bundle.len() - TRAILER_LEN as usize..]);
        fuzz_cases::run("layout", 20_000, &[seed], &[&[0xff; 8], &[0; 8], &[1]], 128, layout);
    }

    #[test]
    fn accepted_manifests_list_only_safe_entries() {
        let (_, manifest) = parts(&seed_bundle());
        fuzz_cases::run(
            "manifest",
            20_000,
            &[manifest],
            MANIFEST_TOKENS,
            64 << 10,
            self::manifest,
        );
    }

    #[test]
    fn resigned_mutated_manifests_never_extract_outside() {
        let bundle = seed_bundle();
        let (_, manifest) = parts(&bundle);
        fuzz_cases::run(
            "bundle_file.manifest",
            400,
            &[manifest],
            MANIFEST_TOKENS,
            64 << 10,
            |m| bundle_file(&with_manifest(&bundle, m)),
        );
    }

    #[test]
    fn mutated_bundle_files_are_refused_or_safe() {
        fuzz_cases::run("bundle_file", 400, &[seed_bundle()], &[], 1 << 20, bundle_file);
    }
}
