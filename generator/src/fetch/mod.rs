//! Image fetching for `delivery build`: every blob an image needs (index, manifests, configs,
//! layers), from local sources or registries, digest-checked while it streams, into a local
//! content-addressed cache that the bundle writer packs from.
//!
//! # What is fetched
//! For each reference: the top-level manifest or index; for an index (OCI index or Docker
//! manifest list), the index blob itself and the child manifest of each wanted platform
//! ([`Options::platforms`], default `linux/amd64`; every wanted platform must be present, else
//! [`FetchError::NoPlatform`] lists what the image has); then each manifest's config and
//! layers. A single-platform image whose config names another platform is refused the same
//! way. Blobs shared by several images are fetched once; downloads run on
//! [`Options::jobs`] threads; every failure is reported, not only the first.
//!
//! # Where from, in order
//! 1. The cache, for a reference by digest whose manifest is already there (no network at all
//!    when every blob is cached too). A reference by tag always asks its source what the tag
//!    points at now, so a moved tag is noticed; blobs already cached are not fetched again.
//! 2. [`Options::sources`]: OCI layout directories, `oci-archive` tars and `docker save` tars
//!    (see `layout`). An OCI layout entry matches on its `org.opencontainers.image.ref.name`
//!    (or `io.containerd.image.name`) annotation: a full name (`docker.io/library/busybox:1.36`,
//!    `busybox:1.36`) matches that image; a bare tag (`1.36`, what `skopeo copy oci:DIR:1.36`
//!    writes) matches only when the source was given a name (`busybox=DIR`). A reference by
//!    digest matches any source holding that blob. A docker-archive matches on `RepoTags`.
//! 3. The registry: `https://<registry>/v2/...` (Docker Hub is served at
//!    `registry-1.docker.io`), or the [`Options::mirrors`] configured for that registry, in
//!    order (the upstream is then never contacted). `--mirror docker.io=127.0.0.1:5000/hub`
//!    fetches `docker.io/library/nginx:1.25` from
//!    `https://127.0.0.1:5000/v2/hub/library/nginx/manifests/1.25`; the fetched image keeps
//!    its original reference. Plain HTTP only for endpoints listed, exactly as `host:port`, in
//!    [`Options::insecure`]. TLS trusts the system CA bundle plus [`Options::ca_file`].
//!
//! # Checks
//! Manifest bytes must hash to the digest asked for (by digest, or as an index's child) and
//! to `Docker-Content-Digest` when the registry sends one; manifests are capped at 4 MiB.
//! Blobs are hashed while they stream into `.incoming-*` temporary files and must match their
//! descriptor's digest and size (reading stops at the first byte too many); a mismatch deletes
//! the temporary file. Docker schema 1 and non-image artifacts are refused with
//! [`FetchError::UnsupportedMediaType`].
//!
//! # Cache layout
//! `<cache_dir>/blobs/sha256/<hex>`, each file written under a temporary name, fsynced and
//! renamed. Cached manifests and configs are re-hashed when used; cached layers are checked
//! by size only (set [`Options::verify_cached_layers`] to re-hash them too).
//!
//! # Authentication
//! Requests go out anonymous. A `401` with `WWW-Authenticate: Basic` is answered with the
//! endpoint host's credentials; with `Bearer realm=...,service=...,scope=...` a token is
//! fetched from the realm (with the host's credentials as Basic auth if configured, else
//! anonymously) and cached per (host, scope). Credentials are sent only to the endpoint's own
//! host and its token realm, never over plain HTTP unless that endpoint is `--insecure`, and
//! never appear in errors or logs. Credentials come from the `--registry-auth` file:
//!
//! ```toml
//! # auth.toml: one table per registry endpoint host[:port] (a mirror's host for mirrored
//! # images; docker.io for Docker Hub)
//! [registries."harbor.corp:8443"]
//! username = "ci"
//! password_env = "HARBOR_PASSWORD"   # read from the environment when the registry asks
//!
//! [registries."docker.io"]
//! username = "me"
//! password = "..."                   # allowed; the file should then be mode 0600
//! ```
//! Unknown keys, a missing username, both or neither of `password`/`password_env` are errors
//! reported as `file:line:column`. A file with inline passwords readable by group or others
//! loads with a warning in [`Auths::warnings`] for the caller to print.

pub mod auth;
mod cache;
pub(crate) mod client;
pub mod layout;
pub mod manifest;
pub mod platform;
#[cfg(test)]
mod real_registry;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use bundle_format::digest::Digest;
use bundle_format::reference::{is_registry, is_repository, Reference};
use bundle_format::Progress;

pub use auth::Auths;
pub use layout::LocalSource;
pub use platform::Platform;

