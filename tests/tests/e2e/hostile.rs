//! Bundles correctly signed by the trusted key whose manifest is hostile (a compromised build
//! machine, a buggy generator): the stub still refuses to write outside its target.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use bundle_format::manifest::{Data, Entry, Manifest, ManifestError};
use bundle_format::write::resign;
use bundle_format::{Bundle, Digest, ReadError, SigningKey, Trust};

use crate::support::*;

struct Case {
    name: &'static str,
    edit: fn(&mut Manifest),
    expect: fn(&ManifestError) -> bool,
    /// A path (relative to the test dir) that must never appear.
    outside: &'static str,
}

fn first_file(m: &mut Manifest) -> &mut Entry {
    m.entries
        .iter_mut()
        .find(|e| {
            matches!(
                e,
                Entry::File {
                    data: Data::Stream(_),
                    ..
                }
            )
        })
        .unwrap()
}

fn set_path(e: &mut Entry, new: &str) {
    match e {
        Entry::Dir { path, .. } | Entry::File { path, .. } | Entry::Symlink { path, .. } => *path = new.to_string(),
    }
}

/// The demo bundle, signed by a new vendor key: its bytes and its manifest, to edit and re-sign.
struct Demo {
    dir: tempfile::TempDir,
    keys: Keys,
    key: SigningKey,
    good: Vec<u8>,
    manifest: Manifest,
}

fn demo() -> Demo {
    let dir = tempfile::tempdir().unwrap();
    let keys = keygen(dir.path(), "vendor");
    let key = SigningKey::from_openssh(&fs::read_to_string(&keys.private).unwrap()).unwrap();
    let path = dir.path().join("good.run");
    build_demo(&keys.private, &path);
    let manifest = Bundle::open(&path)
        .unwrap()
        .verify_signature(&Trust::EmbeddedKeyOnly)
        .unwrap()
        .manifest()
        .clone();
    Demo {
        good: fs::read(&path).unwrap(),
        dir,
        keys,
        key,
        manifest,
    }
}

#[test]
fn hostile_manifests_signed_by_the_trusted_key_are_refused() {
    let Demo {
        dir: t,
        keys,
        key,
        good: good_bytes,
        manifest,
    } = demo();

    // The re-signing itself is sound: a harmless edit still verifies and extracts.
    let mut renamed = manifest.clone();
    renamed.bundle.name = "renamed".into();
    let file = t.path().join("renamed.run");
    write(&file, &resign(&good_bytes, &renamed, &key), 0o755);
    ok(Command::new(&file)
        .arg("extract")
        .arg("--to")
        .arg(t.path().join("renamed-out"))
        .arg("--key")
        .arg(&keys.public));

    let cases = [
        Case {
            name: "path-traversal-entry",
            edit: |m| set_path(first_file(m), "../escaped"),
            expect: |e| matches!(e, ManifestError::Path(_)),
            outside: "escaped",
        },
        Case {
            name: "absolute-path-entry",
            edit: |m| set_path(first_file(m), "/tmp/delivery-absolute-escape"),
            expect: |e| matches!(e, ManifestError::Path(_)),
            outside: "/tmp/delivery-absolute-escape",
        },
        Case {
            name: "escaping-symlink",
            edit: |m| {
                m.entries.push(Entry::Symlink {
                    path: "zz-link".into(),
                    target: "../../../../etc".into(),
                })
            },
            expect: |e| matches!(e, ManifestError::Path(_)),
            outside: "out/zz-link",
        },
        Case {
            name: "file-through-symlink",
            edit: |m| {
                m.entries.push(Entry::Symlink {
                    path: "zz".into(),
                    target: "scripts".into(),
                });
                let mut f = first_file(m).clone();
                set_path(&mut f, "zz/planted");
                m.entries.push(f);
            },
            expect: |e| matches!(e, ManifestError::NoParent { .. }),
            outside: "out/scripts/planted",
        },
        Case {
            // Each link looks inside the root on its own; together they resolve to /etc/passwd.
            name: "symlink-chain-escape",
            edit: |m| {
                let mut dir = String::from("zz");
                m.entries.push(Entry::Dir {
                    path: dir.clone(),
                    mode: 0o755,
                });
                for _ in 0..12 {
                    dir.push_str("/d");
                    m.entries.push(Entry::Dir {
                        path: dir.clone(),
                        mode: 0o755,
                    });
                }
                let to_root = "../".repeat(13);
                m.entries.push(Entry::Symlink {
                    path: format!("{dir}/s"),
                    target: to_root.clone(),
                });
                let target = format!("{}/s/{to_root}etc/passwd", &dir[3..]);
                m.entries.push(Entry::Symlink {
                    path: "zz~t".into(),
                    target: format!("zz/{target}"),
                });
            },
            expect: |e| matches!(e, ManifestError::Path(_)),
            outside: "out/zz~t",
        },
    ];
    for case in cases {
        let mut m = manifest.clone();
        (case.edit)(&mut m);
        let file = t.path().join(format!("{}.run", case.name));
        write(&file, &resign(&good_bytes, &m, &key), 0o755);
        fs::set_permissions(&file, fs::Permissions::from_mode(0o755)).unwrap();

        match Bundle::open(&file).unwrap().verify_signature(&Trust::EmbeddedKeyOnly) {
            Err(ReadError::Manifest { source, .. }) => assert!((case.expect)(&source), "{}: {source}", case.name),
            other => panic!("{}: expected a manifest error, got {:?}", case.name, other.err()),
        }
        let o = run(Command::new(delivery())
            .arg("verify")
            .arg(&file)
            .arg("--key")
            .arg(&keys.public));
        assert_eq!(code(&o), 3, "{}: delivery verify: {}", case.name, stderr(&o));
        let o = run(Command::new(&file)
            .arg("extract")
            .arg("--to")
            .arg(t.path().join("out"))
            .arg("--key")
            .arg(&keys.public));
        assert_eq!(code(&o), 3, "{}: extract: {}", case.name, stderr(&o));
        assert!(
            !t.path().join("out").exists(),
            "{}: extract wrote its target",
            case.name
        );
        let outside = Path::new(case.outside);
        let outside = if outside.is_absolute() {
            outside.to_path_buf()
        } else {
            t.path().join(outside)
        };
        assert!(
            fs::symlink_metadata(&outside).is_err(),
            "{}: {} was written",
            case.name,
            outside.display()
        );
    }
}

