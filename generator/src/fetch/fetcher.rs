//! The fetcher's plan phase: find where each image comes from (the cache, a local source, a
//! registry endpoint in mirror order), fetch its top-level manifest, and check it against the
//! digest asked for; small blobs (manifests, configs) are fetched and cached here. Walking an
//! image's manifests down to its layers, and downloading them, is `walk.rs`.

use std::io::{self, Read};

use bundle_format::digest::Digest;
use bundle_format::reference::Reference;

use super::cache::Cache;
use super::client::{self, Client, Repo};
use super::layout::{Found, LocalStore};
use super::manifest::{self, Descriptor, MAX_MANIFEST};
use super::{CachedBlob, FetchError, FetchedImage, Options, Platform};

/// Where an image's blobs come from.
pub(super) enum Source<'a> {
    Remote(Repo<'a>),
    Local(&'a LocalStore),
}

impl Source<'_> {
    pub(super) fn name(&self) -> String {
        match self {
            Source::Remote(repo) => format!("{}/v2/{}", repo.endpoint_name(), repo.path),
            Source::Local(store) => store.path.display().to_string(),
        }
    }

    pub(super) fn open_blob(&self, digest: &Digest) -> Result<Box<dyn Read + Send>, FetchError> {
        match self {
            Source::Remote(repo) => repo.blob(digest),
            Source::Local(store) => store.open_blob(digest),
        }
    }
}

/// A planned blob of an image.
pub(super) struct Planned {
    pub(super) digest: Digest,
    pub(super) size: u64,
    pub(super) media_type: Option<String>,
    /// Already in the cache (now or after this fetch's plan phase).
    pub(super) cached: bool,
}

/// An image whose manifests are in the cache and whose layers may still be missing.
pub(super) struct Resolved<'a> {
    pub(super) reference: Reference,
    pub(super) digest: Digest,
    pub(super) media_type: String,
    pub(super) platforms: Vec<String>,
    pub(super) blobs: Vec<Planned>,
    pub(super) source: Source<'a>,
}

impl Resolved<'_> {
    pub(super) fn finish(self, cache: &Cache) -> FetchedImage {
        let blobs: Vec<CachedBlob> = self
            .blobs
            .into_iter()
            .map(|b| CachedBlob {
                path: cache.path(&b.digest),
                digest: b.digest,
                size: b.size,
                media_type: b.media_type,
            })
            .collect();
        FetchedImage {
            reference: self.reference,
            digest: self.digest,
            media_type: self.media_type,
            size: blobs.iter().map(|b| b.size).sum(),
            platforms: self.platforms,
            blobs,
        }
    }
}

/// The top-level manifest or index of an image.
pub(super) struct Top {
    pub(super) bytes: Vec<u8>,
    pub(super) content_type: Option<String>,
    pub(super) digest: Digest,
}

pub(super) struct Fetcher<'a> {
    pub(super) opts: &'a Options,
    pub(super) platforms: Vec<Platform>,
    pub(super) cache: &'a Cache,
    pub(super) client: &'a Client,
    pub(super) locals: &'a [LocalStore],
}

