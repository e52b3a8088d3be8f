//! Any changed byte, a truncated copy, a foreign key or an unknown format version: every
//! verifier says no (exit 3), and a stub that is still itself refuses to extract anything.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use bundle_format::layout::{LayoutError, HEADER_LEN, TRAILER_LEN};
use bundle_format::{Bundle, ReadError, Trust};

use crate::support::*;

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    keys: Keys,
    bundle: PathBuf,
    bytes: Vec<u8>,
}

/// A small bundle with every region: stub, a two-frame stream, a stored blob.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let keys = keygen(&root, "vendor");
    let ctx = root.join("ctx");
    let mut noise = Noise::new(42);
    write(&ctx.join("layer.tar.gz"), &noise.bytes(1_500_000), 0o644);
    let text: String = (0..120_000)
        .map(|i| format!("line {i} {}\n", noise.next_u64() % 97))
        .collect();
    write(&ctx.join("manifests/big.yaml"), text.as_bytes(), 0o644);
    write(&ctx.join("scripts/run.sh"), b"#!/bin/sh\necho hi\n", 0o755);
    let kubefile = root.join("Kubefile");
    fs::write(&kubefile, "FROM scratch\nCOPY . .\n").unwrap();
    let bundle = root.join("good.run");
    build_ok(&kubefile, Some(&ctx), &keys.private, &bundle, &[]);
    let bytes = fs::read(&bundle).unwrap();
    Fixture {
        _dir: dir,
        root,
        keys,
        bundle,
        bytes,
    }
}

