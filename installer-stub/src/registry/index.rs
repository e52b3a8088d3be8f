//! The registry's view of the bundle: where every image blob sits in the file, and which tags
//! every repository has. Built once from the signed manifest, read-only afterwards.

use std::collections::{BTreeMap, HashMap};

use anyhow::{bail, Context, Result};
use bundle_format::layout::Trailer;
use bundle_format::manifest::Manifest;
use bundle_format::reference::Reference;
use bundle_format::Digest;

/// A blob's bytes in the bundle file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobLocation {
    /// Absolute offset in the bundle file.
    pub offset: u64,
    pub size: u64,
    /// Set for manifests and indexes: the Content-Type a registry must answer with.
    pub media_type: Option<String>,
}

/// One repository (`docker.io/library/busybox`): its tags and the top-level digests they name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Repository {
    tags: BTreeMap<String, Digest>,
}

impl Repository {
    pub fn tag(&self, tag: &str) -> Option<&Digest> {
        self.tags.get(tag)
    }

    pub fn tags(&self) -> impl Iterator<Item = &str> {
        self.tags.keys().map(String::as_str)
    }
}

#[derive(Debug, Default)]
pub struct Index {
    blobs: HashMap<Digest, BlobLocation>,
    /// By `registry/repository`, as [`Reference::name`] writes it.
    repositories: BTreeMap<String, Repository>,
    images: usize,
}

impl Index {
    /// Index the image blobs and images of a verified manifest.
    ///
    /// Blobs that hold file entries (stored archives, charts) are left out: the registry serves
    /// what the images reference, not the rest of the payload, even to a client that knows a
    /// digest.
    pub fn build(manifest: &Manifest, trailer: &Trailer) -> Result<Index> {
        let mut index = Index::default();
        for (_, b) in manifest.image_blobs() {
            let offset = trailer
                .blobs_offset
                .checked_add(b.offset)
                .filter(|end| end.checked_add(b.size).is_some_and(|e| e <= trailer.manifest_offset))
                .with_context(|| format!("blob {} lies outside the blob region", b.sha256))?;
            index.blobs.entry(b.sha256).or_insert(BlobLocation {
                offset,
                size: b.size,
                media_type: b.media_type.clone(),
            });
        }
        for image in &manifest.images {
            let r: Reference = image
                .name
                .parse()
                .with_context(|| format!("image `{}` has an invalid name", image.name))?;
            if index.manifest(&image.digest).is_none() {
                bail!(
                    "image `{}`: its manifest {} is not an image blob with a media type",
                    image.name,
                    image.digest
                );
            }
            let name = r.name();
            let repository = index.repositories.entry(name.clone()).or_default();
            if let Some(tag) = r.tag {
                match repository.tags.get(&tag) {
                    Some(d) if *d != image.digest => bail!(
                        "image `{}`: tag {tag} of {} is also recorded with digest {d}; the bundle is ambiguous",
                        image.name,
                        name
                    ),
                    _ => {
                        repository.tags.insert(tag, image.digest);
                    }
                }
            }
            index.images += 1;
        }
        Ok(index)
    }

    pub fn repository(&self, name: &str) -> Option<&Repository> {
        self.repositories.get(name)
    }

    pub fn blob(&self, digest: &Digest) -> Option<&BlobLocation> {
        self.blobs.get(digest)
    }

    /// A manifest or index: a blob with a media type.
    pub fn manifest(&self, digest: &Digest) -> Option<(&BlobLocation, &str)> {
        let b = self.blobs.get(digest)?;
        Some((b, b.media_type.as_deref()?))
    }

    pub fn images(&self) -> usize {
        self.images
    }

    pub fn blobs(&self) -> usize {
        self.blobs.len()
    }
}

/// The sample index, for these tests, the API's and the request fuzz target's.
#[cfg(any(test, feature = "fuzzing"))]
pub mod tests {
    use bundle_format::manifest::{Blob, BundleInfo, Image, Region};
    use bundle_format::manifest::{Data, Entry};

    use super::*;

    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

    pub fn digest(n: u8) -> Digest {
        Digest([n; 32])
    }

    /// A small index: blob 1 a layer, 2 an OCI manifest, 3 an OCI index, 4 a stored file.
    /// `docker.io/library/busybox:1.36` → 2, `example.com/team/app:2.1` → 3,
    /// `harbor.corp:8443/team/app:2.1` → 3. The blob region starts at 1000.
    pub fn sample() -> (Manifest, Trailer) {
        let blob = |n: u8, offset: u64, size: u64, media_type: Option<&str>| Blob {
            offset,
            size,
            sha256: digest(n),
            media_type: media_type.map(String::from),
        };
        let image = |name: &str, n: u8, media_type: &str| Image {
            name: name.into(),
            digest: digest(n),
            media_type: media_type.into(),
            size: 0,
            platforms: vec![],
            source: String::new(),
        };
        let manifest = Manifest {
            format_version: bundle_format::FORMAT_VERSION,
            bundle: BundleInfo::default(),
            stub: Region {
                size: 0,
                sha256: digest(0),
            },
            frames: vec![],
            blobs: vec![
                blob(4, 0, 10, None),
                blob(1, 10, 100, None),
                blob(2, 110, 20, Some(OCI_MANIFEST)),
                blob(3, 130, 30, Some(OCI_INDEX)),
            ],
            images: vec![
                image("docker.io/library/busybox:1.36", 2, OCI_MANIFEST),
                image("example.com/team/app:2.1", 3, OCI_INDEX),
                image("harbor.corp:8443/team/app:2.1", 3, OCI_INDEX),
            ],
            entries: vec![Entry::File {
                path: "big.tgz".into(),
                mode: 0o644,
                size: 10,
                sha256: digest(4),
                data: Data::Blob(0),
            }],
        };
        let trailer = Trailer {
            stub_len: 936,
            stream_offset: 1000,
            blobs_offset: 1000,
            manifest_offset: 1160,
            signature_offset: 1200,
            total_len: 1360,
        };
        (manifest, trailer)
    }

    #[test]
    fn indexes_image_blobs_at_absolute_offsets_and_tags() {
        let (m, t) = sample();
        let index = Index::build(&m, &t).unwrap();
        assert_eq!((index.images(), index.blobs()), (3, 3));
        assert_eq!(
            index.blob(&digest(1)),
            Some(&BlobLocation {
                offset: 1010,
                size: 100,
                media_type: None
            })
        );
        assert_eq!(
            index.manifest(&digest(3)).map(|(b, m)| (b.offset, m)),
            Some((1130, OCI_INDEX))
        );
        assert!(index.manifest(&digest(1)).is_none(), "a layer is not a manifest");
        assert!(index.blob(&digest(4)).is_none(), "a file entry's blob is not served");
        let app = index.repository("harbor.corp:8443/team/app").unwrap();
        assert_eq!(app.tag("2.1"), Some(&digest(3)));
        assert_eq!(app.tags().collect::<Vec<_>>(), ["2.1"]);
        assert!(index
            .repository("docker.io/library/busybox")
            .unwrap()
            .tag("latest")
            .is_none());
        assert!(index.repository("docker.io/team/app").is_none());
    }

    #[test]
    fn refuses_a_tag_with_two_digests() {
        let (mut m, t) = sample();
        let d = digest(2);
        m.images.push(Image {
            name: format!("example.com/team/app:2.1@{d}"),
            digest: d,
            media_type: OCI_MANIFEST.into(),
            size: 0,
            platforms: vec![],
            source: String::new(),
        });
        assert!(Index::build(&m, &t).is_err());
    }
}
