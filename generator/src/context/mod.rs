//! Build-context resolution: turns the COPY and APP sources of a parsed [`Kubefile`] into
//! the list of entries the bundle will hold ([`PlannedEntry`]), by looking them up in the
//! build context directory. This module owns the Docker-like copy semantics: which files a
//! source names (globs included), where each lands in the bundle, what modes they keep,
//! how later instructions replace earlier ones, and the checks that nothing outside the
//! build context (through `..`, absolute paths or symlinks) ends up in the bundle. It only
//! reads the file system; the entries' contents are read later by whoever packs them.
//!
//! Rules:
//! - Sources are relative to the context; `*`, `?` and `[...]` match within one path
//!   component ([`glob::Pattern`], a leading `.` matched like any other character); a
//!   pattern that matches nothing is an error.
//! - A directory source copies its contents into the destination; a file source goes to
//!   `dest` when `dest` does not end in `/`, is not the root, is not a directory already
//!   planned by an earlier instruction, and the instruction resolves to exactly one
//!   source, a file, and `dest` is not one of sealer's rootfs directories ([`ROOTFS_DIRS`]:
//!   `COPY imageList manifests` is `manifests/imageList`, as in sealer) nor a directory the
//!   base bundle or a RUN made; otherwise to `dest/<basename>`. A leading `/` of `dest` is dropped,
//!   `.` and `/` are the bundle root, and `..` is an error.
//! - APP sources go to `application/apps/<name>/<basename of source>` (a directory's
//!   contents under that name).
//! - Instructions apply in file order like layers: a later entry at the same path replaces
//!   the earlier one (a non-directory replacing a directory drops what was under it, and
//!   a directory needed as a parent replaces a file or symlink). Every directory of a
//!   copied tree gets an entry, and so does every missing parent (mode 0o755).
//! - Modes are the permission bits (`mode & 0o777`) of the source.
//! - Symlinks given as sources are followed when their target is inside the context;
//!   symlinks inside a copied directory are kept as symlinks when their target is
//!   relative and, resolved lexically from the link's directory, stays inside the copied
//!   tree. Sockets, fifos and devices are errors.
//!
//! The result is sorted by destination path (bytewise).

// The errors carry the file, position, text and paths they name, so they are larger than
// clippy likes; they are built once, on the way out, so boxing them would buy nothing.
#![allow(clippy::result_large_err)]

mod error;
mod sources;
#[cfg(test)]
mod tests;
mod tree;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::kubefile::{Kubefile, Pos};

pub use error::ContextError;
use sources::Source;

/// Where APP sources go in the bundle: `application/apps/<name>/...`.
pub const APPS_DIR: &str = "application/apps";
/// The mode of directories created only because something is copied below them.
pub const IMPLICIT_DIR_MODE: u32 = 0o755;

/// What a planned entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir { mode: u32 },
    File { mode: u32, size: u64 },
    Symlink { target: String },
}

/// One entry of the bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedEntry {
    /// Relative bundle path, '/'-separated, no leading '/', no '.' or '..' components.
    pub dest: String,
    /// Absolute (canonical) path in the context: the file to read for files, the
    /// directory for copied directories, the link itself for symlinks; empty for parent
    /// directories that were created implicitly.
    pub source: PathBuf,
    pub kind: Kind,
    /// The COPY/APP keyword that produced the entry.
    pub from: Pos,
}

/// Sealer's rootfs directories: a COPY to one of these names puts its sources inside, as in
/// sealer (whose base rootfs always has them), never a file of that name.
pub const ROOTFS_DIRS: &[&str] = &[
    "manifests",
    "charts",
    "etc",
    "images",
    "rootfs",
    "bin",
    "scripts",
    "plugins",
    "applications",
];

/// The directory `sealos build` fills with images before it copies it (`COPY registry registry`).
const SEALOS_REGISTRY_DIR: &str = "registry";

