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

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use bundle_format::digest::Digest;
use bundle_format::reference::Reference;

use super::cache::{Cache, StoreError};
use super::manifest::{
    self, DOCKER_CONFIG, DOCKER_LAYER, DOCKER_LAYER_GZIP, DOCKER_MANIFEST, MAX_CONFIG, MAX_MANIFEST,
};
use super::FetchError;

const REF_NAME: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME: &str = "io.containerd.image.name";
const OCI_ZSTD_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// A `--image-source` value: `PATH`, or `NAME=PATH` where NAME (`busybox`,
/// `registry.k8s.io/pause`) is the image name that tag-only `ref.name` annotations of the
/// layout refer to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSource {
    pub path: PathBuf,
    /// Normalised `registry/repository` for tag-only annotations.
    pub name: Option<String>,
}

impl LocalSource {
    pub fn new(path: impl Into<PathBuf>, name: Option<&str>) -> Result<LocalSource, String> {
        let name = match name {
            Some(n) => Some(normalise_name(n)?),
            None => None,
        };
        Ok(LocalSource {
            path: path.into(),
            name,
        })
    }
}

fn normalise_name(n: &str) -> Result<String, String> {
    let r: Reference = n.parse().map_err(|e| format!("{e}"))?;
    if r.digest.is_some() || (r.tag.as_deref() != Some("latest") || n.ends_with(":latest")) {
        return Err(format!("image source name `{n}` must be a name without tag or digest"));
    }
    Ok(r.name())
}

impl FromStr for LocalSource {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('=') {
            Some((name, path)) if !name.contains('/') || !Path::new(s).exists() => {
                if path.is_empty() {
                    return Err(format!("image source `{s}` has an empty path"));
                }
                LocalSource::new(path, Some(name))
            }
            _ if s.is_empty() => Err("empty image source path".into()),
            _ => LocalSource::new(s, None),
        }
    }
}

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

/// Entry name -> (offset of the data, size) in an uncompressed tar.
struct TarIndex {
    path: PathBuf,
    entries: HashMap<String, (u64, u64)>,
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

#[derive(Serialize)]
struct V2Manifest<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    config: V2Descriptor<'a>,
    layers: Vec<V2Descriptor<'a>>,
}

