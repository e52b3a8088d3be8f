//! Local image sources, consulted before any registry: OCI image layout directories,
//! `oci-archive` tars (a tarred layout) and `docker-archive` tars (`docker save` output).
//!
//! Tars are indexed once (entry name -> offset and size) and read in place, so a blob is
//! streamed straight from the archive into the cache; compressed tars are refused. Every blob
//! taken from a local source is hashed on its way into the cache like a downloaded one.
//!
//! A `docker save` tar has no manifest: one is written for it, a Docker v2 schema 2 manifest
//! whose layers are the archive's layer tars stored as they are
//! (`application/vnd.docker.image.rootfs.diff.tar`, or `.tar.gzip` when a layer already is
//! gzip). Not re-compressing keeps the layer digests equal to the config's `diff_ids` (so they
//! are checked against the config, and a rebuild finds them in the cache without reading
//! them), needs no compressor, and costs nothing in the bundle, which is zstd-compressed
//! whole; containerd and CRI-O accept uncompressed layers.
//!
//! Here: opening and indexing a source, finding a reference in it, reading its blobs. The
//! `--image-source` value is `source.rs`, the tar index `tar_index.rs`, and the manifest written
//! for a `docker save` image `docker.rs`.

mod docker;
mod source;
mod tar_index;

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use bundle_format::digest::Digest;
use bundle_format::reference::Reference;

use super::manifest::{self, MAX_MANIFEST};
use super::FetchError;

pub use source::LocalSource;
use tar_index::TarIndex;

const REF_NAME: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME: &str = "io.containerd.image.name";

/// An opened, indexed local source.
pub(crate) struct LocalStore {
    pub path: PathBuf,
    name: Option<String>,
    kind: Kind,
}

enum Kind {
    Layout { blobs: Blobs, index: Vec<IndexEntry> },
    Docker { tar: TarIndex, images: Vec<DockerImage> },
}

enum Blobs {
    Dir(PathBuf),
    Tar(TarIndex),
}

struct IndexEntry {
    digest: Digest,
    size: u64,
    media_type: Option<String>,
    names: Vec<String>,
}

struct DockerImage {
    config: String,
    tags: Vec<Reference>,
    layers: Vec<String>,
}

/// What a source holds for a reference.
pub(crate) enum Found {
    /// A manifest or index blob of an OCI layout.
    Oci {
        digest: Digest,
        size: u64,
        media_type: Option<String>,
    },
    /// The n-th image of a docker-archive.
    Docker(usize),
}

#[derive(Deserialize)]
struct OciIndex {
    #[serde(default)]
    manifests: Vec<OciIndexEntry>,
}

#[derive(Deserialize)]
struct OciIndexEntry {
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    digest: String,
    size: u64,
    #[serde(default)]
    annotations: HashMap<String, String>,
}

#[derive(Deserialize)]
struct DockerEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

impl LocalStore {
    /// Open and index `src`.
    pub(crate) fn open(src: &LocalSource) -> Result<LocalStore, FetchError> {
        let path = src.path.clone();
        let bad = |message: String| FetchError::BadLocalSource {
            path: path.clone(),
            message,
        };
        let meta = fs::metadata(&path).map_err(|e| bad(format!("cannot open it: {e}")))?;
        let kind = if meta.is_dir() {
            if !path.join("oci-layout").is_file() {
                return Err(bad(
                    "a directory without an oci-layout file is not an OCI image layout".into()
                ));
            }
            let index = read_capped(
                &mut open_file(&path.join("index.json"))?,
                MAX_MANIFEST,
                &path.join("index.json"),
            )?;
            Kind::Layout {
                blobs: Blobs::Dir(path.join("blobs").join("sha256")),
                index: parse_index(&path, &index)?,
            }
        } else {
            let tar = TarIndex::read(&path)?;
            if tar.entries.contains_key("oci-layout") && tar.entries.contains_key("index.json") {
                let index = tar.read_entry("index.json", MAX_MANIFEST)?;
                Kind::Layout {
                    index: parse_index(&path, &index)?,
                    blobs: Blobs::Tar(tar),
                }
            } else if tar.entries.contains_key("manifest.json") {
                let text = tar.read_entry("manifest.json", MAX_MANIFEST)?;
                let entries: Vec<DockerEntry> =
                    serde_json::from_slice(&text).map_err(|e| bad(format!("invalid manifest.json: {e}")))?;
                let mut images = Vec::new();
                for e in entries {
                    let mut tags = Vec::new();
                    for t in e.repo_tags.unwrap_or_default() {
                        tags.push(
                            t.parse::<Reference>()
                                .map_err(|err| bad(format!("manifest.json RepoTags: {err}")))?,
                        );
                    }
                    images.push(DockerImage {
                        config: e.config,
                        tags,
                        layers: e.layers,
                    });
                }
                Kind::Docker { tar, images }
            } else {
                return Err(bad(
                    "neither an oci-archive (oci-layout, index.json) nor a docker-archive (manifest.json)".into(),
                ));
            }
        };
        Ok(LocalStore {
            path: src.path.clone(),
            name: src.name.clone(),
            kind,
        })
    }

