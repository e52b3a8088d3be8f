//! `FROM <base delivery.run>`: verify the base against `--base-key`, unpack its files, and carry
//! its images, whose blobs are copied straight out of the base file (digest-checked on the way).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use bundle_format::manifest::{BaseRef, Data, Entry, Image};
use bundle_format::write::{InputBlob, InputEntry};
use bundle_format::{Bundle, Trust};
use tempfile::TempDir;

use crate::kubefile::Pos;

/// What a base bundle contributes to the new one.
pub struct Base {
    pub entries: Vec<InputEntry>,
    /// The base's own bases, then the base itself.
    pub lineage: Vec<BaseRef>,
    pub images: Vec<Image>,
    pub blobs: Vec<InputBlob>,
    /// Holds the unpacked files while the new bundle is written.
    pub dir: TempDir,
}

/// Verify and unpack the base at `path` (as written in the Kubefile at `kubefile:at`) into a
/// temporary directory under `scratch`.
pub fn load(path: &Path, key: Option<&Path>, kubefile: &Path, at: Pos, scratch: &Path) -> Result<Base> {
    let where_ = format!("{}:{at}", kubefile.display());
    let key = key.ok_or_else(|| {
        anyhow!(
            "{where_}: FROM {} needs --base-key: the public key that signed the base bundle",
            path.display()
        )
    })?;
    let trust = Trust::from_args(Some(key), None)?;
    let failed = || format!("{where_}: base bundle {} failed verification", path.display());
    let verified = Bundle::open(path)
        .with_context(failed)?
        .verify_signature(&trust)
        .with_context(failed)?;
    let dir = tempfile::Builder::new()
        .prefix(".delivery-base.")
        .tempdir_in(scratch)
        .with_context(|| {
            format!(
                "failed to create a directory for the base bundle in {}",
                scratch.display()
            )
        })?;
    let tree = dir.path().join("tree");
    let reporter = terminal::Reporter::new(false);
    verified
        .extract(&tree, false, &reporter)
        .with_context(|| format!("{where_}: failed to unpack base bundle {}", path.display()))?;
    reporter.finish();

    let m = verified.manifest();
    let mut lineage = m.bundle.bases.clone();
    lineage.push(BaseRef {
        name: m.bundle.name.clone(),
        version: m.bundle.version.clone(),
        key: verified.signer().fingerprint().to_string(),
    });
    let entries = m.entries.iter().map(|e| input_entry(e, &tree)).collect();
    let blobs_offset = verified.trailer().blobs_offset;
    let blobs = m
        .image_blobs()
        .map(|(_, b)| InputBlob {
            digest: b.sha256,
            size: b.size,
            source: PathBuf::from(path),
            offset: blobs_offset + b.offset,
            media_type: b.media_type.clone(),
        })
        .collect();
    Ok(Base {
        entries,
        lineage,
        images: m.images.clone(),
        blobs,
        dir,
    })
}

impl Base {
    /// The `version` of the base's `kubernetes.toml`, when it is a Kubernetes bundle.
    pub fn kubernetes_version(&self) -> Option<String> {
        #[derive(serde::Deserialize)]
        struct KubernetesToml {
            version: String,
        }
        let text = std::fs::read_to_string(self.dir.path().join("tree/kubernetes.toml")).ok()?;
        toml::from_str::<KubernetesToml>(&text).ok().map(|k| k.version)
    }
}

fn input_entry(e: &Entry, tree: &Path) -> InputEntry {
    match e {
        Entry::Dir { path, mode } => InputEntry::Dir {
            path: path.clone(),
            mode: *mode,
        },
        Entry::Symlink { path, target } => InputEntry::Symlink {
            path: path.clone(),
            target: target.clone(),
        },
        Entry::File {
            path, mode, size, data, ..
        } => InputEntry::File {
            path: path.clone(),
            mode: *mode,
            source: tree.join(path),
            size: *size,
            stored: matches!(data, Data::Blob(_)),
        },
    }
}