#[derive(Serialize)]
struct V2Descriptor<'a> {
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    size: u64,
    digest: String,
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

    /// Copy the n-th image of a docker-archive into the cache: config and layers, checked
    /// against the names and `diff_ids` the archive gives them, plus a Docker v2 schema 2
    /// manifest written for them. Returns the manifest's digest and bytes.
    pub(crate) fn import_docker(
        &self,
        n: usize,
        cache: &Cache,
        reference: &Reference,
    ) -> Result<(Digest, Vec<u8>), FetchError> {
        let Kind::Docker { tar, images } = &self.kind else {
            unreachable!("import_docker is only called for a Found::Docker")
        };
        let image = &images[n];
        let mismatch = |what: String, digest: Digest, actual: String| FetchError::DigestMismatch {
            reference: reference.to_string(),
            what: format!("{what} from {}", self.path.display()),
            digest,
            actual,
        };
        let bad = |message: String| FetchError::BadLocalSource {
            path: self.path.clone(),
            message,
        };
        let config = tar.read_entry(&image.config, MAX_CONFIG)?;
        let config_digest = Digest::of(&config);
        if let Some(named) = digest_in_name(&image.config) {
            if named != config_digest {
                return Err(mismatch(
                    format!("config {}", image.config),
                    named,
                    config_digest.to_string(),
                ));
            }
        }
        #[derive(Deserialize)]
        struct RootFs {
            #[serde(default)]
            diff_ids: Vec<String>,
        }
        #[derive(Deserialize)]
        struct Config {
            rootfs: RootFs,
        }
        let parsed: Config =
            serde_json::from_slice(&config).map_err(|e| bad(format!("config {} is invalid: {e}", image.config)))?;
        if parsed.rootfs.diff_ids.len() != image.layers.len() {
            return Err(bad(format!(
                "config {} lists {} diff_ids but manifest.json lists {} layers",
                image.config,
                parsed.rootfs.diff_ids.len(),
                image.layers.len()
            )));
        }
        cache.store_bytes(&config_digest, &config)?;
        let mut layers = Vec::new();
        for (layer, diff_id) in image.layers.iter().zip(&parsed.rootfs.diff_ids) {
            let size = tar.entry(layer)?.1;
            let mut magic = [0u8; 4];
            let got = read_prefix(&mut tar.open_entry(layer)?, &mut magic).map_err(|e| tar.io(e))?;
            let media_type = match &magic[..got] {
                [0x1f, 0x8b, ..] => DOCKER_LAYER_GZIP,
                [0x28, 0xb5, 0x2f, 0xfd] => OCI_ZSTD_LAYER,
                _ => DOCKER_LAYER,
            };
            let expected = match digest_in_name(layer) {
                Some(d) => Some(d),
                None if media_type == DOCKER_LAYER => Some(
                    diff_id
                        .parse::<Digest>()
                        .map_err(|e| bad(format!("config {}: {e}", image.config)))?,
                ),
                None => None,
            };
            let digest = match expected {
                Some(d) if cache.lookup(&d, size).is_some() => d,
                _ => {
                    let mut r = tar.open_entry(layer)?;
                    match cache.store(&mut r, expected.as_ref().map(|d| (d, size)), &|_| {}) {
                        Ok(s) => s.digest,
                        Err(StoreError::Mismatch { actual, .. }) => {
                            let want = expected.expect("a mismatch needs an expected digest");
                            return Err(mismatch(format!("layer {layer}"), want, actual.to_string()));
                        }
                        Err(StoreError::Read(e)) => return Err(tar.io(e)),
                        Err(StoreError::Write { path, source }) => {
                            return Err(FetchError::Io {
                                path,
                                action: "write the image cache",
                                error: source,
                            })
                        }
                    }
                }
            };
            layers.push(V2Descriptor {
                media_type,
                size,
                digest: digest.to_string(),
            });
        }
        let m = V2Manifest {
            schema_version: 2,
            media_type: DOCKER_MANIFEST,
            config: V2Descriptor {
                media_type: DOCKER_CONFIG,
                size: config.len() as u64,
                digest: config_digest.to_string(),
            },
            layers,
        };
        let bytes = serde_json::to_vec(&m).expect("a manifest struct serialises");
        let digest = Digest::of(&bytes);
        cache.store_bytes(&digest, &bytes)?;
        Ok((digest, bytes))
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

fn read_prefix(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

impl TarIndex {
    fn read(path: &Path) -> Result<TarIndex, FetchError> {
        let io_err = |e: io::Error| FetchError::Io {
            path: path.to_path_buf(),
            action: "read the archive",
            error: e,
        };
        let mut f = open_file(path)?;
        let mut magic = [0u8; 4];
        let got = read_prefix(&mut f, &mut magic).map_err(io_err)?;
        if got >= 2 && (magic[..2] == [0x1f, 0x8b] || magic == [0x28, 0xb5, 0x2f, 0xfd]) {
            return Err(FetchError::BadLocalSource {
                path: path.to_path_buf(),
                message: "compressed archives are not supported: decompress it first (docker save and skopeo write \
                          plain tar)"
                    .into(),
            });
        }
        f.seek(SeekFrom::Start(0)).map_err(io_err)?;
        let mut archive = tar::Archive::new(f);
        let mut entries = HashMap::new();
        let mut links = Vec::new();
        for e in archive.entries_with_seek().map_err(io_err)? {
            let e = e.map_err(io_err)?;
            let name = match e.path() {
                Ok(p) => normalise(&p),
                Err(_) => continue,
            };
            let Some(name) = name else { continue };
            let kind = e.header().entry_type();
            if kind.is_file() {
                entries.insert(name, (e.raw_file_position(), e.size()));
            } else if kind.is_symlink() || kind.is_hard_link() {
                if let Ok(Some(target)) = e.link_name() {
                    let base = if kind.is_symlink() {
                        Path::new(&name).parent().map(Path::to_path_buf).unwrap_or_default()
                    } else {
                        PathBuf::new()
                    };
                    if let Some(t) = normalise(&base.join(target)) {
                        links.push((name, t));
                    }
                }
            }
        }
        // Old `docker save` links identical layers to one another.
        for (name, target) in links {
            if let Some(&at) = entries.get(&target) {
                entries.insert(name, at);
            }
        }
        Ok(TarIndex {
            path: path.to_path_buf(),
            entries,
        })
    }

    fn io(&self, e: io::Error) -> FetchError {
        FetchError::Io {
            path: self.path.clone(),
            action: "read the archive",
            error: e,
        }
    }

    fn entry(&self, name: &str) -> Result<(u64, u64), FetchError> {
        let key = normalise(Path::new(name)).unwrap_or_default();
        self.entries
            .get(&key)
            .copied()
            .ok_or_else(|| FetchError::BadLocalSource {
                path: self.path.clone(),
                message: format!("the archive has no file {name}"),
            })
    }

    fn open_entry(&self, name: &str) -> Result<Box<dyn Read + Send>, FetchError> {
        let (offset, size) = self.entry(name)?;
        let mut f = open_file(&self.path)?;
        f.seek(SeekFrom::Start(offset)).map_err(|e| self.io(e))?;
        Ok(Box::new(f.take(size)))
    }

    fn read_entry(&self, name: &str, cap: u64) -> Result<Vec<u8>, FetchError> {
        read_capped(&mut self.open_entry(name)?, cap, &self.path.join(name))
    }
}

/// `a/./b` -> `a/b`; `None` for paths that leave the archive root.
fn normalise(p: &Path) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::Prefix(_) => return None,
        }
    }
    if parts.is_empty() {
        None
    } else {
        Some(parts.join("/"))
    }
}

#[cfg(test)]
mod tests {
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
