//! The plan of a build, decided before any byte of the bundle is written: every entry (the
//! `FROM` base's, then each COPY, APP and RUN over it), the bundle's name, version, creation
//! time, apps and launch, and the images it must carry.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::UNIX_EPOCH;

use anyhow::{anyhow, bail, Context, Result};
use bundle_format::manifest::{self, BundleInfo, Image};
use bundle_format::write::{InputBlob, InputEntry};
use tempfile::TempDir;

use super::input::dirs;
use super::wanted::wanted_images;
use crate::cli::KubefileArgs;
use crate::discover::{self, Found};
use crate::kubefile::{self, Base, Kubefile};
use crate::{base, base_store, download, layers};

/// Everything a build will write, decided before any byte of the bundle is.
pub(crate) struct Plan {
    pub info: BundleInfo,
    pub entries: BTreeMap<String, InputEntry>,
    /// SOURCE_DATE_EPOCH, or the newest input's mtime.
    pub created: u64,
    /// Images the bundle's files name that the base does not already carry, with their source.
    pub wanted: Vec<Found>,
    /// Images carried over from a `FROM` base bundle, and their blobs (read from the base file).
    pub base_images: Vec<Image>,
    pub base_blobs: Vec<InputBlob>,
    /// Keeps an extracted `FROM` base alive while its files are read.
    _base: Option<TempDir>,
}

/// Decide every entry of the bundle (the base's, then each COPY and APP over it) and every
/// image it must carry. `scratch` holds an unpacked base while the bundle is written.
/// With `allow_unresolved_base` (`delivery images`), a `FROM` name that resolves to nothing is a
/// warning and the plan holds only the Kubefile's own files and images.
pub(crate) fn plan(
    args: &KubefileArgs,
    kubefile: &Kubefile,
    scratch: &Path,
    tag: Option<&str>,
    allow_unresolved_base: bool,
) -> Result<Plan> {
    let (kubefile_dir, context_dir) = dirs(args);
    let mut entries = BTreeMap::new();
    let mut newest = mtime(&args.kubefile)?;

    let mut base_error = None;
    let base = match &kubefile.base {
        Base::Scratch => None,
        Base::Bundle { path: text, at } => match resolve_base(args, &kubefile_dir, text, *at, &kubefile.path)? {
            Ok(resolved) => {
                newest = newest.max(mtime(&resolved.path)?);
                let key = args.base_key.as_deref().or(resolved.key.as_deref());
                let b = base::load(&resolved.path, key, &args.kubefile, *at, scratch)?;
                for e in &b.entries {
                    entries.insert(e.path().to_string(), e.clone());
                }
                Some(b)
            }
            Err(e) if allow_unresolved_base => {
                terminal::log(format_args!(
                    "warning: {e:#}
warning: the images of base `{text}` are missing from this list: only the Kubefile's own are listed"
                ));
                None
            }
            Err(e) => {
                base_error = Some(e);
                None
            }
        },
    };
    check_kube_version(kubefile, base.as_ref())?;
    // Charts render with the cluster's Kubernetes version when the base says it.
    let kube_version = base.as_ref().and_then(|b| b.kubernetes_version());

    // Every COPY, APP and RUN over the base; errors of the base and of the context together.
    let downloads = download::fetch_all(kubefile, scratch, args.require_checksums)?;
    if let Err(e) = layers::apply(
        &context_dir,
        kubefile,
        &mut entries,
        scratch,
        args.no_run,
        &downloads.files,
    ) {
        match base_error {
            Some(b) => bail!("{b:#}\n{e:#}"),
            None => return Err(e),
        }
    }
    if let Some(b) = base_error {
        return Err(b);
    }
    for e in entries.values() {
        if let InputEntry::File { source, .. } = e {
            if !source.starts_with(scratch) {
                newest = newest.max(mtime(source)?);
            }
        }
    }

    let created = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => v
            .trim()
            .parse()
            .with_context(|| format!("SOURCE_DATE_EPOCH `{v}` is not a number of seconds"))?,
        Err(_) => newest,
    };
    let (name, version) = name_and_version(tag, kubefile, &context_dir)?;
    let apps = kubefile
        .apps
        .iter()
        .map(|a| {
            let prefix = format!("application/apps/{}/", a.name);
            let paths = entries
                .iter()
                .filter(|(p, e)| p.starts_with(&prefix) && matches!(e, InputEntry::File { .. }))
                .map(|(p, _)| p.clone())
                .collect();
            manifest::App {
                name: a.name.clone(),
                paths,
                cmds: a.cmds.clone(),
                env: a.env.clone(),
            }
        })
        .collect();
    let launch = kubefile.launch.as_ref().map(|l| match l {
        kubefile::Launch::Apps { names, .. } => manifest::Launch::Apps(names.clone()),
        kubefile::Launch::Cmds { cmds, .. } => manifest::Launch::Cmds(cmds.clone()),
    });

    let (base_images, base_blobs, lineage, base_dir) = match base {
        Some(b) => (b.images, b.blobs, b.lineage, Some(b.dir)),
        None => Default::default(),
    };
    let render = discover::RenderOptions {
        chart_images: match args.chart_images.as_str() {
            "all" => discover::ChartImages::All,
            _ => discover::ChartImages::Rendered,
        },
        kube_version: kube_version.unwrap_or_else(|| discover::RenderOptions::default().kube_version),
    };
    let wanted = wanted_images(&entries, &args.ignore_images, &base_images, &render)?;
    let info = BundleInfo {
        name,
        version,
        created: manifest::rfc3339(created),
        labels: kubefile.labels.clone(),
        env: kubefile.env.clone(),
        apps,
        launch,
        bases: lineage,
        downloads: downloads.records,
    };
    Ok(Plan {
        info,
        entries,
        created,
        wanted,
        base_images,
        base_blobs,
        _base: base_dir,
    })
}