impl Fixture {
    fn write_variant(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.root.join(name);
        fs::write(&p, bytes).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    fn generator_verify(&self, file: &Path) -> i32 {
        code(&run(Command::new(delivery())
            .arg("verify")
            .arg(file)
            .arg("--key")
            .arg(&self.keys.public)))
    }

    /// `./FILE verify` and `./FILE extract` both exit 3, and extract leaves nothing behind.
    fn assert_stub_refuses(&self, file: &Path, what: &str) {
        let o = run(Command::new(file).arg("verify").arg("--key").arg(&self.keys.public));
        assert_eq!(code(&o), 3, "{what}: ./FILE verify: {}", stderr(&o));
        let parent = self.root.join("extract-here");
        fs::create_dir_all(&parent).unwrap();
        let o = run(Command::new(file)
            .arg("extract")
            .arg("--to")
            .arg(parent.join("out"))
            .arg("--key")
            .arg(&self.keys.public));
        assert_eq!(code(&o), 3, "{what}: ./FILE extract: {}", stderr(&o));
        let left: Vec<_> = fs::read_dir(&parent).unwrap().collect();
        assert!(left.is_empty(), "{what}: extract left {left:?}");
    }
}

#[test]
fn one_flipped_byte_in_any_region_is_caught_by_every_verifier() {
    let f = fixture();
    let t = trailer(&f.bundle);
    let frame_mid = t.stream_offset + t.stream_len() / 2;
    let cases: Vec<(&str, u64)> = vec![
        ("stub code", t.stub_len / 2),
        ("stub ELF header", 0x28),
        ("bundle header magic", t.stub_len),
        ("bundle header length", t.stub_len + 16),
        ("bundle header reserved", t.stub_len + 40),
        ("compressed stream, first byte", t.stream_offset),
        ("compressed stream, middle", frame_mid),
        ("stored blob", t.blobs_offset + t.blobs_len() / 2),
        ("manifest", t.manifest_offset + t.manifest_len() / 2),
        ("signer key", t.signature_offset + 5),
        ("signature", t.signature_offset + 32 + 10),
        ("trailer magic", t.total_len - TRAILER_LEN),
        ("trailer offsets", t.total_len - TRAILER_LEN + 40),
        ("trailer length", t.total_len - 1),
    ];
    assert_eq!(f.generator_verify(&f.bundle), 0, "the untouched bundle must verify");
    for (what, pos) in cases {
        let mut bytes = f.bytes.clone();
        bytes[pos as usize] ^= 0x01;
        let file = f.write_variant("flipped.run", &bytes);
        assert_eq!(
            f.generator_verify(&file),
            3,
            "delivery verify accepted a flip in the {what} at {pos}"
        );
        if pos >= t.stub_len {
            f.assert_stub_refuses(&file, what);
        }
    }
}

#[test]
fn two_hundred_random_flips_are_all_caught() {
    let f = fixture();
    let t = trailer(&f.bundle);
    let mut noise = Noise::new(2026);
    let mut outside_stub = 0;
    for i in 0..200 {
        // Every other flip lands past the stub: the stub (with ssh2 and OpenSSL) is most of a
        // small bundle, and the payload must be hit often.
        let pos = if i % 2 == 0 {
            (noise.next_u64() % t.total_len) as usize
        } else {
            (t.stub_len + noise.next_u64() % (t.total_len - t.stub_len)) as usize
        };
        let flip = (noise.next_u64() % 255 + 1) as u8;
        let mut bytes = f.bytes.clone();
        bytes[pos] ^= flip;
        let file = f.write_variant("random.run", &bytes);
        assert_eq!(
            f.generator_verify(&file),
            3,
            "delivery verify accepted byte {pos} ^ {flip:#04x}"
        );
        if pos as u64 >= t.stub_len {
            outside_stub += 1;
            f.assert_stub_refuses(&file, &format!("byte {pos} ^ {flip:#04x}"));
        }
    }
    assert!(
        outside_stub > 50,
        "the random positions should reach the payload often ({outside_stub})"
    );
}

#[test]
fn truncated_copies_report_expected_and_actual_size() {
    let f = fixture();
    let t = trailer(&f.bundle);
    let total = t.total_len;
    for cut in [
        t.stub_len + HEADER_LEN + 10,
        t.blobs_offset + 1000,
        t.signature_offset + 50,
        total - 1,
    ] {
        let file = f.write_variant("truncated.run", &f.bytes[..cut as usize]);
        match Bundle::open(&file) {
            Err(ReadError::Layout {
                source: LayoutError::Truncated { expected, actual },
                ..
            }) => {
                assert_eq!((expected, actual), (total, cut));
            }
            other => panic!("cut at {cut}: expected Truncated, got {:?}", other.err()),
        }
        let o = run(Command::new(delivery())
            .arg("verify")
            .arg(&file)
            .arg("--key")
            .arg(&f.keys.public));
        assert_eq!(code(&o), 3);
        assert!(
            stderr(&o).contains(&format!("expected {total} bytes, found {cut}")),
            "{}",
            stderr(&o)
        );
        f.assert_stub_refuses(&file, &format!("truncated at {cut}"));
    }
    // Cut inside the stub: the generator's verifier still says what happened.
    let cut = t.stub_len / 2;
    let file = f.write_variant("stub-cut.run", &f.bytes[..cut as usize]);
    assert!(matches!(Bundle::open(&file), Err(ReadError::TruncatedInStub { .. })));
    assert_eq!(f.generator_verify(&file), 3);
    // Something appended is caught too.
    let mut longer = f.bytes.clone();
    longer.extend_from_slice(b"junk");
    let file = f.write_variant("appended.run", &longer);
    assert!(matches!(
        Bundle::open(&file),
        Err(ReadError::Layout {
            source: LayoutError::TooLong { .. },
            ..
        })
    ));
    assert_eq!(f.generator_verify(&file), 3);
}

#[test]
fn wrong_key_or_fingerprint_is_refused() {
    let f = fixture();
    let other = keygen(&f.root, "other");
    let o = run(Command::new(delivery())
        .arg("verify")
        .arg(&f.bundle)
        .arg("--key")
        .arg(&other.public));
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    let o = run(Command::new(&f.bundle).arg("verify").arg("--key").arg(&other.public));
    assert_eq!(code(&o), 3);
    let o = run(Command::new(&f.bundle)
        .arg("extract")
        .arg("--to")
        .arg(f.root.join("x"))
        .arg("--key")
        .arg(&other.public));
    assert_eq!(code(&o), 3);
    assert!(!f.root.join("x").exists());
    let o = run(Command::new(&f.bundle).args([
        "verify",
        "--fingerprint",
        "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ]));
    assert_eq!(code(&o), 3);
    let other_key = bundle_format::PublicKey::from_openssh_line(&fs::read_to_string(&other.public).unwrap()).unwrap();
    let r = Bundle::open(&f.bundle)
        .unwrap()
        .verify_signature(&Trust::Key(other_key));
    assert!(matches!(r, Err(ReadError::KeyMismatch { .. })));
}

#[test]
fn unknown_format_version_is_named() {
    let f = fixture();
    let t = trailer(&f.bundle);
    let mut bytes = f.bytes.clone();
    for at in [t.stub_len, t.total_len - TRAILER_LEN] {
        bytes[at as usize + 8..at as usize + 12].copy_from_slice(&9u32.to_le_bytes());
    }
    let file = f.write_variant("v9.run", &bytes);
    match Bundle::open(&file) {
        Err(ReadError::Layout {
            source: LayoutError::UnsupportedVersion { found: 9, supported: 1 },
            ..
        }) => {}
        other => panic!("expected UnsupportedVersion, got {:?}", other.err()),
    }
    let o = run(Command::new(delivery()).arg("verify").arg(&file));
    assert_eq!(code(&o), 3);
    assert!(stderr(&o).contains("version 9"), "{}", stderr(&o));
}