use cache::{Cache, StoreError};
use client::{Client, Repo};
use layout::{Found, LocalStore};
use manifest::{Descriptor, Parsed, Problem, MAX_CONFIG, MAX_MANIFEST};

/// How to fetch: where the cache is, what to fetch for, from where, with which credentials.
#[derive(Debug, Clone)]
pub struct Options {
    /// Root of the blob cache (`blobs/sha256/<hex>` below it).
    pub cache_dir: PathBuf,
    /// Platforms to fetch from indexes (`--platform os/arch[/variant]`, repeatable).
    pub platforms: Vec<Platform>,
    /// Registry mirrors (`--mirror DOMAIN=HOST[:PORT][/PREFIX]`, repeatable).
    pub mirrors: Vec<Mirror>,
    /// Endpoints (`host:port`, exact match) spoken to over plain HTTP (`--insecure-registry`).
    pub insecure: Vec<String>,
    /// Credentials per registry host (`--registry-auth auth.toml`).
    pub auth: Auths,
    /// Extra CA certificates (PEM) trusted for TLS besides the system ones.
    pub ca_file: Option<PathBuf>,
    /// Parallel blob downloads.
    pub jobs: usize,
    /// Local OCI layouts and archives consulted before any registry.
    pub sources: Vec<LocalSource>,
    /// Re-hash cached layers before trusting them (off: size only; see the module doc).
    pub verify_cached_layers: bool,
}

impl Options {
    /// Defaults: `linux/amd64`, 4 jobs, no mirrors, sources, credentials or insecure endpoints.
    pub fn new(cache_dir: impl Into<PathBuf>) -> Options {
        Options {
            cache_dir: cache_dir.into(),
            platforms: vec![Platform::linux_amd64()],
            mirrors: Vec::new(),
            insecure: Vec::new(),
            auth: Auths::default(),
            ca_file: None,
            jobs: 4,
            sources: Vec::new(),
            verify_cached_layers: false,
        }
    }
}

/// `DOMAIN=HOST[:PORT][/PREFIX]`: images of registry DOMAIN are fetched from HOST under PREFIX.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    /// The upstream registry it stands in for (`docker.io`).
    pub registry: String,
    /// `host[:port]` of the mirror.
    pub host: String,
    /// Path prefix of the mirrored repositories (`dockerhub-proxy`).
    pub prefix: Option<String>,
}

impl FromStr for Mirror {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let usage = "expected DOMAIN=HOST[:PORT][/PREFIX], for example docker.io=127.0.0.1:5000/dockerhub-proxy";
        let (registry, target) = s
            .split_once('=')
            .ok_or_else(|| format!("invalid mirror `{s}`: {usage}"))?;
        if target.contains("://") {
            return Err(format!(
                "invalid mirror `{s}`: give no scheme; HTTPS is used unless the mirror's host:port is also passed \
                 to --insecure-registry"
            ));
        }
        let registry = auth::canonical_host(registry.trim()).to_string();
        if !is_registry(&registry) {
            return Err(format!(
                "invalid mirror `{s}`: `{registry}` is not a registry domain; {usage}"
            ));
        }
        let (host, prefix) = match target.split_once('/') {
            Some((h, p)) => (h, Some(p.trim_end_matches('/'))),
            None => (target, None),
        };
        if !is_registry(host) {
            return Err(format!("invalid mirror `{s}`: `{host}` is not a host[:port]; {usage}"));
        }
        let prefix = prefix.filter(|p| !p.is_empty());
        if let Some(p) = prefix {
            if !is_repository(p) {
                return Err(format!(
                    "invalid mirror `{s}`: `{p}` is not a valid repository path prefix"
                ));
            }
        }
        Ok(Mirror {
            registry,
            host: host.to_ascii_lowercase(),
            prefix: prefix.map(str::to_string),
        })
    }
}

/// An image whose every blob is in the cache.
#[derive(Debug, Clone)]
pub struct FetchedImage {
    /// The reference as asked for (not rewritten by a mirror).
    pub reference: Reference,
    /// Digest of the top-level manifest or index.
    pub digest: Digest,
    /// Media type of the top-level manifest or index.
    pub media_type: String,
    /// Every blob, top-level manifest first, then child manifests, configs and layers.
    pub blobs: Vec<CachedBlob>,
    /// The platforms fetched (`linux/amd64`); empty for a non-image artifact.
    pub platforms: Vec<String>,
    /// Total size of `blobs`.
    pub size: u64,
}

/// One blob in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedBlob {
    pub digest: Digest,
    pub size: u64,
    /// The media type, for manifests and indexes (what a registry must serve them as).
    pub media_type: Option<String>,
    pub path: PathBuf,
}