/// Where `FROM <text>` comes from: a `--base` mapping, a file at that path (relative to the
/// Kubefile), or a name in the base store. The inner error is a name that resolves to nothing.
fn resolve_base(
    args: &KubefileArgs,
    kubefile_dir: &Path,
    text: &str,
    at: kubefile::Pos,
    kubefile: &Path,
) -> Result<std::result::Result<base_store::Resolved, anyhow::Error>> {
    let mapped = base_store::parse_mappings(&args.bases)?;
    if let Some((_, file)) = mapped.iter().find(|(n, _)| n == text) {
        return Ok(Ok(base_store::Resolved {
            path: file.clone(),
            key: None,
        }));
    }
    let path = kubefile_dir.join(text);
    if path.exists() || base_store::looks_like_path(text) {
        return Ok(Ok(base_store::Resolved { path, key: None }));
    }
    let store = base_store::store_dir(args.base_store.as_deref())?;
    Ok(match base_store::find(&store, text)? {
        Some(r) => Ok(r),
        None => Err(base_store::unresolved(kubefile, at, text, &store)),
    })
}

/// KUBEVERSION against the base bundle's Kubernetes version (its `kubernetes.toml`).
fn check_kube_version(kubefile: &Kubefile, base: Option<&base::Base>) -> Result<()> {
    let Some((text, at)) = &kubefile.kube_version else {
        return Ok(());
    };
    let at = format!("{}:{at}", kubefile.path.display());
    let Some(version) = base.and_then(|b| b.kubernetes_version()) else {
        terminal::log(format_args!(
            "warning: {at}: KUBEVERSION {text} is not checked: the base bundle carries no kubernetes.toml"
        ));
        return Ok(());
    };
    let constraint = crate::kube_version::Constraint::parse(text).map_err(|e| anyhow!("{at}: KUBEVERSION {e}"))?;
    let parsed = crate::kube_version::Version::parse(&version)
        .ok_or_else(|| anyhow!("the base bundle's kubernetes.toml has version `{version}`, which is not a version"))?;
    if !constraint.matches(parsed) {
        bail!(
            "{at}: KUBEVERSION {text} does not admit the base bundle's Kubernetes {version}\n  hint: build on a base whose Kubernetes version the constraint admits, or widen the constraint"
        );
    }
    Ok(())
}

fn name_and_version(tag: Option<&str>, kubefile: &Kubefile, context_dir: &Path) -> Result<(String, String)> {
    if let Some(tag) = tag {
        let (n, v) = tag.split_once(':').unwrap_or((tag, "latest"));
        if n.is_empty() || v.is_empty() {
            bail!("--tag `{tag}` must be NAME or NAME:VERSION");
        }
        return Ok((n.to_string(), v.to_string()));
    }
    let dir_name = fs::canonicalize(context_dir)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "bundle".into());
    let name = kubefile.labels.get("name").cloned().unwrap_or(dir_name);
    let version = kubefile
        .labels
        .get("version")
        .cloned()
        .unwrap_or_else(|| "latest".into());
    Ok((name, version))
}

fn mtime(path: &Path) -> Result<u64> {
    let m = fs::symlink_metadata(path).with_context(|| format!("failed to read {}", path.display()))?;
    Ok(m.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs()))
}
