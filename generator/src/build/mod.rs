//! `delivery build`: Kubefile -> plan (every entry, where it comes from, compressed or stored)
//! -> the signed bundle, its `.sha256` and its `.sig`.
//!
//! Here: [`run`], which walks the plan and writes the files. Reading the Kubefile is
//! `input.rs`, the plan `plan.rs` (the images it names `wanted.rs`), fetching them
//! `fetch_images.rs`, printing a plan `print.rs`, and the installer stub that leads the bundle
//! `stub.rs` (with the ELF reader that checks it, `elf.rs`).

mod elf;
mod fetch_images;
mod input;
mod plan;
mod print;
mod stub;
mod wanted;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bundle_format::io::{write_atomic_mode, AtomicFile};
use bundle_format::sshsig;
use bundle_format::write::{self, InputEntry};

use crate::cli::BuildArgs;
use crate::signing_key;

pub(crate) use input::load_kubefile;
pub(crate) use plan::{plan, Plan};
pub(crate) use print::print_images;

pub fn run(args: &BuildArgs) -> Result<()> {
    let kubefile = input::load_kubefile(&args.input)?;
    let plan = plan(
        &args.input,
        &kubefile,
        output_dir(&args.output),
        args.tag.as_deref(),
        false,
    )?;
    if args.dry_run {
        print::print_plan(&plan, args.json);
        return Ok(());
    }
    // Before fetching images (minutes): an unportable stub is refused at once.
    let stub = stub::load(args)?;
    let (images, blobs) = fetch_images::fetch_images(&plan, &args.fetch)?;
    let key = signing_key::load_or_create(args.key.as_deref())?;

    let out = &args.output;
    let tmp = AtomicFile::beside(out)
        .with_context(|| format!("failed to create a temporary file beside {}", out.display()))?;
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
    tmp.commit(out, 0o755)
        .with_context(|| format!("failed to write {}", out.display()))?;
    for (suffix, text) in [(".sha256", &sha_line), (".sig", &signature)] {
        let path = sidecar(out, suffix);
        write_atomic_mode(&path, text.as_bytes(), 0o644)
            .with_context(|| format!("failed to write {}", path.display()))?;
    }

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
