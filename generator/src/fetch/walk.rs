//! Walking an image from its top-level manifest down: an index's child manifests for the wanted
//! platforms, each manifest's config and layers, every descriptor checked, manifests and configs
//! cached, layers planned; then downloading each planned layer into the cache ([`Fetcher::download`]).

use std::collections::BTreeSet;

use bundle_format::digest::Digest;
use bundle_format::reference::Reference;
use bundle_format::Progress;

use super::cache::StoreError;
use super::fetcher::{read_error, Fetcher, Planned, Resolved, Source, Top};
use super::manifest::{self, Descriptor, Parsed, Problem, MAX_CONFIG, MAX_MANIFEST};
use super::{FetchError, Platform};

impl<'a> Fetcher<'a> {
    /// Walk from the top manifest down: cache manifests and configs, plan layers.
    pub(super) fn walk(&self, reference: &Reference, source: Source<'a>, top: Top) -> Result<Resolved<'a>, FetchError> {
        let r = reference.to_string();
        let problem = |what: String, p: Problem| match p {
            Problem::Unsupported { media_type, why } => FetchError::UnsupportedMediaType {
                reference: r.clone(),
                what,
                media_type,
                why,
            },
            Problem::Invalid(message) => FetchError::BadManifest {
                reference: r.clone(),
                what,
                message,
            },
        };
        if let Some(want) = reference.digest {
            if want != top.digest {
                return Err(FetchError::DigestMismatch {
                    reference: r.clone(),
                    what: format!("manifest from {}", source.name()),
                    digest: want,
                    actual: top.digest.to_string(),
                });
            }
        }
        let top_what = format!("manifest {}", reference.manifest_ref());
        let parsed = manifest::parse(&top.bytes, top.content_type.as_deref()).map_err(|p| problem(top_what, p))?;
        self.cache.store_bytes(&top.digest, &top.bytes)?;
        let mut blobs = vec![Planned {
            digest: top.digest,
            size: top.bytes.len() as u64,
            media_type: Some(media_type_of(&parsed).to_string()),
            cached: true,
        }];
        let top_media_type = media_type_of(&parsed).to_string();
        // (config, layers, platform from the index if any)
        let mut images: Vec<(Descriptor, Vec<Descriptor>, Option<String>)> = Vec::new();
        match parsed {
            Parsed::Index { manifests, .. } => {
                let children: Vec<Option<Platform>> = manifests
                    .iter()
                    .map(|m| {
                        m.platform
                            .clone()
                            .filter(|p| p.os != "unknown" && p.architecture != "unknown")
                            .filter(|_| m.media_type.as_deref().is_none_or(manifest::is_manifest))
                    })
                    .collect();
                let mut picked: Vec<usize> = Vec::new();
                let mut missing = Vec::new();
                for p in &self.platforms {
                    match p.select(&children) {
                        Some(i) if !picked.contains(&i) => picked.push(i),
                        Some(_) => {}
                        None => missing.push(p.to_string()),
                    }
                }
                if !missing.is_empty() {
                    let mut available: Vec<String> = Vec::new();
                    for p in children.iter().flatten().map(Platform::to_string) {
                        if !available.contains(&p) {
                            available.push(p);
                        }
                    }
                    return Err(FetchError::NoPlatform {
                        reference: r,
                        wanted: missing,
                        available,
                    });
                }
                for i in picked {
                    let desc = &manifests[i];
                    let bytes = self.small_blob(reference, &source, desc, "manifest", MAX_MANIFEST)?;
                    let what = format!("manifest {}", desc.digest);
                    match manifest::parse(&bytes, desc.media_type.as_deref()).map_err(|p| problem(what.clone(), p))? {
                        Parsed::Image {
                            media_type,
                            config,
                            layers,
                        } => {
                            blobs.push(Planned {
                                digest: desc.digest,
                                size: desc.size,
                                media_type: Some(media_type),
                                cached: true,
                            });
                            images.push((config, layers, children[i].as_ref().map(Platform::to_string)));
                        }
                        Parsed::Index { media_type, .. } => {
                            return Err(FetchError::UnsupportedMediaType {
                                reference: r,
                                what,
                                media_type,
                                why: "an index nested in an index is not supported".into(),
                            })
                        }
                    }
                }
            }
            Parsed::Image { config, layers, .. } => images.push((config, layers, None)),
        }
        let mut platforms = Vec::new();
        let mut seen = BTreeSet::from([top.digest]);
        for (config, layers, platform) in images {
            let bytes = self.small_blob(reference, &source, &config, "config", MAX_CONFIG)?;
            let platform = match platform {
                Some(p) => Some(p),
                None => match manifest::config_platform(config.media_type.as_deref(), &bytes) {
                    Some(have) => {
                        if let Some(w) = self.platforms.iter().find(|w| !w.matches(&have)) {
                            return Err(FetchError::NoPlatform {
                                reference: r,
                                wanted: vec![w.to_string()],
                                available: vec![have.to_string()],
                            });
                        }
                        Some(have.to_string())
                    }
                    None => None,
                },
            };
            platforms.extend(platform);
            if seen.insert(config.digest) {
                blobs.push(Planned {
                    digest: config.digest,
                    size: config.size,
                    media_type: None,
                    cached: true,
                });
            }
            for l in layers {
                if !seen.insert(l.digest) {
                    continue;
                }
                let cached = self.cache.lookup(&l.digest, l.size).is_some()
                    && (!self.opts.verify_cached_layers || self.cache.rehash(&l.digest));
                blobs.push(Planned {
                    digest: l.digest,
                    size: l.size,
                    media_type: None,
                    cached,
                });
            }
        }
        Ok(Resolved {
            reference: reference.clone(),
            digest: top.digest,
            media_type: top_media_type,
            platforms,
            blobs,
            source,
        })
    }

    /// Stream one blob into the cache, retrying a broken connection twice.
    pub(super) fn download(
        &self,
        image: &Resolved<'_>,
        digest: &Digest,
        size: u64,
        progress: &dyn Progress,
    ) -> Result<(), FetchError> {
        let what = format!("blob {digest}");
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut reader = image.source.open_blob(digest)?;
            match self
                .cache
                .store(&mut reader, Some((digest, size)), &|n| progress.advance(n))
            {
                Ok(_) => return Ok(()),
                Err(StoreError::Mismatch {
                    actual,
                    size: got,
                    too_long,
                }) => {
                    return Err(FetchError::DigestMismatch {
                        reference: image.reference.to_string(),
                        what: format!("{what} from {}", image.source.name()),
                        digest: *digest,
                        actual: if too_long {
                            format!("more than the {size} bytes its descriptor gives")
                        } else {
                            format!("{actual}, {got} bytes of {size}")
                        },
                    })
                }
                Err(StoreError::Read(_)) if attempt < 3 => {}
                Err(StoreError::Read(e)) => return Err(read_error(&image.reference, &image.source, &what, e)),
                Err(StoreError::Write { path, source }) => {
                    return Err(FetchError::Io {
                        path,
                        action: "write the image cache",
                        error: source,
                    })
                }
            }
        }
    }
}

fn media_type_of(p: &Parsed) -> &str {
    match p {
        Parsed::Index { media_type, .. } | Parsed::Image { media_type, .. } => media_type,
    }
}
