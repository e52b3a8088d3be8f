//! Base bundles by name: what `FROM <name>` resolves to. A sealer Kubefile starts with
//! `FROM <a sealer cluster image>`; here that name is mapped to a verified delivery.run,
//! either for one build (`--base NAME=FILE`) or in a local store (`delivery base add`).
//!
//! The store is a directory (`--base-store`, default `~/.local/share/delivery/bases`): each
//! bundle as `<sha256 of the file>.run`, the public key it was verified with at `add` time as
//! `<sha256>.pub` (the trust root, given by the operator, never taken from the bundle), and
//! `index.json` mapping names to them. Every file is written under a temporary name, synced
//! and renamed, so an interrupted `add` leaves the store as it was.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use bundle_format::{Bundle, Trust};
use serde::{Deserialize, Serialize};
use terminal::json_lines;

use crate::cli::{BaseAddArgs, BaseArgs, BaseCommand, BaseListArgs};
use bundle_format::io::{write_atomic_mode, AtomicFile};

const INDEX: &str = "index.json";

/// One bundle in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Stored {
    /// The names `FROM` may use for it.
    pub names: Vec<String>,
    /// `<sha256>.run` in the store.
    pub file: String,
    pub bundle: String,
    pub version: String,
    pub size: u64,
    /// The fingerprint of the key it was verified with.
    pub key: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Index {
    bases: Vec<Stored>,
}

/// Where a `FROM` base comes from, and the key to verify it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolved {
    pub path: PathBuf,
    /// A key the store recorded; `--base-key` wins over it.
    pub key: Option<PathBuf>,
}

/// The store directory: `dir`, else `$XDG_DATA_HOME/delivery/bases`, else
/// `~/.local/share/delivery/bases`.
pub(crate) fn store_dir(dir: Option<&Path>) -> Result<PathBuf> {
    if let Some(d) = dir {
        return Ok(d.to_path_buf());
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
        return Ok(PathBuf::from(x).join("delivery/bases"));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| anyhow!("HOME is not set: pass --base-store DIR"))?;
    Ok(PathBuf::from(home).join(".local/share/delivery/bases"))
}

fn read_index(store: &Path) -> Result<Index> {
    let path = store.join(INDEX);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "base store index {} is damaged\n  hint: remove it and add the bases again",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Index::default()),
        Err(e) => Err(e).with_context(|| format!("failed to read base store index {}", path.display())),
    }
}

/// The stored bundle named `name`, if any. Names match as written, or as the same image
/// reference once normalised (`kubernetes:v1.35.1` is `docker.io/library/kubernetes:v1.35.1`).
pub(crate) fn find(store: &Path, name: &str) -> Result<Option<Resolved>> {
    let index = read_index(store)?;
    let wanted = normalise(name);
    let hit = index
        .bases
        .iter()
        .find(|b| b.names.iter().any(|n| n == name || normalise(n) == wanted));
    Ok(hit.map(|b| {
        let stem = b.file.trim_end_matches(".run");
        Resolved {
            path: store.join(&b.file),
            key: Some(store.join(format!("{stem}.pub"))),
        }
    }))
}

fn normalise(name: &str) -> String {
    name.parse::<bundle_format::reference::Reference>()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| name.to_string())
}

/// `--base NAME=FILE` values, checked.
pub(crate) fn parse_mappings(values: &[String]) -> Result<Vec<(String, PathBuf)>> {
    values
        .iter()
        .map(|v| {
            let (name, file) = v
                .split_once('=')
                .filter(|(n, f)| !n.is_empty() && !f.is_empty())
                .ok_or_else(|| {
                    anyhow!("--base `{v}` is not NAME=FILE, e.g. --base kubernetes:v1.35.1=./kubernetes.run")
                })?;
            Ok((name.to_string(), PathBuf::from(file)))
        })
        .collect()
}

pub fn run(args: &BaseArgs) -> Result<()> {
    match &args.command {
        BaseCommand::Add(a) => add(a),
        BaseCommand::List(a) => list(a),
    }
}

