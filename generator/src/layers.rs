//! The bundle's tree, layer by layer as the Kubefile builds it: the base bundle's entries, then
//! each stretch of COPY and APP instructions ([`context::resolve_layer`]), and at each RUN the
//! tree so far copied into a work directory, the command run there on the build machine, and
//! the directory read back as the new tree (sealer's meaning of RUN: it runs while the image is
//! built, and what it adds or changes is part of the image).
//!
//! RUN gets the ARGs and ENVs in its environment (over the build machine's own), `/dev/null`
//! as stdin, and stderr for its output (stdout carries `delivery images --json`). What it
//! leaves must be regular files, directories, or symlinks whose target stays inside the tree.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::fd::AsFd;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Component, Path};
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context, Result};
use bundle_format::write::{self, InputEntry};

use crate::context::{self, Kind, Layer};
use crate::discover;
use crate::kubefile::{Kubefile, Pos, Run, RunCommand};

/// Applies every COPY, APP and RUN of `kubefile` over `entries` (the base's). RUN works in
/// `scratch/run-tree`. All errors of a stretch of COPY and APP are reported together.
pub fn apply(
    context_dir: &Path,
    kubefile: &Kubefile,
    entries: &mut BTreeMap<String, InputEntry>,
    scratch: &Path,
    no_run: bool,
    downloads: &BTreeMap<String, std::path::PathBuf>,
) -> Result<()> {
    if no_run {
        if let Some(run) = kubefile.runs.first() {
            bail!(
                "{}:{}: RUN refused by --no-run: it would run `{}` on this machine while the bundle is built\n  hint: drop --no-run to allow it, or make its result part of the build context and COPY it",
                kubefile.path.display(),
                run.at,
                describe(&run.command)
            );
        }
    }
    let mut after = None;
    let tree = scratch.join("run-tree");
    for i in 0..=kubefile.runs.len() {
        let run = kubefile.runs.get(i);
        let existing_dirs: BTreeSet<String> = entries
            .iter()
            .filter(|(_, e)| matches!(e, InputEntry::Dir { .. }))
            .map(|(p, _)| p.clone())
            .collect();
        let layer = Layer {
            after,
            before: run.map(|r| r.at),
            existing_dirs: Some(&existing_dirs),
            downloads: Some(downloads),
        };
        let planned = context::resolve_layer(context_dir, kubefile, &layer).map_err(|errors| {
            let n = errors.len();
            let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
            anyhow!(
                "{}\n{n} error{} in the build context",
                text.join("\n"),
                if n == 1 { "" } else { "s" }
            )
        })?;
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
                    misplaced(kubefile, &p.source, &p.dest, p.from);
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
        let Some(run) = run else { break };
        terminal::log(format_args!(
            "warning: {}:{}: RUN `{}` runs on this machine while the bundle is built: the bundle is only as reproducible as that command (--no-run refuses RUN)",
            kubefile.path.display(),
            run.at,
            describe(&run.command)
        ));
        materialize(entries, &tree, scratch)?;
        execute(kubefile, run, &tree)?;
        *entries = read_tree(&tree, &kubefile.path, run.at)?;
        after = Some(run.at);
    }
    Ok(())
}

/// Warns when a file that image discovery would read under its own name lands under a name
/// it does not read (an image list renamed, a manifest without `.yaml`).
fn misplaced(kubefile: &Kubefile, source: &Path, dest: &str, at: Pos) {
    let src = source.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    let dst = dest.rsplit('/').next().unwrap_or(dest);
    let what = if discover::is_image_list(&src) && !discover::is_image_list(dst) {
        "an image list"
    } else if discover::is_yaml(&src) && !discover::is_yaml(dst) && !discover::is_image_list(dst) {
        "a YAML file"
    } else {
        return;
    };
    terminal::log(format_args!(
        "warning: {}:{at}: {src} looks like {what} but lands at {dest}, where image discovery does not read it\n  hint: keep its name (COPY {src} {}/), or name image lists imageList, *.images or images.txt",
        kubefile.path.display(),
        dest.rsplit_once('/').map_or(".", |(d, _)| d),
    ));
}

fn describe(command: &RunCommand) -> String {
    match command {
        RunCommand::Shell(text) => text.clone(),
        RunCommand::Exec(argv) => argv.join(" "),
    }
}