/// Why an image could not be fetched. Each names the image, where it was fetched from, and
/// what to do.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("image {reference}: {what} not found at {endpoint}: check the name and tag, and that the registry (or mirror) holds it")]
    NotFound {
        reference: String,
        endpoint: String,
        what: String,
    },
    #[error("image {reference}: {endpoint} refused access: {hint}")]
    Unauthorized {
        reference: String,
        endpoint: String,
        hint: String,
    },
    #[error("image {reference}: {what} does not match its digest {digest} (got {actual}): the source is corrupt or was tampered with; nothing was cached")]
    DigestMismatch {
        reference: String,
        /// The object and where it came from: `blob sha256:... from https://host/v2/repo`.
        what: String,
        digest: Digest,
        actual: String,
    },
    #[error("image {reference}: TLS with {endpoint} failed: {message}; {hint}")]
    Tls {
        reference: String,
        endpoint: String,
        message: String,
        hint: String,
    },
    #[error("image {reference}: cannot fetch from {endpoint}: {message}; {hint}")]
    Connect {
        reference: String,
        endpoint: String,
        message: String,
        hint: String,
    },
    #[error("image {reference} has no manifest for {}; it has {}: pick --platform from those, or an image built for the platform", .wanted.join(", "), if .available.is_empty() { "none".to_string() } else { .available.join(", ") })]
    NoPlatform {
        reference: String,
        wanted: Vec<String>,
        available: Vec<String>,
    },
    #[error("image {reference}: {what} has media type {media_type}, which is not supported: {why}")]
    UnsupportedMediaType {
        reference: String,
        what: String,
        media_type: String,
        why: String,
    },
    #[error("image {reference}: {what} is invalid: {message}")]
    BadManifest {
        reference: String,
        what: String,
        message: String,
    },
    #[error("image {reference}: {what} is larger than the {limit}-byte limit")]
    TooLarge {
        reference: String,
        what: String,
        limit: u64,
    },
    #[error("image {reference}: {endpoint} answered HTTP {status} for {what}: {message}")]
    Http {
        reference: String,
        endpoint: String,
        status: u16,
        what: String,
        message: String,
    },
    #[error("failed to {action} {}: {error}", .path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        error: io::Error,
    },
    #[error("{}:{line}:{column}: {message}", .path.display())]
    BadAuthFile {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("CA file {}: {message}", .path.display())]
    BadCaFile { path: PathBuf, message: String },
    #[error("image source {}: {message}", .path.display())]
    BadLocalSource { path: PathBuf, message: String },
}

impl FetchError {
    /// The image the error is about (its normalised full reference), if it is about one.
    pub fn reference(&self) -> Option<&str> {
        match self {
            FetchError::NotFound { reference, .. }
            | FetchError::Unauthorized { reference, .. }
            | FetchError::DigestMismatch { reference, .. }
            | FetchError::Tls { reference, .. }
            | FetchError::Connect { reference, .. }
            | FetchError::NoPlatform { reference, .. }
            | FetchError::UnsupportedMediaType { reference, .. }
            | FetchError::BadManifest { reference, .. }
            | FetchError::TooLarge { reference, .. }
            | FetchError::Http { reference, .. } => Some(reference),
            FetchError::Io { .. }
            | FetchError::BadAuthFile { .. }
            | FetchError::BadCaFile { .. }
            | FetchError::BadLocalSource { .. } => None,
        }
    }
}

/// Fetch every image of `refs` into the cache. Returns them in `refs` order, or every error.
pub fn fetch_all(
    refs: &[Reference],
    opts: &Options,
    progress: &dyn Progress,
) -> Result<Vec<FetchedImage>, Vec<FetchError>> {
    let cache = Cache::open(&opts.cache_dir).map_err(|e| vec![e])?;
    let client = Client::new(opts).map_err(|e| vec![e])?;
    let mut locals = Vec::new();
    let mut errors = Vec::new();
    for s in &opts.sources {
        match LocalStore::open(s) {
            Ok(store) => locals.push(store),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let platforms = if opts.platforms.is_empty() {
        vec![Platform::linux_amd64()]
    } else {
        opts.platforms.clone()
    };
    let fetcher = Fetcher {
        opts,
        platforms,
        cache: &cache,
        client: &client,
        locals: &locals,
    };

    // Plan: resolve every reference to its manifests (small, fetched now) and layers.
    let resolved = parallel(refs, opts.jobs, |r| fetcher.resolve(r));
    let mut pending: BTreeMap<Digest, (usize, u64)> = BTreeMap::new();
    for (i, r) in resolved.iter().enumerate() {
        if let Ok(image) = r {
            for b in image.blobs.iter().filter(|b| !b.cached) {
                pending.entry(b.digest).or_insert((i, b.size));
            }
        }
    }
    // Do: download the missing blobs, each once.
    let total = pending.values().map(|(_, s)| s).sum();
    progress.phase("fetch images", total);
    let tasks: Vec<(Digest, usize, u64)> = pending.into_iter().map(|(d, (i, s))| (d, i, s)).collect();
    let downloads = parallel(&tasks, opts.jobs, |(digest, i, size)| {
        let image = resolved[*i].as_ref().expect("only resolved images have pending blobs");
        fetcher.download(image, digest, *size, progress)
    });
    let mut errors: Vec<FetchError> = downloads.into_iter().filter_map(Result::err).collect();
    let mut images = Vec::new();
    for r in resolved {
        match r {
            Ok(image) if errors.is_empty() => images.push(image.finish(&cache)),
            Ok(_) => {}
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        cache.sync().map_err(|e| vec![e])?;
        Ok(images)
    } else {
        Err(errors)
    }
}

/// Run `f` over `items` on up to `jobs` threads; results in `items` order.
fn parallel<T: Sync, R: Send>(items: &[T], jobs: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    let workers = jobs.max(1).min(items.len());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = f(item);
                results.lock().expect("results lock poisoned")[i] = Some(r);
            });
        }
    });
    results
        .into_inner()
        .expect("results lock poisoned")
        .into_iter()
        .map(|r| r.expect("every item was run"))
        .collect()
}

