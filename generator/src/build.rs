//! `delivery build`: Kubefile -> plan (every entry, where it comes from, compressed or stored)
//! -> the signed bundle, its `.sha256` and its `.sig`.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use anyhow::{anyhow, bail, Context, Result};
use bundle_format::manifest::{self, BaseRef, BundleInfo, Data, Entry};
use bundle_format::write::{self, InputEntry};
use bundle_format::{sshsig, Bundle, Trust};
use tempfile::TempDir;

use crate::cli::BuildArgs;
use crate::context::{self, Kind};
use crate::kubefile::{self, Base, Kubefile};
use crate::{atomic, signing_key};

/// Everything a build will write, decided before any byte of the bundle is.
pub struct Plan {
    pub info: BundleInfo,
    pub entries: BTreeMap<String, InputEntry>,
    /// SOURCE_DATE_EPOCH, or the newest input's mtime.
    pub created: u64,
    /// Keeps an extracted `FROM` base alive while its files are read.
    _base: Option<TempDir>,
}

pub fn run(args: &BuildArgs) -> Result<()> {
    let kubefile = load_kubefile(args)?;
    let plan = plan(args, &kubefile)?;
    if args.dry_run {
        print_plan(&plan, args.json);
        return Ok(());
    }
    let key = signing_key::load_or_create(args.key.as_deref())?;
    let stub_path = stub_path(args)?;
    let stub =
        fs::read(&stub_path).with_context(|| format!("failed to read the installer stub {}", stub_path.display()))?;

    let out = &args.output;
    let tmp = atomic::temp_beside(out)?;
    let entries: Vec<InputEntry> = plan.entries.into_values().collect();
    let opts = write::Options {
        mtime: plan.created,
        ..write::Options::default()
    };
    let reporter = terminal::Reporter::new(false);
    let contents = write::Contents {
        info: &plan.info,
        entries: &entries,
        blobs: &[],
        images: &[],
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
    atomic::sync_dir(out.parent().unwrap_or(Path::new(".")))?;

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

fn sidecar(out: &Path, ext: &str) -> PathBuf {
    let mut p = out.as_os_str().to_owned();
    p.push(ext);
    PathBuf::from(p)
}

fn load_kubefile(args: &BuildArgs) -> Result<Kubefile> {
    let path = &args.kubefile;
    let text = fs::read_to_string(path).with_context(|| format!("failed to read Kubefile {}", path.display()))?;
    let mut build_args = BTreeMap::new();
    for a in &args.build_args {
        let (k, v) = a
            .split_once('=')
            .ok_or_else(|| anyhow!("--build-arg `{a}` is not NAME=VALUE"))?;
        build_args.insert(k.to_string(), v.to_string());
    }
    let kubefile = kubefile::parse(path, &text, &build_args, &args.arch).map_err(|errors| {
        let n = errors.len();
        anyhow!(
            "{errors}\n{n} error{} in {}",
            if n == 1 { "" } else { "s" },
            path.display()
        )
    })?;
    for w in &kubefile.warnings {
        terminal::log(format_args!("warning: {w}"));
    }
    Ok(kubefile)
}

/// Decide every entry of the bundle: the base's, then each COPY and APP over it.
pub fn plan(args: &BuildArgs, kubefile: &Kubefile) -> Result<Plan> {
    let kubefile_dir = match args.kubefile.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let context_dir = args.context.clone().unwrap_or_else(|| kubefile_dir.clone());
    let mut entries = BTreeMap::new();
    let mut bases = Vec::new();
    let mut newest = mtime(&args.kubefile)?;

    let base_dir = match &kubefile.base {
        Base::Scratch => None,
        Base::Bundle { path, at } => {
            let base_path = kubefile_dir.join(path);
            let where_ = format!("{}:{at}", args.kubefile.display());
            let key = args.base_key.as_deref().ok_or_else(|| {
                anyhow!("{where_}: FROM {path} needs --base-key: the public key that signed the base bundle")
            })?;
            let trust = Trust::from_args(Some(key), None)?;
            let failed = || format!("{where_}: base bundle {} failed verification", base_path.display());
            let verified = Bundle::open(&base_path)
                .with_context(failed)?
                .verify_signature(&trust)
                .with_context(failed)?;
            let dir = tempfile::Builder::new()
                .prefix(".delivery-base.")
                .tempdir_in(
                    args.output
                        .parent()
                        .filter(|p| !p.as_os_str().is_empty())
                        .unwrap_or(Path::new(".")),
                )
                .context("failed to create a directory for the base bundle")?;
            let tree = dir.path().join("tree");
            let reporter = terminal::Reporter::new(false);
            verified
                .extract(&tree, false, &reporter)
                .with_context(|| format!("{where_}: failed to unpack base bundle {}", base_path.display()))?;
            reporter.finish();
            let m = verified.manifest();
            bases.extend(m.bundle.bases.iter().cloned());
            bases.push(BaseRef {
                name: m.bundle.name.clone(),
                version: m.bundle.version.clone(),
                key: verified.signer().fingerprint().to_string(),
            });
            newest = newest.max(mtime(&base_path)?);
            for e in &m.entries {
                let entry = match e {
                    Entry::Dir { path, mode } => InputEntry::Dir {
                        path: path.clone(),
                        mode: *mode,
                    },
                    Entry::Symlink { path, target } => InputEntry::Symlink {
                        path: path.clone(),
                        target: target.clone(),
                    },
                    Entry::File {
                        path, mode, size, data, ..
                    } => InputEntry::File {
                        path: path.clone(),
                        mode: *mode,
                        source: tree.join(path),
                        size: *size,
                        stored: matches!(data, Data::Blob(_)),
                    },
                };
                entries.insert(e.path().to_string(), entry);
            }
            Some(dir)
        }
    };

    let planned = context::resolve(&context_dir, kubefile).map_err(|e| anyhow!("{e}"))?;
    for p in planned {
        let entry = match p.kind {
            // An implicit parent (no source) must not override a directory the base defines.
            Kind::Dir { .. } if p.source.as_os_str().is_empty() && entries.contains_key(&p.dest) => continue,
            Kind::Dir { mode } => InputEntry::Dir {
                path: p.dest.clone(),
                mode,
            },
            Kind::Symlink { target } => InputEntry::Symlink {
                path: p.dest.clone(),
                target,
            },
            Kind::File { mode, size } => {
                newest = newest.max(mtime(&p.source)?);
                let stored = write::looks_compressed(&p.source, size)
                    .with_context(|| format!("failed to read {}", p.source.display()))?;
                InputEntry::File {
                    path: p.dest.clone(),
                    mode,
                    source: p.source,
                    size,
                    stored,
                }
            }
        };
        // A later layer wins; a directory over a directory keeps the children of both.
        entries.insert(p.dest, entry);
    }

    let created = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => v
            .trim()
            .parse()
            .with_context(|| format!("SOURCE_DATE_EPOCH `{v}` is not a number of seconds"))?,
        Err(_) => newest,
    };
    let (name, version) = name_and_version(args, kubefile, &context_dir)?;
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
            }
        })
        .collect();
    let launch = kubefile.launch.as_ref().map(|l| match l {
        kubefile::Launch::Apps { names, .. } => manifest::Launch::Apps(names.clone()),
        kubefile::Launch::Cmds { cmds, .. } => manifest::Launch::Cmds(cmds.clone()),
    });
    let info = BundleInfo {
        name,
        version,
        created: manifest::rfc3339(created),
        labels: kubefile.labels.clone(),
        env: kubefile.env.clone(),
        apps,
        launch,
        bases,
    };
    Ok(Plan {
        info,
        entries,
        created,
        _base: base_dir,
    })
}

fn name_and_version(args: &BuildArgs, kubefile: &Kubefile, context_dir: &Path) -> Result<(String, String)> {
    if let Some(tag) = &args.tag {
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
}