/// Resolves every COPY and APP of `kubefile` against the build context directory
/// `context`, in file order, and returns the planned entries sorted by `dest`.
#[cfg(test)]
pub fn resolve(context: &Path, kubefile: &Kubefile) -> Result<Vec<PlannedEntry>, ContextError> {
    resolve_layer(context, kubefile, &Layer::default()).map_err(|mut e| e.remove(0))
}

/// Which instructions [`resolve_layer`] resolves, and what the bundle already holds.
#[derive(Default)]
pub struct Layer<'a> {
    /// Only instructions after this position (a RUN's)...
    pub after: Option<Pos>,
    /// ...and before this one (the next RUN's).
    pub before: Option<Pos>,
    /// Directories already in the bundle (from the base, or made by a RUN): a COPY whose
    /// destination is one of them copies into it.
    pub existing_dirs: Option<&'a std::collections::BTreeSet<String>>,
    /// URL sources (as written) and the files they were downloaded to.
    pub downloads: Option<&'a BTreeMap<String, PathBuf>>,
}

/// Resolves the COPY and APP instructions of one layer (see [`Layer`]) in file order, and
/// returns the planned entries sorted by `dest`, or the error of every instruction that failed.
pub fn resolve_layer(
    context: &Path,
    kubefile: &Kubefile,
    layer: &Layer,
) -> Result<Vec<PlannedEntry>, Vec<ContextError>> {
    let bad_context = |error: String| {
        vec![ContextError::BadContext {
            context: context.to_path_buf(),
            error,
        }]
    };
    let root = fs::canonicalize(context).map_err(|e| bad_context(e.to_string()))?;
    if !root.is_dir() {
        return Err(bad_context("not a directory".to_string()));
    }
    let mut r = Resolver {
        file: &kubefile.path,
        context,
        root,
        plan: BTreeMap::new(),
        existing_dirs: layer.existing_dirs,
        downloads: layer.downloads,
    };
    enum Op<'k> {
        Copy(&'k crate::kubefile::Copy),
        App(&'k crate::kubefile::App),
    }
    let in_layer = |at: Pos| layer.after.is_none_or(|a| at > a) && layer.before.is_none_or(|b| at < b);
    let mut ops: Vec<(Pos, Op)> = kubefile
        .copies
        .iter()
        .map(|c| (c.at, Op::Copy(c)))
        .chain(kubefile.apps.iter().map(|a| (a.at, Op::App(a))))
        .filter(|(at, _)| in_layer(*at))
        .collect();
    ops.sort_by_key(|(at, _)| *at);
    let mut errors = Vec::new();
    for (_, op) in ops {
        let result = match op {
            Op::Copy(c) => r.copy(c),
            Op::App(a) => r.app(a),
        };
        if let Err(e) = result {
            errors.push(e);
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(r.plan.into_values().collect())
}

struct Resolver<'a> {
    file: &'a Path,
    context: &'a Path,
    root: PathBuf,
    plan: BTreeMap<String, PlannedEntry>,
    existing_dirs: Option<&'a std::collections::BTreeSet<String>>,
    downloads: Option<&'a BTreeMap<String, PathBuf>>,
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}/{b}"),
    }
}

/// Normalises a COPY destination: returns the bundle path ("" for the root) and whether
/// it names a directory explicitly (trailing `/`, `.`, the root).
fn normalize_dest(text: &str) -> Result<(String, bool), &'static str> {
    let explicit_dir = text.ends_with('/') || text == "." || text.ends_with("/.");
    let mut parts = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("contains `..`"),
            p => parts.push(p),
        }
    }
    let dest = parts.join("/");
    let is_root = dest.is_empty();
    Ok((dest, explicit_dir || is_root))
}