/// Where an image's blobs come from.
enum Source<'a> {
    Remote(Repo<'a>),
    Local(&'a LocalStore),
}

impl Source<'_> {
    fn name(&self) -> String {
        match self {
            Source::Remote(repo) => format!("{}/v2/{}", repo.endpoint_name(), repo.path),
            Source::Local(store) => store.path.display().to_string(),
        }
    }

    fn open_blob(&self, digest: &Digest) -> Result<Box<dyn Read + Send>, FetchError> {
        match self {
            Source::Remote(repo) => repo.blob(digest),
            Source::Local(store) => store.open_blob(digest),
        }
    }
}

/// A planned blob of an image.
struct Planned {
    digest: Digest,
    size: u64,
    media_type: Option<String>,
    /// Already in the cache (now or after this fetch's plan phase).
    cached: bool,
}

/// An image whose manifests are in the cache and whose layers may still be missing.
struct Resolved<'a> {
    reference: Reference,
    digest: Digest,
    media_type: String,
    platforms: Vec<String>,
    blobs: Vec<Planned>,
    source: Source<'a>,
}

impl Resolved<'_> {
    fn finish(self, cache: &Cache) -> FetchedImage {
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
struct Top {
    bytes: Vec<u8>,
    content_type: Option<String>,
    digest: Digest,
}

struct Fetcher<'a> {
    opts: &'a Options,
    platforms: Vec<Platform>,
    cache: &'a Cache,
    client: &'a Client,
    locals: &'a [LocalStore],
}

impl<'a> Fetcher<'a> {
    fn remote(&self, endpoint: client::Endpoint, reference: &Reference) -> Source<'a> {
        Source::Remote(self.client.repo(endpoint, &reference.repository, reference))
    }

    /// Find the image, fetch its manifests and configs, and list its layers.
    fn resolve(&self, reference: &Reference) -> Result<Resolved<'a>, FetchError> {
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
    fn small_blob(
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

    /// Walk from the top manifest down: cache manifests and configs, plan layers.
    fn walk(&self, reference: &Reference, source: Source<'a>, top: Top) -> Result<Resolved<'a>, FetchError> {
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
    fn download(
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

fn read_error(reference: &Reference, source: &Source<'_>, what: &str, e: io::Error) -> FetchError {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mirrors() {
        let m: Mirror = "docker.io=127.0.0.1:5000/dockerhub-proxy".parse().unwrap();
        assert_eq!(
            m,
            Mirror {
                registry: "docker.io".into(),
                host: "127.0.0.1:5000".into(),
                prefix: Some("dockerhub-proxy".into())
            }
        );
        let m: Mirror = "index.docker.io=mirror.corp".parse().unwrap();
        assert_eq!((m.registry.as_str(), m.prefix), ("docker.io", None));
        for bad in [
            "docker.io",
            "docker.io=http://x:5000",
            "docker.io=",
            "docker.io=h/UPPER",
            "bad host=h",
        ] {
            assert!(bad.parse::<Mirror>().is_err(), "{bad}");
        }
    }

    #[test]
    fn parallel_keeps_order_and_runs_everything() {
        let items: Vec<u32> = (0..50).collect();
        assert_eq!(
            parallel(&items, 4, |x| x * 2),
            items.iter().map(|x| x * 2).collect::<Vec<_>>()
        );
        assert!(parallel(&Vec::<u32>::new(), 4, |x| *x).is_empty());
    }
}