impl<'a> Fetcher<'a> {
    pub(super) fn remote(&self, endpoint: client::Endpoint, reference: &Reference) -> Source<'a> {
        Source::Remote(self.client.repo(endpoint, &reference.repository, reference))
    }

    /// Find the image, fetch its manifests and configs, and list its layers.
    pub(super) fn resolve(&self, reference: &Reference) -> Result<Resolved<'a>, FetchError> {
        let endpoints = client::endpoints(reference, &self.opts.mirrors, &self.opts.insecure);
        if let Some(d) = &reference.digest {
            if let Some(bytes) = self.cache.read_small(d, MAX_MANIFEST) {
                let source = match self.locals.iter().find(|s| s.blob_size(d).is_some()) {
                    Some(s) => Source::Local(s),
                    None => self.remote(endpoints[0].clone(), reference),
                };
                return self.walk(
                    reference,
                    source,
                    Top {
                        bytes,
                        content_type: None,
                        digest: *d,
                    },
                );
            }
        }
        for store in self.locals {
            match store.find(reference) {
                Some(Found::Oci {
                    digest,
                    size,
                    media_type,
                }) => {
                    let source = Source::Local(store);
                    let desc = Descriptor {
                        media_type: media_type.clone(),
                        digest,
                        size,
                        platform: None,
                    };
                    let bytes = self.small_blob(reference, &source, &desc, "manifest", MAX_MANIFEST)?;
                    return self.walk(
                        reference,
                        source,
                        Top {
                            bytes,
                            content_type: media_type,
                            digest,
                        },
                    );
                }
                Some(Found::Docker(n)) => {
                    let (digest, bytes) = store.import_docker(n, self.cache, reference)?;
                    let top = Top {
                        bytes,
                        content_type: Some(manifest::DOCKER_MANIFEST.into()),
                        digest,
                    };
                    return self.walk(reference, Source::Local(store), top);
                }
                None => {}
            }
        }
        let mut last = None;
        let count = endpoints.len();
        for (i, endpoint) in endpoints.into_iter().enumerate() {
            let source = self.remote(endpoint, reference);
            let Source::Remote(repo) = &source else {
                unreachable!("remote() makes a Remote")
            };
            match self.top_remote(reference, repo) {
                Ok(top) => return self.walk(reference, source, top),
                Err(e @ (FetchError::NotFound { .. } | FetchError::Connect { .. })) if i + 1 < count => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("at least one endpoint"))
    }

    fn top_remote(&self, reference: &Reference, repo: &Repo<'_>) -> Result<Top, FetchError> {
        let resp = repo.manifest(&reference.manifest_ref())?;
        let digest = Digest::of(&resp.bytes);
        let mismatch = |want: Digest| FetchError::DigestMismatch {
            reference: reference.to_string(),
            what: format!(
                "manifest {} from {}/v2/{}",
                reference.manifest_ref(),
                repo.endpoint_name(),
                repo.path
            ),
            digest: want,
            actual: digest.to_string(),
        };
        if let Some(want) = reference.digest {
            if want != digest {
                return Err(mismatch(want));
            }
        }
        // Only sha256 is checked; another algorithm in the header is left alone.
        if let Some(Ok(header)) = resp
            .docker_content_digest
            .as_deref()
            .map(|h| h.trim().parse::<Digest>())
        {
            if header != digest {
                return Err(mismatch(header));
            }
        }
        Ok(Top {
            bytes: resp.bytes,
            content_type: resp.content_type,
            digest,
        })
    }

    /// A manifest or config by descriptor: from the cache, else the source; checked and cached.
    pub(super) fn small_blob(
        &self,
        reference: &Reference,
        source: &Source<'_>,
        desc: &Descriptor,
        kind: &str,
        cap: u64,
    ) -> Result<Vec<u8>, FetchError> {
        let what = format!("{kind} {}", desc.digest);
        if desc.size > cap {
            return Err(FetchError::TooLarge {
                reference: reference.to_string(),
                what,
                limit: cap,
            });
        }
        let bytes = match self.cache.read_small(&desc.digest, cap) {
            Some(b) => b,
            None => {
                let bytes = match source {
                    Source::Remote(repo) if kind == "manifest" => repo.manifest(&desc.digest.to_string())?.bytes,
                    _ => {
                        let mut out = Vec::new();
                        source
                            .open_blob(&desc.digest)?
                            .take(cap + 1)
                            .read_to_end(&mut out)
                            .map_err(|e| read_error(reference, source, &what, e))?;
                        out
                    }
                };
                let actual = Digest::of(&bytes);
                if actual != desc.digest || bytes.len() as u64 != desc.size {
                    return Err(FetchError::DigestMismatch {
                        reference: reference.to_string(),
                        what: format!("{what} from {}", source.name()),
                        digest: desc.digest,
                        actual: format!("{actual}, {} bytes of {}", bytes.len(), desc.size),
                    });
                }
                self.cache.store_bytes(&desc.digest, &bytes)?;
                bytes
            }
        };
        if bytes.len() as u64 != desc.size {
            return Err(FetchError::BadManifest {
                reference: reference.to_string(),
                what: format!("a descriptor of {what}"),
                message: format!("it gives size {}, the blob has {} bytes", desc.size, bytes.len()),
            });
        }
        Ok(bytes)
    }
}

pub(super) fn read_error(reference: &Reference, source: &Source<'_>, what: &str, e: io::Error) -> FetchError {
    match source {
        Source::Remote(repo) => FetchError::Connect {
            reference: reference.to_string(),
            endpoint: repo.endpoint_name(),
            message: format!("reading {what} failed: {e}"),
            hint: "the connection broke; try again, or check the registry's logs".into(),
        },
        Source::Local(store) => FetchError::Io {
            path: store.path.clone(),
            action: "read",
            error: e,
        },
    }
}