    /// What this source holds for `reference`, if anything.
    pub(crate) fn find(&self, reference: &Reference) -> Option<Found> {
        match &self.kind {
            Kind::Layout { index, .. } => {
                if let Some(d) = &reference.digest {
                    // Content addressing makes any name safe: the bytes are checked against d.
                    let size = self.blob_size(d)?;
                    let media_type = index.iter().find(|e| e.digest == *d).and_then(|e| e.media_type.clone());
                    return Some(Found::Oci {
                        digest: *d,
                        size,
                        media_type,
                    });
                }
                index
                    .iter()
                    .find(|e| e.names.iter().any(|n| self.annotation_matches(n, reference)))
                    .map(|e| Found::Oci {
                        digest: e.digest,
                        size: e.size,
                        media_type: e.media_type.clone(),
                    })
            }
            Kind::Docker { images, .. } => {
                if reference.digest.is_some() {
                    return None;
                }
                images
                    .iter()
                    .position(|i| {
                        i.tags
                            .iter()
                            .any(|t| t.name() == reference.name() && t.tag == reference.tag)
                    })
                    .map(Found::Docker)
            }
        }
    }

    fn annotation_matches(&self, name: &str, reference: &Reference) -> bool {
        if name.contains('/') || name.contains(':') {
            return name
                .parse::<Reference>()
                .is_ok_and(|r| r.digest.is_none() && r.name() == reference.name() && r.tag == reference.tag);
        }
        reference.tag.as_deref() == Some(name) && self.name.as_deref() == Some(reference.name().as_str())
    }

    /// The size of the blob `digest` if this source has it.
    pub(crate) fn blob_size(&self, digest: &Digest) -> Option<u64> {
        match &self.kind {
            Kind::Layout {
                blobs: Blobs::Dir(dir), ..
            } => fs::metadata(dir.join(digest.hex()))
                .ok()
                .filter(|m| m.is_file())
                .map(|m| m.len()),
            Kind::Layout {
                blobs: Blobs::Tar(tar), ..
            } => tar.entries.get(&format!("blobs/sha256/{}", digest.hex())).map(|e| e.1),
            Kind::Docker { .. } => None,
        }
    }

    /// A reader of the blob `digest` (unchecked: the caller hashes it).
    pub(crate) fn open_blob(&self, digest: &Digest) -> Result<Box<dyn Read + Send>, FetchError> {
        let missing = || FetchError::BadLocalSource {
            path: self.path.clone(),
            message: format!("blob {digest} is missing (the layout is incomplete)"),
        };
        match &self.kind {
            Kind::Layout {
                blobs: Blobs::Dir(dir), ..
            } => {
                let p = dir.join(digest.hex());
                if !p.is_file() {
                    return Err(missing());
                }
                Ok(Box::new(open_file(&p)?))
            }
            Kind::Layout {
                blobs: Blobs::Tar(tar), ..
            } => {
                let name = format!("blobs/sha256/{}", digest.hex());
                if !tar.entries.contains_key(&name) {
                    return Err(missing());
                }
                tar.open_entry(&name)
            }
            Kind::Docker { .. } => Err(missing()),
        }
    }
}

