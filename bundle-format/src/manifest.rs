//! The manifest: the signed index of everything in a bundle (JSON, written with sorted keys).
//!
//! It records the bundle's metadata from the Kubefile, the stub's digest, one record per zstd
//! frame of the file stream (compressed size, uncompressed size, SHA-256 of the compressed
//! bytes), one record per stored blob (offset in the blob region, size, SHA-256), and every entry
//! (path, type, mode, and for files size, SHA-256 of the content and where the content is: an
//! offset in the uncompressed stream, or a stored blob's index). [`Manifest::validate`] checks
//! all of it against the trailer before anything reads a byte through it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::entry_path::{self, PathError};
use crate::layout::Trailer;
use crate::reference::{Reference, ReferenceError};
use crate::FORMAT_VERSION;

/// The largest uncompressed frame a reader will accept (bounds its memory).
pub const MAX_FRAME_RAW: u64 = 16 << 20;
/// The largest compressed frame: zstd never expands input by more than a small margin
/// (its compress bound), so anything bigger is not a frame of at most `MAX_FRAME_RAW`.
pub const MAX_FRAME: u64 = MAX_FRAME_RAW + MAX_FRAME_RAW / 128 + (128 << 10);

/// The mode bits a bundle may give what it creates: permission bits only. A signed
/// manifest may still record setuid, setgid or sticky bits; nothing made from it, on the
/// master or on a host, ever carries them.
pub const PERMISSION_BITS: u32 = 0o777;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format_version: u32,
    pub bundle: BundleInfo,
    pub stub: Region,
    pub frames: Vec<Frame>,
    pub blobs: Vec<Blob>,
    /// Container images the bundle serves as a registry mirror, by full original name.
    #[serde(default)]
    pub images: Vec<Image>,
    pub entries: Vec<Entry>,
}

/// What the Kubefile said about the bundle; recorded for `info` and the installer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleInfo {
    pub name: String,
    pub version: String,
    /// RFC 3339, UTC; from SOURCE_DATE_EPOCH or the newest input, never the clock.
    pub created: String,
    pub labels: BTreeMap<String, String>,
    pub env: BTreeMap<String, String>,
    pub apps: Vec<App>,
    pub launch: Option<Launch>,
    /// The bundles this one was built `FROM`, outermost last.
    pub bases: Vec<BaseRef>,
    /// Files downloaded at build time (`COPY https://...`, `APP name https://...`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub downloads: Vec<Download>,
}

/// A file the build downloaded, and the SHA-256 it had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Download {
    pub url: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    pub name: String,
    /// Entry paths of the app's files, under `application/apps/<name>/`.
    pub paths: Vec<String>,
    /// `APPCMDS`: the shell commands that launch the app, run in its directory; empty for
    /// the default of its kind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cmds: Vec<String>,
    /// `APPENV`: environment of the app's commands only.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
}

