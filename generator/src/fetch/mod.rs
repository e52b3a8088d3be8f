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
mod error;
mod fetcher;
pub mod layout;
pub mod manifest;
mod options;
pub mod platform;
#[cfg(test)]
mod real_registry;
mod walk;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use bundle_format::digest::Digest;
use bundle_format::reference::Reference;
use bundle_format::Progress;

pub use auth::Auths;
pub use error::FetchError;
pub use layout::LocalSource;
pub use options::{Mirror, Options};
pub use platform::Platform;

use cache::Cache;
use client::Client;
use fetcher::Fetcher;
use layout::LocalStore;

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

#[cfg(test)]
mod tests {
    use super::*;

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
