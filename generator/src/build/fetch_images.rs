//! Fetching the plan's images into the blob cache, with the fetcher's options from the command
//! line; each failure names the file and line that referenced the image.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};
use bundle_format::manifest::Image;
use bundle_format::reference::Reference;
use bundle_format::write::InputBlob;

use super::Plan;
use crate::cli::FetchArgs;
use crate::fetch;

/// The fetcher's options from the command line; the cache defaults to the per-user cache.
fn fetch_options(args: &FetchArgs) -> Result<fetch::Options> {
    let cache_dir = match &args.cache_dir {
        Some(d) => d.clone(),
        None => default_cache_dir()?,
    };
    let mut opts = fetch::Options::new(cache_dir);
    opts.platforms = parse_all(&args.platforms, "--platform")?;
    opts.mirrors = parse_all(&args.mirrors, "--mirror")?;
    opts.sources = parse_all(&args.image_sources, "--image-source")?;
    opts.insecure = args.insecure_registries.clone();
    opts.ca_file = args.registry_ca.clone();
    opts.jobs = usize::from(args.jobs);
    if let Some(path) = &args.registry_auth {
        let auths = fetch::Auths::load(path)?;
        for w in &auths.warnings {
            terminal::log(format_args!("warning: {w}"));
        }
        opts.auth = auths;
    }
    Ok(opts)
}

fn parse_all<T: std::str::FromStr>(values: &[String], flag: &str) -> Result<Vec<T>>
where
    T::Err: std::fmt::Display,
{
    values
        .iter()
        .map(|v| v.parse().map_err(|e| anyhow!("{flag} `{v}`: {e}")))
        .collect()
}

fn default_cache_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("delivery"));
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".cache/delivery")),
        None => bail!("neither HOME nor XDG_CACHE_HOME is set: pass --cache-dir DIR"),
    }
}

/// Fetch the wanted images into the cache; return the bundle's images and their blobs.
pub(super) fn fetch_images(plan: &Plan, args: &FetchArgs) -> Result<(Vec<Image>, Vec<InputBlob>)> {
    let mut images = plan.base_images.clone();
    let mut blobs = plan.base_blobs.clone();
    if plan.wanted.is_empty() {
        return Ok((images, blobs));
    }
    let opts = fetch_options(args)?;
    let refs: Vec<Reference> = plan.wanted.iter().map(|f| f.reference.clone()).collect();
    terminal::log(format_args!(
        "fetching {} images into {}",
        refs.len(),
        opts.cache_dir.display()
    ));
    let reporter = terminal::Reporter::new(false);
    let fetched = fetch::fetch_all(&refs, &opts, &reporter).map_err(|errors| {
        let sources: BTreeMap<String, String> = plan
            .wanted
            .iter()
            .map(|f| (f.reference.to_string(), format!("{}:{}", f.file, f.line)))
            .collect();
        let n = errors.len();
        let text: Vec<String> = errors
            .iter()
            .map(|e| match e.reference().and_then(|r| sources.get(r)) {
                Some(at) => format!("{e}\n  (referenced at {at}; pass --ignore-image to leave it out)"),
                None => e.to_string(),
            })
            .collect();
        anyhow!(
            "{}\n{n} image{} could not be fetched",
            text.join("\n"),
            if n == 1 { "" } else { "s" }
        )
    })?;
    reporter.finish();
    for (f, want) in fetched.iter().zip(&plan.wanted) {
        images.push(Image {
            name: f.reference.to_string(),
            digest: f.digest,
            media_type: f.media_type.clone(),
            size: f.size,
            platforms: f.platforms.clone(),
            source: format!("{}:{}", want.file, want.line),
        });
        blobs.extend(f.blobs.iter().map(|b| InputBlob {
            digest: b.digest,
            size: b.size,
            source: b.path.clone(),
            offset: 0,
            media_type: b.media_type.clone(),
        }));
    }
    images.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((images, blobs))
}