/// What the installer runs once the files are in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Launch {
    /// `LAUNCH`: apps by name, in order.
    Apps(Vec<String>),
    /// `CMD`/`CMDS`: shell commands, in order.
    Cmds(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseRef {
    pub name: String,
    pub version: String,
    /// Fingerprint of the key the base was verified with.
    pub key: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Region {
    pub size: u64,
    pub sha256: Digest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Frame {
    /// Compressed size in the file.
    pub size: u64,
    /// Size once decompressed.
    pub raw_size: u64,
    /// SHA-256 of the compressed bytes, checked before they are decompressed.
    pub sha256: Digest,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Blob {
    /// Offset from the start of the blob region.
    pub offset: u64,
    pub size: u64,
    pub sha256: Digest,
    /// For an image manifest or index: its media type, which a registry must answer with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
}

/// An image carried in the blob region, under the name it had upstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Image {
    /// Normalised full reference: `docker.io/library/nginx:1.25`, `harbor.corp:8443/team/app@sha256:...`.
    pub name: String,
    /// The top-level manifest or index: a blob of this bundle with a media type.
    pub digest: Digest,
    pub media_type: String,
    /// Bytes of every blob the image references (shared blobs counted in each image).
    pub size: u64,
    /// Platforms carried (`linux/amd64`); empty for a single-platform manifest of unknown platform.
    #[serde(default)]
    pub platforms: Vec<String>,
    /// Where the build found the reference (`manifests/app.yaml:12`), for people reading `images`.
    #[serde(default)]
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Entry {
    Dir {
        path: String,
        mode: u32,
    },
    File {
        path: String,
        mode: u32,
        size: u64,
        sha256: Digest,
        data: Data,
    },
    Symlink {
        path: String,
        target: String,
    },
}

/// Where a file's content is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Data {
    /// At this offset of the uncompressed stream.
    Stream(u64),
    /// The stored blob with this index.
    Blob(usize),
}

impl Entry {
    pub fn path(&self) -> &str {
        match self {
            Entry::Dir { path, .. } | Entry::File { path, .. } | Entry::Symlink { path, .. } => path,
        }
    }
}

/// A manifest that parses but cannot be trusted to describe its file.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("manifest is not valid JSON for format version {FORMAT_VERSION}: {0}")]
    Parse(String),
    #[error("manifest says format version {0}, trailer says {FORMAT_VERSION}")]
    Version(u32),
    #[error("manifest frames cover {covered} bytes but the stream region is {region} bytes")]
    FramesMismatch { covered: u64, region: u64 },
    #[error("manifest frame {index} is invalid: {what}")]
    BadFrame { index: usize, what: &'static str },
    #[error("manifest blob {index} is not where the previous one ended (or overruns the blob region)")]
    BadBlob { index: usize },
    #[error("manifest blobs cover {covered} bytes but the blob region is {region} bytes")]
    BlobsMismatch { covered: u64, region: u64 },
    #[error("manifest stub size {found} does not match the stub region ({expected} bytes)")]
    StubSize { expected: u64, found: u64 },
    #[error(transparent)]
    Path(#[from] PathError),
    #[error("entry `{0}` is listed twice or out of order (entries must be sorted by path)")]
    Order(String),
    #[error("entry `{path}` has no directory entry for its parent `{parent}`")]
    NoParent { path: String, parent: String },
    #[error("entry `{path}` ({size} bytes at offset {offset} of the uncompressed stream) points outside the stream, overlaps the previous file, or is out of stream order")]
    BadStreamRange { path: String, offset: u64, size: u64 },
    #[error("entry `{0}` refers to a blob that does not exist or has another size or digest")]
    BadBlobRef(String),
    #[error("image `{name}` is invalid: {why}")]
    BadImage { name: String, why: String },
    #[error("media type `{0}` is not a type/subtype made of letters, digits and .+-_")]
    BadMediaType(String),
}

impl Manifest {
    /// Parse canonical JSON bytes (only after their signature was checked).
    pub fn from_json(bytes: &[u8]) -> Result<Self, ManifestError> {
        serde_json::from_slice(bytes).map_err(|e| ManifestError::Parse(e.to_string()))
    }

    /// Serialize to the canonical bytes that are signed (struct fields in declaration order,
    /// maps sorted, no whitespace).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a manifest always serializes")
    }

    /// Indices of the blobs that belong to the image cache: every blob that is not a file
    /// entry's content.
    pub fn image_blobs(&self) -> impl Iterator<Item = (usize, &Blob)> {
        let file_blobs: BTreeSet<usize> = self
            .entries
            .iter()
            .filter_map(|e| match e {
                Entry::File {
                    data: Data::Blob(i), ..
                } => Some(*i),
                _ => None,
            })
            .collect();
        self.blobs
            .iter()
            .enumerate()
            .filter(move |(i, _)| !file_blobs.contains(i))
    }

    /// Total uncompressed stream size.
    pub fn raw_stream_len(&self) -> u64 {
        self.frames.iter().map(|f| f.raw_size).sum()
    }

    /// Check that the manifest describes exactly the regions of `trailer`, and that every entry
    /// is safe to extract.
    pub fn validate(&self, trailer: &Trailer) -> Result<(), ManifestError> {
        if self.format_version != FORMAT_VERSION {
            return Err(ManifestError::Version(self.format_version));
        }
        if self.stub.size != trailer.stub_len {
            return Err(ManifestError::StubSize {
                expected: trailer.stub_len,
                found: self.stub.size,
            });
        }
        let mut covered = 0u64;
        for (index, f) in self.frames.iter().enumerate() {
            if f.size == 0 || f.size > MAX_FRAME || f.raw_size == 0 || f.raw_size > MAX_FRAME_RAW {
                return Err(ManifestError::BadFrame {
                    index,
                    what: "size is zero or above 16 MiB",
                });
            }
            covered = covered.saturating_add(f.size);
        }
        if covered != trailer.stream_len() {
            return Err(ManifestError::FramesMismatch {
                covered,
                region: trailer.stream_len(),
            });
        }
        let mut end = 0u64;
        for (index, b) in self.blobs.iter().enumerate() {
            if b.offset != end {
                return Err(ManifestError::BadBlob { index });
            }
            end = end.checked_add(b.size).ok_or(ManifestError::BadBlob { index })?;
        }
        if end != trailer.blobs_len() {
            return Err(ManifestError::BlobsMismatch {
                covered: end,
                region: trailer.blobs_len(),
            });
        }
        self.validate_images()?;
        self.validate_entries()
    }

    fn validate_images(&self) -> Result<(), ManifestError> {
        // Media types end up in HTTP headers of the registry: nothing but type/subtype tokens.
        let token = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b".+-_".contains(&b));
        let media_types = self.blobs.iter().filter_map(|b| b.media_type.as_deref());
        for m in media_types.chain(self.images.iter().map(|i| i.media_type.as_str())) {
            if m.len() > 255 || !m.split_once('/').is_some_and(|(a, b)| token(a) && token(b)) {
                return Err(ManifestError::BadMediaType(m.chars().take(80).collect()));
            }
        }
        // What the registry serves (its index): image blobs only, never a file's blob, by
        // digest, the first of a digest winning. An image's manifest must be one of them.
        let mut served: BTreeMap<&Digest, Option<&str>> = BTreeMap::new();
        for (_, b) in self.image_blobs() {
            served.entry(&b.sha256).or_insert(b.media_type.as_deref());
        }
        let mut names = BTreeSet::new();
        let mut tags: BTreeMap<(String, String), &Digest> = BTreeMap::new();
        for image in &self.images {
            let bad = |why: String| ManifestError::BadImage {
                name: image.name.clone(),
                why,
            };
            let r: Reference = image.name.parse().map_err(|e: ReferenceError| bad(e.to_string()))?;
            if r.to_string() != image.name {
                return Err(bad(format!("not in normalised form (`{r}`)")));
            }
            if !names.insert(image.name.as_str()) {
                return Err(bad("listed twice".into()));
            }
            if served.get(&image.digest) != Some(&Some(image.media_type.as_str())) {
                return Err(bad(format!(
                    "its manifest {} is not an image blob of type {}",
                    image.digest, image.media_type
                )));
            }
            // `app:1` and `app:1@sha256:...` are two names for one tag: a registry answers a
            // pull of `app:1` with one digest only.
            if let Some(tag) = &r.tag {
                let tag_key = (r.name(), tag.clone());
                match tags.get(&tag_key) {
                    Some(d) if **d != image.digest => {
                        return Err(bad(format!(
                            "tag {tag} of {} is also recorded with digest {d}",
                            tag_key.0
                        )))
                    }
                    _ => {
                        tags.insert(tag_key, &image.digest);
                    }
                }
            }
        }
        Ok(())
    }

    fn validate_entries(&self) -> Result<(), ManifestError> {
        let raw_len = self.raw_stream_len();
        let mut dirs = BTreeSet::new();
        let mut previous: Option<&str> = None;
        let mut stream_end = 0u64;
        for e in &self.entries {
            let path = e.path();
            entry_path::check(path)?;
            if previous.is_some_and(|p| p >= path) {
                return Err(ManifestError::Order(path.to_string()));
            }
            previous = Some(path);
            if let Some(parent) = entry_path::parent(path) {
                if !dirs.contains(parent) {
                    return Err(ManifestError::NoParent {
                        path: path.into(),
                        parent: parent.into(),
                    });
                }
            }
            match e {
                Entry::Dir { .. } => {
                    dirs.insert(path);
                }
                Entry::Symlink { target, .. } => entry_path::check_link(path, target)?,
                Entry::File {
                    size,
                    sha256,
                    data: Data::Stream(offset),
                    ..
                } => {
                    let _ = sha256;
                    let end = offset.checked_add(*size).filter(|&end| end <= raw_len);
                    match end {
                        Some(end) if *offset >= stream_end => stream_end = end,
                        _ => {
                            return Err(ManifestError::BadStreamRange {
                                path: path.into(),
                                offset: *offset,
                                size: *size,
                            })
                        }
                    }
                }
                Entry::File {
                    size,
                    sha256,
                    data: Data::Blob(i),
                    ..
                } => {
                    let ok = self
                        .blobs
                        .get(*i)
                        .is_some_and(|b| b.size == *size && b.sha256 == *sha256);
                    if !ok {
                        return Err(ManifestError::BadBlobRef(path.into()));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Format a Unix time as RFC 3339 UTC (`2024-05-01T12:00:00Z`).
pub fn rfc3339(epoch: u64) -> String {
    // Howard Hinnant's days-to-civil algorithm.
    let days = (epoch / 86_400) as i64;
    let secs = epoch % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    fn manifest(entries: Vec<Entry>) -> (Manifest, Trailer) {
        let d = Digest::of(b"x");
        let m = Manifest {
            format_version: FORMAT_VERSION,
            bundle: BundleInfo::default(),
            stub: Region { size: 100, sha256: d },
            frames: vec![Frame {
                size: 10,
                raw_size: 2048,
                sha256: d,
            }],
            blobs: vec![Blob {
                offset: 0,
                size: 5,
                sha256: d,
                media_type: None,
            }],
            images: vec![],
            entries,
        };
        let t = Trailer {
            stub_len: 100,
            stream_offset: 164,
            blobs_offset: 174,
            manifest_offset: 179,
            signature_offset: 200,
            total_len: 360,
        };
        (m, t)
    }

    #[test]
    fn entries_must_be_sorted_parented_and_in_range() {
        let d = Digest::of(b"x");
        let dir = |p: &str| Entry::Dir {
            path: p.into(),
            mode: 0o755,
        };
        let file = |p: &str, o| Entry::File {
            path: p.into(),
            mode: 0o644,
            size: 10,
            sha256: d,
            data: Data::Stream(o),
        };
        let (m, t) = manifest(vec![dir("a"), file("a/x", 512), file("a/y", 1024)]);
        m.validate(&t).unwrap();
        let (m, t) = manifest(vec![file("a/x", 512)]);
        assert!(matches!(m.validate(&t), Err(ManifestError::NoParent { .. })));
        let (m, t) = manifest(vec![dir("a"), file("a/x", 1024), file("a/y", 1030)]);
        assert!(matches!(m.validate(&t), Err(ManifestError::BadStreamRange { .. })));
        let (m, t) = manifest(vec![dir("a"), file("a/x", 2040)]);
        assert!(matches!(m.validate(&t), Err(ManifestError::BadStreamRange { .. })));
        let (m, t) = manifest(vec![dir("b"), dir("a")]);
        assert!(matches!(m.validate(&t), Err(ManifestError::Order(_))));
        let (m, t) = manifest(vec![Entry::Symlink {
            path: "l".into(),
            target: "../etc".into(),
        }]);
        assert!(matches!(m.validate(&t), Err(ManifestError::Path(_))));
        let blob = Entry::File {
            path: "b".into(),
            mode: 0o644,
            size: 6,
            sha256: d,
            data: Data::Blob(0),
        };
        let (m, t) = manifest(vec![blob]);
        assert!(matches!(m.validate(&t), Err(ManifestError::BadBlobRef(_))));
    }

    #[test]
    fn oversized_frames_and_header_breaking_media_types_are_refused() {
        let (mut m, t) = manifest(vec![]);
        m.frames[0].size = MAX_FRAME + 1;
        assert!(matches!(m.validate(&t), Err(ManifestError::BadFrame { .. })));
        for bad in ["text/plain\r\nX-Evil: 1", "nosubtype", "a/", "a/b c"] {
            let (mut m, t) = manifest(vec![]);
            m.blobs[0].media_type = Some(bad.into());
            assert!(matches!(m.validate(&t), Err(ManifestError::BadMediaType(_))), "{bad:?}");
        }
        let (mut m, t) = manifest(vec![]);
        m.blobs[0].media_type = Some("application/vnd.oci.image.manifest.v1+json".into());
        m.validate(&t).unwrap();
    }

    const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

    fn image(name: &str, digest: Digest) -> Image {
        Image {
            name: name.into(),
            digest,
            media_type: OCI_MANIFEST.into(),
            size: 0,
            platforms: vec![],
            source: String::new(),
        }
    }

    #[test]
    fn image_whose_manifest_is_a_file_blob_fails_validation() {
        // The registry serves image blobs only: this image could be verified but never pulled.
        let (mut m, t) = manifest(vec![Entry::File {
            path: "f".into(),
            mode: 0o644,
            size: 5,
            sha256: Digest::of(b"x"),
            data: Data::Blob(0),
        }]);
        m.blobs[0].media_type = Some(OCI_MANIFEST.into());
        m.images = vec![image("example.com/app:1", Digest::of(b"x"))];
        assert!(
            matches!(m.validate(&t), Err(ManifestError::BadImage { ref name, .. }) if name == "example.com/app:1"),
            "{:?}",
            m.validate(&t)
        );
    }

    #[test]
    fn one_tag_recorded_with_two_digests_fails_validation() {
        let (mut m, t) = manifest(vec![]);
        let (d1, d2) = (Digest::of(b"1"), Digest::of(b"2"));
        m.blobs = vec![
            Blob {
                offset: 0,
                size: 2,
                sha256: d1,
                media_type: Some(OCI_MANIFEST.into()),
            },
            Blob {
                offset: 2,
                size: 3,
                sha256: d2,
                media_type: Some(OCI_MANIFEST.into()),
            },
        ];
        m.images = vec![
            image("example.com/app:1", d1),
            image(&format!("example.com/app:1@{d1}"), d1),
        ];
        m.validate(&t).unwrap();
        m.images[1] = image(&format!("example.com/app:1@{d2}"), d2);
        assert!(
            matches!(m.validate(&t), Err(ManifestError::BadImage { .. })),
            "{:?}",
            m.validate(&t)
        );
    }

    #[test]
    fn regions_must_match_the_trailer() {
        let (mut m, t) = manifest(vec![]);
        m.frames[0].size = 11;
        assert!(matches!(m.validate(&t), Err(ManifestError::FramesMismatch { .. })));
        let (mut m, t) = manifest(vec![]);
        m.blobs[0].offset = 1;
        assert!(matches!(m.validate(&t), Err(ManifestError::BadBlob { .. })));
    }
}
