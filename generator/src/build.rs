//! `delivery build`: Kubefile -> plan (every entry, where it comes from, compressed or stored)
//! -> the signed bundle, its `.sha256` and its `.sig`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use anyhow::{anyhow, bail, Context, Result};
use bundle_format::manifest::{self, BundleInfo, Image};
use bundle_format::reference::Reference;
use bundle_format::sshsig;
use bundle_format::write::{self, InputBlob, InputEntry};
use tempfile::TempDir;

use crate::cli::{BuildArgs, FetchArgs, KubefileArgs};
use crate::context;
use crate::discover::{self, Found};
use crate::kubefile::{self, Base, Kubefile};
use crate::{atomic, base, base_store, download, fetch, layers, signing_key};

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

pub fn run(args: &BuildArgs) -> Result<()> {
    let kubefile = load_kubefile(&args.input)?;
    let plan = plan(
        &args.input,
        &kubefile,
        output_dir(&args.output),
        args.tag.as_deref(),
        false,
    )?;
    if args.dry_run {
        print_plan(&plan, args.json);
        return Ok(());
    }
    let (images, blobs) = fetch_images(&plan, &args.fetch)?;
    let key = signing_key::load_or_create(args.key.as_deref())?;
    let stub_path = stub_path(args)?;
    let stub =
        fs::read(&stub_path).with_context(|| format!("failed to read the installer stub {}", stub_path.display()))?;

    let out = &args.output;
    let tmp = atomic::temp_beside(out)?;
    let entries: Vec<InputEntry> = plan.entries.into_values().collect();
    let opts = write::Options {
        mtime: plan.created,
        level: args.level,
        ..write::Options::default()
    };
    let reporter = terminal::Reporter::new(false);
    let contents = write::Contents {
        info: &plan.info,
        entries: &entries,
        blobs: &blobs,
        images: &images,
    };
    let summary = write::write_bundle(tmp.as_file(), &stub, &contents, &key, &opts, &reporter)
        .with_context(|| format!("failed to build {}", out.display()))?;
    reporter.finish();

    let file_name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let sha_line = format!("{}  {file_name}\n", summary.sha256.hex());
    let signature = sshsig::sign_sha256(&key, sshsig::NAMESPACE, &summary.sha256.0);
    atomic::commit(tmp, out, 0o755)?;
    atomic::write(&sidecar(out, ".sha256"), sha_line.as_bytes(), 0o644)?;
    atomic::write(&sidecar(out, ".sig"), signature.as_bytes(), 0o644)?;
    atomic::sync_dir(output_dir(out))?;

    println!(
        "{} {} {}: {} entries, {} ({} compressed stream from {}, {} stored in {} blobs), signed by {}",
        out.display(),
        plan.info.name,
        plan.info.version,
        summary.entries,
        terminal::bytes(summary.total_len),
        terminal::bytes(summary.stream_len),
        terminal::bytes(summary.raw_stream_len),
        terminal::bytes(summary.blobs_len),
        summary.blobs,
        key.public().fingerprint()
    );
    println!("{}", sha_line.trim_end());
    Ok(())
}