/// `sha256:<hex>` from a `blobs/sha256/<hex>` name or a legacy `<image id>.json` config name (the
/// image ID is the config's digest; legacy `<id>/layer.tar` ids are not digests).
fn digest_in_name(name: &str) -> Option<Digest> {
    let hex = if let Some(h) = name.strip_prefix("blobs/sha256/") {
        h
    } else {
        name.strip_suffix(".json")?
    };
    format!("sha256:{hex}").parse().ok()
}

fn parse_index(path: &Path, bytes: &[u8]) -> Result<Vec<IndexEntry>, FetchError> {
    let bad = |message: String| FetchError::BadLocalSource {
        path: path.to_path_buf(),
        message,
    };
    let index: OciIndex = serde_json::from_slice(bytes).map_err(|e| bad(format!("invalid index.json: {e}")))?;
    let mut out = Vec::new();
    for m in index.manifests {
        let digest = m
            .digest
            .parse::<Digest>()
            .map_err(|e| bad(format!("index.json: {e}")))?;
        if let Some(t) = &m.media_type {
            if !manifest::is_index(t) && !manifest::is_manifest(t) {
                continue;
            }
        }
        let names = [REF_NAME, CONTAINERD_NAME]
            .iter()
            .filter_map(|k| m.annotations.get(*k).cloned())
            .collect();
        out.push(IndexEntry {
            digest,
            size: m.size,
            media_type: m.media_type,
            names,
        });
    }
    Ok(out)
}

fn open_file(path: &Path) -> Result<File, FetchError> {
    File::open(path).map_err(|e| FetchError::Io {
        path: path.to_path_buf(),
        action: "open",
        error: e,
    })
}

fn read_capped(r: &mut dyn Read, cap: u64, path: &Path) -> Result<Vec<u8>, FetchError> {
    let mut out = Vec::new();
    r.take(cap + 1).read_to_end(&mut out).map_err(|e| FetchError::Io {
        path: path.to_path_buf(),
        action: "read",
        error: e,
    })?;
    if out.len() as u64 > cap {
        return Err(FetchError::BadLocalSource {
            path: path.to_path_buf(),
            message: format!("larger than the {cap}-byte limit for its kind"),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::tar_index::normalise;
    use super::*;

    #[test]
    fn parses_source_values() {
        let s: LocalSource = "/tmp/x".parse().unwrap();
        assert_eq!(
            s,
            LocalSource {
                path: "/tmp/x".into(),
                name: None
            }
        );
        let s: LocalSource = "busybox=/tmp/layouts/busybox".parse().unwrap();
        assert_eq!(s.name.as_deref(), Some("docker.io/library/busybox"));
        let s: LocalSource = "registry.k8s.io/pause=pause.tar".parse().unwrap();
        assert_eq!(s.name.as_deref(), Some("registry.k8s.io/pause"));
        assert!("busybox:1.36=/tmp/x".parse::<LocalSource>().is_err());
        assert!("busybox=".parse::<LocalSource>().is_err());
        assert!("".parse::<LocalSource>().is_err());
    }

    #[test]
    fn names_in_archives_are_normalised() {
        assert_eq!(
            normalise(Path::new("./blobs/sha256/ab")).as_deref(),
            Some("blobs/sha256/ab")
        );
        assert_eq!(
            normalise(Path::new("abc/../def/layer.tar")).as_deref(),
            Some("def/layer.tar")
        );
        assert_eq!(normalise(Path::new("../x")), None);
        let hex = "a".repeat(64);
        assert!(digest_in_name(&format!("blobs/sha256/{hex}")).is_some());
        assert!(digest_in_name(&format!("{hex}.json")).is_some());
        assert!(digest_in_name("manifest.json").is_none());
    }

    #[test]
    fn refuses_non_layouts_and_compressed_archives() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            LocalStore::open(&LocalSource::new(dir.path(), None).unwrap()),
            Err(FetchError::BadLocalSource { .. })
        ));
        let gz = dir.path().join("x.tar.gz");
        fs::write(&gz, [0x1f, 0x8b, 8, 0, 0, 0]).unwrap();
        match LocalStore::open(&LocalSource::new(&gz, None).unwrap()) {
            Err(FetchError::BadLocalSource { message, .. }) => assert!(message.contains("compressed")),
            other => panic!("{:?}", other.err()),
        }
    }
}