/// Issue 12: `verify` said OK on a bundle whose signed manifest disagrees with its stream,
/// which `extract` then refused. Every verifier must now refuse it, naming the entry and its
/// offset in the uncompressed stream.
#[test]
fn signed_manifest_with_wrong_entry_digest_fails_every_verifier() {
    let d = demo();
    let mut m = d.manifest.clone();
    let (path, offset) = match first_file(&mut m) {
        Entry::File {
            path,
            sha256,
            data: Data::Stream(offset),
            ..
        } => {
            *sha256 = Digest::of(b"not this file");
            (path.clone(), *offset)
        }
        _ => unreachable!("first_file finds a stream file"),
    };
    let file = d.dir.path().join("wrong-entry-digest.run");
    write(&file, &resign(&d.good, &m, &d.key), 0o755);
    let names_the_entry = |what: &str, o: &std::process::Output| {
        assert_eq!(code(o), 3, "{what}: {}", stderr(o));
        let err = stderr(o);
        assert!(
            err.contains(&format!("`{path}`")) && err.contains(&format!("offset {offset} ")),
            "{what} does not name `{path}` at offset {offset}: {err}"
        );
    };
    let o = run(Command::new(delivery())
        .arg("verify")
        .arg(&file)
        .arg("--key")
        .arg(&d.keys.public));
    names_the_entry("delivery verify", &o);
    let o = run(Command::new(&file).arg("verify").arg("--key").arg(&d.keys.public));
    names_the_entry("./FILE verify", &o);
    let out = d.dir.path().join("out");
    let o = run(Command::new(&file)
        .arg("extract")
        .arg("--to")
        .arg(&out)
        .arg("--key")
        .arg(&d.keys.public));
    names_the_entry("./FILE extract", &o);
    assert!(!out.exists(), "extract wrote its target");
}

#[test]
fn setuid_and_setgid_bits_are_never_extracted() {
    use std::os::unix::fs::PermissionsExt;
    let d = demo();
    let mut m = d.manifest.clone();
    let target = m
        .entries
        .iter_mut()
        .find_map(|e| match e {
            Entry::File { path, mode, .. } if path == "scripts/install.sh" => {
                *mode = 0o6755;
                Some(path.clone())
            }
            _ => None,
        })
        .expect("the demo has scripts/install.sh");
    let file = d.dir.path().join("setuid.run");
    write(&file, &resign(&d.good, &m, &d.key), 0o755);
    let out = d.dir.path().join("out");
    ok(Command::new(&file)
        .arg("extract")
        .arg("--to")
        .arg(&out)
        .arg("--key")
        .arg(&d.keys.public));
    let mode = fs::metadata(out.join(target)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o755, "setuid/setgid bits must be dropped");
}