/// The directory of `out` (where temporary files go, on the same file system).
pub(crate) fn output_dir(out: &Path) -> &Path {
    match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

fn sidecar(out: &Path, ext: &str) -> PathBuf {
    let mut p = out.as_os_str().to_owned();
    p.push(ext);
    PathBuf::from(p)
}

/// The Kubefile's directory, and the build context (`--context`, else that directory).
fn dirs(args: &KubefileArgs) -> (PathBuf, PathBuf) {
    let kubefile_dir = match args.kubefile.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let context_dir = args.context.clone().unwrap_or_else(|| kubefile_dir.clone());
    (kubefile_dir, context_dir)
}

pub(crate) fn load_kubefile(args: &KubefileArgs) -> Result<Kubefile> {
    let path = &args.kubefile;
    // Read at most one byte past the limit: a huge file is refused by the parser, not slurped.
    let mut bytes = Vec::new();
    fs::File::open(path)
        .and_then(|f| f.take(kubefile::MAX_KUBEFILE_BYTES as u64 + 1).read_to_end(&mut bytes))
        .with_context(|| format!("failed to read Kubefile {}", path.display()))?;
    if bytes.len() > kubefile::MAX_KUBEFILE_BYTES {
        return Err(kubefile::too_large(path).into());
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = valid.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(&valid[line_start..]).chars().count() + 1;
        anyhow!(
            "{}:{line}:{column}: the Kubefile is not UTF-8 text\n  hint: save it as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)",
            path.display()
        )
    })?;
    let mut build_args = BTreeMap::new();
    for a in &args.build_args {
        let (k, v) = a
            .split_once('=')
            .ok_or_else(|| anyhow!("--build-arg `{a}` is not NAME=VALUE"))?;
        build_args.insert(k.to_string(), v.to_string());
    }
    let (kubefile, errors) = kubefile::parse_partial(path, &text, &build_args, &args.arch);
    if !errors.is_empty() {
        // The COPY and APP sources of what did parse are checked too: every problem at once.
        let (_, context_dir) = dirs(args);
        let mut local = kubefile.clone();
        for c in &mut local.copies {
            c.sources.retain(|(s, _)| !download::is_remote(s));
        }
        local.copies.retain(|c| !c.sources.is_empty());
        for a in &mut local.apps {
            a.sources.retain(|(s, _)| !download::is_remote(s));
        }
        let context_errors = context::resolve_layer(&context_dir, &local, &context::Layer::default())
            .err()
            .unwrap_or_default();
        let n = errors.len() + context_errors.len();
        let mut text = errors.to_string();
        for e in &context_errors {
            text.push('\n');
            text.push_str(&e.to_string());
        }
        bail!(
            "{text}\n{n} error{} in {}",
            if n == 1 { "" } else { "s" },
            path.display()
        );
    }
    for w in &kubefile.warnings {
        terminal::log(format_args!("warning: {w}"));
    }
    Ok(kubefile)
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

/// Every image the bundle's files name, less those ignored and those the base already carries.
fn wanted_images(
    entries: &BTreeMap<String, InputEntry>,
    ignore: &[String],
    base_images: &[Image],
    render: &discover::RenderOptions,
) -> Result<Vec<Found>> {
    let ignore = ignore
        .iter()
        .map(|r| {
            r.parse::<Reference>()
                .with_context(|| format!("--ignore-image `{r}` is not an image reference"))
        })
        .collect::<Result<Vec<_>>>()?;
    let files: Vec<(String, PathBuf)> = entries
        .values()
        .filter_map(|e| match e {
            InputEntry::File { path, source, .. } => Some((path.clone(), source.clone())),
            _ => None,
        })
        .collect();
    let found = discover::discover_with(&files, &ignore, render).map_err(|errors| {
        let n = errors.len();
        let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        anyhow!(
            "{}\nimage discovery failed: {n} error{}",
            text.join("\n"),
            if n == 1 { "" } else { "s" }
        )
    })?;
    for w in &found.warnings {
        terminal::log(format_args!("warning: {w}"));
    }
    if found.images.is_empty() {
        // The silent loss to avoid: a bundle with manifests or charts that carries no image
        // fails at the customer's site with pull errors.
        let carriers: Vec<&str> = files
            .iter()
            .map(|(p, _)| p.as_str())
            .filter(|p| {
                let name = p.rsplit('/').next().unwrap_or(p);
                discover::is_yaml(name)
                    || discover::is_image_list(name)
                    || name.ends_with(".tgz")
                    || name.ends_with(".tar.gz")
            })
            .collect();
        if !carriers.is_empty() {
            terminal::log(format_args!(
                "WARNING: the bundle carries {} YAML, chart or image list file(s) ({}{}) but none of them names a container image: nothing will be served to the cluster\n  hint: check `delivery images` and the warnings above; name image lists imageList, *.images or images.txt",
                carriers.len(),
                carriers.iter().take(3).copied().collect::<Vec<_>>().join(", "),
                if carriers.len() > 3 { ", ..." } else { "" }
            ));
        }
    }
    let carried: BTreeSet<&str> = base_images.iter().map(|i| i.name.as_str()).collect();
    Ok(found
        .images
        .into_iter()
        .filter(|f| !carried.contains(f.reference.to_string().as_str()))
        .collect())
}

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
        let auths = fetch::Auths::load(path).map_err(|e| anyhow!("{e}"))?;
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
fn fetch_images(plan: &Plan, args: &FetchArgs) -> Result<(Vec<Image>, Vec<InputBlob>)> {
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

fn stub_path(args: &BuildArgs) -> Result<PathBuf> {
    if let Some(p) = &args.stub {
        return Ok(p.clone());
    }
    let exe = std::env::current_exe().context("failed to locate the delivery executable")?;
    let beside = exe.with_file_name("installer-stub");
    if beside.exists() {
        return Ok(beside);
    }
    bail!(
        "no installer stub found at {}: pass --stub FILE (or set DELIVERY_STUB), e.g. the installer-stub built by `cargo zigbuild --release --target x86_64-unknown-linux-gnu.2.17`",
        beside.display()
    )
}

fn print_plan(plan: &Plan, json: bool) {
    let mut out = std::io::stdout().lock();
    if json {
        let _ = writeln!(out, "{}", serde_json::json!({"type": "bundle", "data": plan.info}));
    } else {
        let _ = writeln!(
            out,
            "bundle {} {} created {}",
            plan.info.name, plan.info.version, plan.info.created
        );
    }
    for e in plan.entries.values() {
        let (kind, size, from, storage) = match e {
            InputEntry::Dir { .. } => ("dir", 0, String::new(), ""),
            InputEntry::Symlink { target, .. } => ("symlink", 0, target.clone(), ""),
            InputEntry::File {
                source, size, stored, ..
            } => (
                "file",
                *size,
                source.display().to_string(),
                if *stored { "stored" } else { "compressed" },
            ),
        };
        if json {
            let data =
                serde_json::json!({"path": e.path(), "type": kind, "size": size, "from": from, "storage": storage});
            let _ = writeln!(out, "{}", serde_json::json!({"type": "entry", "data": data}));
        } else {
            let _ = writeln!(out, "{kind:7} {storage:10} {size:>12} {} <- {from}", e.path());
        }
    }
    print_images(&mut out, plan, json);
}

/// The images of a plan: carried from the base, then found in the bundle's files.
pub(crate) fn print_images(out: &mut impl Write, plan: &Plan, json: bool) {
    for image in &plan.base_images {
        print_image(out, json, &image.name, &format!("base bundle ({})", image.source), true);
    }
    for f in &plan.wanted {
        print_image(
            out,
            json,
            &f.reference.to_string(),
            &format!("{}:{}", f.file, f.line),
            false,
        );
    }
}

/// One image line of a plan or of `delivery images`.
pub(crate) fn print_image(out: &mut impl Write, json: bool, reference: &str, source: &str, from_base: bool) {
    if json {
        let data = serde_json::json!({"reference": reference, "source": source, "from_base": from_base});
        let _ = writeln!(out, "{}", serde_json::json!({"type": "image", "data": data}));
    } else {
        let _ = writeln!(out, "image   {reference}  <- {source}");
    }
}