fn add(args: &BaseAddArgs) -> Result<()> {
    let store = store_dir(args.store.as_deref())?;
    let trust = Trust::from_args(Some(&args.key), None)?;
    let bundle = &args.bundle;
    let failed = || {
        format!(
            "base bundle {} failed verification against {}",
            bundle.display(),
            args.key.display()
        )
    };
    let verified = Bundle::open(bundle)
        .with_context(failed)?
        .verify_signature(&trust)
        .with_context(failed)?;
    let info = verified.manifest().bundle.clone();
    let fingerprint = verified.signer().fingerprint().to_string();
    drop(verified);

    fs::create_dir_all(&store).with_context(|| format!("failed to create the base store {}", store.display()))?;
    let (sha, size) = copy_hashed(bundle, &store)?;
    let file = format!("{sha}.run");
    let key_text = fs::read(&args.key).with_context(|| format!("failed to read {}", args.key.display()))?;
    let key_path = store.join(format!("{sha}.pub"));
    write_atomic_mode(&key_path, &key_text, 0o644)
        .with_context(|| format!("failed to write {}", key_path.display()))?;

    let mut names = vec![format!("{}:{}", info.name, info.version)];
    for n in &args.names {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    let mut index = read_index(&store)?;
    // A name points at one bundle: the newest add takes it over.
    for b in &mut index.bases {
        b.names.retain(|n| !names.contains(n));
    }
    index.bases.retain(|b| !b.names.is_empty() && b.file != file);
    index.bases.push(Stored {
        names: names.clone(),
        file,
        bundle: info.name,
        version: info.version,
        size,
        key: fingerprint.clone(),
    });
    let json = serde_json::to_vec_pretty(&index).context("failed to encode the base store index")?;
    let index_path = store.join(INDEX);
    write_atomic_mode(&index_path, &json, 0o644)
        .with_context(|| format!("failed to write {}", index_path.display()))?;
    for stale in fs::read_dir(&store).with_context(|| format!("failed to read {}", store.display()))? {
        let stale = stale?.file_name().to_string_lossy().into_owned();
        let stem = stale.trim_end_matches(".run").trim_end_matches(".pub");
        let used = index.bases.iter().any(|b| b.file.trim_end_matches(".run") == stem);
        if (stale.ends_with(".run") || stale.ends_with(".pub")) && !used {
            let _ = fs::remove_file(store.join(&stale));
        }
    }
    println!(
        "added {} as {} (signed by {fingerprint})",
        bundle.display(),
        names.join(", ")
    );
    Ok(())
}

/// Copies `src` into `store` under a temporary name while hashing it, then renames it to
/// `<sha256>.run`; returns the digest and size.
fn copy_hashed(src: &Path, store: &Path) -> Result<(String, u64)> {
    let mut input = fs::File::open(src).with_context(|| format!("failed to open {}", src.display()))?;
    let mut tmp = AtomicFile::beside(&store.join("incoming.run"))
        .with_context(|| format!("failed to create a temporary file in {}", store.display()))?;
    let mut ctx = bundle_format::digest::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = input
            .read(&mut buf)
            .with_context(|| format!("failed to read {}", src.display()))?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
        tmp.write_all(&buf[..n])
            .with_context(|| format!("failed to write into the base store {}", store.display()))?;
        size += n as u64;
    }
    let sha = ctx.finish().hex();
    let dest = store.join(format!("{sha}.run"));
    tmp.commit(&dest, 0o644)
        .with_context(|| format!("failed to write {}", dest.display()))?;
    Ok((sha, size))
}

fn list(args: &BaseListArgs) -> Result<()> {
    let store = store_dir(args.store.as_deref())?;
    let index = read_index(&store)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        for b in &index.bases {
            let base = json_lines::Base {
                names: &b.names,
                file: &b.file,
                bundle: &b.bundle,
                version: &b.version,
                size: b.size,
                key: &b.key,
            };
            json_lines::write_line(&mut out, &json_lines::Message::Base(base))?;
        }
        return Ok(());
    }
    if index.bases.is_empty() {
        eprintln!(
            "the base store {} is empty: add a base with `delivery base add FILE --key KEY`",
            store.display()
        );
        return Ok(());
    }
    let mut rows: BTreeMap<&str, &Stored> = BTreeMap::new();
    for b in &index.bases {
        for n in &b.names {
            rows.insert(n, b);
        }
    }
    writeln!(out, "{:<48} {:<24} {:>10}  KEY", "NAME", "BUNDLE", "SIZE")?;
    for (name, b) in rows {
        writeln!(
            out,
            "{name:<48} {:<24} {:>10}  {}",
            format!("{} {}", b.bundle, b.version),
            terminal::bytes(b.size),
            b.key
        )?;
    }
    Ok(())
}

/// The error for a `FROM` that names no known base, with both ways out.
pub(crate) fn unresolved(kubefile: &Path, at: crate::kubefile::Pos, name: &str, store: &Path) -> anyhow::Error {
    anyhow!(
        "{}:{at}: FROM `{name}` names no base bundle on this machine\n  hint: map it to a delivery.run for this build with `--base {name}=FILE --base-key KEY`, or add one to the base store ({}) with `delivery base add FILE --key KEY --name {name}`; `delivery base list` shows what the store has",
        kubefile.display(),
        store.display()
    )
}

/// Whether `text` is written as a path rather than a name.
pub(crate) fn looks_like_path(text: &str) -> bool {
    text.starts_with('/') || text.starts_with("./") || text.starts_with("../") || text.ends_with(".run")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_need_both_sides() {
        assert_eq!(
            parse_mappings(&["kubernetes:v1.35.1=./k.run".into()]).expect("ok"),
            vec![("kubernetes:v1.35.1".to_string(), PathBuf::from("./k.run"))]
        );
        for bad in ["x", "=f", "x="] {
            assert!(parse_mappings(&[bad.into()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_match_as_written_or_normalised() {
        let dir = tempfile::tempdir().expect("tempdir");
        let index = Index {
            bases: vec![Stored {
                names: vec![
                    "kubernetes:v1.35.1".into(),
                    "registry.example/sealer-apps/helm:v3.6.0".into(),
                ],
                file: "ab.run".into(),
                bundle: "kubernetes".into(),
                version: "v1.35.1".into(),
                size: 1,
                key: "SHA256:x".into(),
            }],
        };
        fs::write(dir.path().join(INDEX), serde_json::to_vec(&index).expect("json")).expect("write");
        let hit = find(dir.path(), "docker.io/library/kubernetes:v1.35.1")
            .expect("read")
            .expect("found");
        assert_eq!(hit.path, dir.path().join("ab.run"));
        assert_eq!(hit.key, Some(dir.path().join("ab.pub")));
        assert!(find(dir.path(), "registry.example/sealer-apps/helm:v3.6.0")
            .expect("read")
            .is_some());
        assert!(find(dir.path(), "kubernetes:v1.34.0").expect("read").is_none());
        fs::write(dir.path().join(INDEX), b"{").expect("write");
        assert!(find(dir.path(), "x").is_err());
    }

    #[test]
    fn paths_and_names() {
        assert!(looks_like_path("../base/kubernetes-amd64.run"));
        assert!(looks_like_path("/opt/k.run"));
        assert!(!looks_like_path("kubernetes:v1.35.1"));
        assert!(!looks_like_path(
            "registry.cn-qingdao.aliyuncs.com/sealer-apps/openebs-localpv:2.11.0"
        ));
    }
}