/// Makes `tree` hold exactly what `entries` say (files already in place are kept).
fn materialize(entries: &BTreeMap<String, InputEntry>, tree: &Path, scratch: &Path) -> Result<()> {
    let failed = |what: &str, path: &Path| format!("failed to {what} {} for RUN", path.display());
    fs::create_dir_all(tree).with_context(|| failed("create", tree))?;
    // Anything in the tree that the entries no longer have goes first (a later COPY may have
    // replaced a directory with a file).
    let wanted: BTreeSet<&str> = entries.keys().map(String::as_str).collect();
    for found in walkdir::WalkDir::new(tree).min_depth(1).contents_first(true) {
        let found = found.with_context(|| failed("read", tree))?;
        let rel = relative(tree, found.path());
        if !wanted.contains(rel.as_str()) {
            remove(found.path()).with_context(|| failed("remove", found.path()))?;
        }
    }
    for (path, entry) in entries {
        let dest = tree.join(path);
        match entry {
            InputEntry::Dir { mode, .. } => {
                if fs::symlink_metadata(&dest).is_ok_and(|m| !m.is_dir()) {
                    remove(&dest).with_context(|| failed("remove", &dest))?;
                }
                fs::create_dir_all(&dest).with_context(|| failed("create", &dest))?;
                fs::set_permissions(&dest, fs::Permissions::from_mode(*mode | 0o700))
                    .with_context(|| failed("set the mode of", &dest))?;
            }
            InputEntry::File { source, mode, .. } => {
                if *source == dest {
                    continue;
                }
                if fs::symlink_metadata(&dest).is_ok() {
                    remove(&dest).with_context(|| failed("replace", &dest))?;
                }
                // The base's unpacked files are ours (under scratch): linked, not copied, so a
                // RUN over a large base costs no copy of it. The build context's are copied: a
                // RUN must never change the vendor's own files.
                let linked = source.starts_with(scratch) && fs::hard_link(source, &dest).is_ok();
                if !linked {
                    fs::copy(source, &dest).with_context(|| format!("failed to copy {} for RUN", source.display()))?;
                }
                fs::set_permissions(&dest, fs::Permissions::from_mode(*mode))
                    .with_context(|| failed("set the mode of", &dest))?;
            }
            InputEntry::Symlink { target, .. } => {
                if fs::read_link(&dest).is_ok_and(|t| t == Path::new(target)) {
                    continue;
                }
                if fs::symlink_metadata(&dest).is_ok() {
                    remove(&dest).with_context(|| failed("replace", &dest))?;
                }
                symlink(target, &dest).with_context(|| failed("create the symlink", &dest))?;
            }
        }
    }
    Ok(())
}

fn remove(path: &Path) -> std::io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn relative(tree: &Path, path: &Path) -> String {
    path.strip_prefix(tree)
        .unwrap_or(path)
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

fn execute(kubefile: &Kubefile, run: &Run, tree: &Path) -> Result<()> {
    let mut cmd = match &run.command {
        RunCommand::Shell(text) => {
            let mut c = Command::new("sh");
            c.arg("-c").arg(text);
            c
        }
        RunCommand::Exec(argv) => {
            let mut c = Command::new(&argv[0]);
            c.args(&argv[1..]);
            c
        }
    };
    // RUN's output is a log: stdout of `delivery` carries results.
    let stderr = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .context("failed to pass stderr to RUN")?;
    cmd.current_dir(tree)
        .envs(&kubefile.args)
        .envs(&kubefile.env)
        .stdin(Stdio::null())
        .stdout(Stdio::from(stderr));
    let at = format!("{}:{}", kubefile.path.display(), run.at);
    let status = cmd
        .status()
        .with_context(|| format!("{at}: RUN `{}` could not be started", describe(&run.command)))?;
    if !status.success() {
        bail!(
            "{at}: RUN `{}` failed ({status}) in a copy of the bundle's tree at {}\n  hint: it runs on the build machine, in the bundle's tree so far, with the ARGs and ENVs in its environment",
            describe(&run.command),
            tree.display()
        );
    }
    Ok(())
}

/// The tree after a RUN, as bundle entries read from it.
fn read_tree(tree: &Path, kubefile: &Path, at: Pos) -> Result<BTreeMap<String, InputEntry>> {
    let at = format!("{}:{at}", kubefile.display());
    let mut out = BTreeMap::new();
    for found in walkdir::WalkDir::new(tree).min_depth(1).sort_by_file_name() {
        let found = found.with_context(|| format!("{at}: failed to read what RUN left in {}", tree.display()))?;
        let path = relative(tree, found.path());
        let meta = found
            .path()
            .symlink_metadata()
            .with_context(|| format!("failed to read {}", found.path().display()))?;
        let ft = meta.file_type();
        let mode = meta.permissions().mode() & 0o777;
        let entry = if ft.is_dir() {
            InputEntry::Dir {
                path: path.clone(),
                mode,
            }
        } else if ft.is_file() {
            let source = found.path().to_path_buf();
            let stored = write::looks_compressed(&source, meta.len())
                .with_context(|| format!("failed to read {}", source.display()))?;
            InputEntry::File {
                path: path.clone(),
                mode,
                source,
                size: meta.len(),
                stored,
            }
        } else if ft.is_symlink() {
            let target = fs::read_link(found.path())
                .with_context(|| format!("failed to read the symlink {}", found.path().display()))?;
            if !stays_inside(&path, &target) {
                bail!(
                    "{at}: RUN left a symlink {path} -> {} that points outside the bundle\n  hint: links in a bundle are relative and stay inside it",
                    target.display()
                );
            }
            InputEntry::Symlink {
                path: path.clone(),
                target: target.to_string_lossy().into_owned(),
            }
        } else {
            bail!(
                "{at}: RUN left {path}, which is not a file, directory or symlink\n  hint: a bundle carries only those"
            );
        };
        out.insert(path, entry);
    }
    Ok(out)
}

/// Whether the relative link `target` of the entry at `path` resolves inside the tree.
fn stays_inside(path: &str, target: &Path) -> bool {
    let mut depth = path.matches('/').count() as i64; // the link's directory
    for c in target.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_must_stay_inside() {
        assert!(stays_inside("a/b", Path::new("c")));
        assert!(stays_inside("a/b", Path::new("../x")));
        assert!(!stays_inside("a/b", Path::new("../../x")));
        assert!(!stays_inside("a", Path::new("/etc/passwd")));
    }
}