impl<'a> Resolver<'a> {
    fn copy(&mut self, copy: &crate::kubefile::Copy) -> Result<(), ContextError> {
        let (dest_text, dest_pos) = &copy.dest;
        let (dest, dest_is_dir) = normalize_dest(dest_text).map_err(|problem| ContextError::BadDest {
            file: self.file.to_path_buf(),
            line: dest_pos.line,
            column: dest_pos.column,
            text: dest_text.clone(),
            problem,
        })?;
        let mut sources = Vec::new();
        for (text, pos) in &copy.sources {
            match self.sources("COPY", text, *pos) {
                Ok(found) => sources.extend(found),
                // sealos' idiom: `sealos build` fills registry/ with the images it found, and
                // the Kubefile copies it in; delivery carries images in its own cache.
                Err(ContextError::NotFound { .. }) if text.trim_matches('/') == SEALOS_REGISTRY_DIR => {
                    terminal::log(format_args!(
                        "note: {}:{}: COPY {text}: no {SEALOS_REGISTRY_DIR}/ in the build context, skipped: it is the image store `sealos build` makes; delivery carries the images it finds in its own cache",
                        self.file.display(),
                        pos
                    ));
                }
                Err(e) => return Err(e),
            }
        }
        if sources.is_empty() {
            return Ok(());
        }
        let into_dest = sources.len() == 1
            && !sources[0].is_dir
            && !dest_is_dir
            && !ROOTFS_DIRS.contains(&dest.as_str())
            && !self.existing_dirs.is_some_and(|d| d.contains(&dest))
            && !matches!(
                self.plan.get(&dest),
                Some(PlannedEntry {
                    kind: Kind::Dir { .. },
                    ..
                })
            );
        for s in &sources {
            if s.is_dir {
                self.tree(s, &dest, copy.at)?;
            } else if into_dest {
                self.file_entry(s, dest.clone(), copy.at);
            } else {
                self.file_entry(s, join(&dest, &s.name), copy.at);
            }
        }
        Ok(())
    }

    fn app(&mut self, app: &crate::kubefile::App) -> Result<(), ContextError> {
        let base = join(APPS_DIR, &app.name);
        for (text, pos) in &app.sources {
            for s in self.sources("APP", text, *pos)? {
                let dest = join(&base, &s.name);
                if s.is_dir {
                    self.tree(&s, &dest, app.at)?;
                } else {
                    self.file_entry(&s, dest, app.at);
                }
            }
        }
        Ok(())
    }

    fn file_entry(&mut self, s: &Source, dest: String, from: Pos) {
        self.insert(PlannedEntry {
            dest,
            source: s.path.clone(),
            kind: Kind::File {
                mode: s.mode,
                size: s.size,
            },
            from,
        });
    }

    /// Adds `entry`, replacing whatever was at its path (layer semantics), and makes
    /// sure every parent is a directory.
    fn insert(&mut self, entry: PlannedEntry) {
        let mut idx = 0;
        while let Some(off) = entry.dest[idx..].find('/') {
            let parent = &entry.dest[..idx + off];
            if !matches!(
                self.plan.get(parent),
                Some(PlannedEntry {
                    kind: Kind::Dir { .. },
                    ..
                })
            ) {
                self.plan.insert(
                    parent.to_string(),
                    PlannedEntry {
                        dest: parent.to_string(),
                        source: PathBuf::new(),
                        kind: Kind::Dir {
                            mode: IMPLICIT_DIR_MODE,
                        },
                        from: entry.from,
                    },
                );
            }
            idx += off + 1;
        }
        let was_dir = matches!(
            self.plan.get(&entry.dest),
            Some(PlannedEntry {
                kind: Kind::Dir { .. },
                ..
            })
        );
        if was_dir && !matches!(entry.kind, Kind::Dir { .. }) {
            let prefix = format!("{}/", entry.dest);
            let below: Vec<String> = self
                .plan
                .range(prefix.clone()..)
                .map(|(k, _)| k)
                .take_while(|k| k.starts_with(&prefix))
                .cloned()
                .collect();
            for k in below {
                self.plan.remove(&k);
            }
        }
        self.plan.insert(entry.dest.clone(), entry);
    }
}
