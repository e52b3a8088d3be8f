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

use crate::kubefile::{Kubefile, Pos};
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

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

/// Why the build context cannot provide what the Kubefile asks for. Every variant but
/// [`ContextError::BadContext`] carries the Kubefile path, the line and column of the
/// offending source or destination token and its text as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    #[error("build context {context} is not a readable directory: {error}\n  hint: the build context must be an existing directory")]
    BadContext { context: PathBuf, error: String },
    #[error("{file}:{line}:{column}: {instruction} source `{text}` not found in build context {context}\n  hint: sources are paths relative to the build context")]
    NotFound {
        file: PathBuf,
        line: usize,
        column: usize,
        instruction: &'static str,
        text: String,
        context: PathBuf,
    },
    #[error("{file}:{line}:{column}: {instruction} source pattern `{text}` matched nothing in build context {context}\n  hint: sources are paths relative to the build context")]
    NoMatch {
        file: PathBuf,
        line: usize,
        column: usize,
        instruction: &'static str,
        text: String,
        context: PathBuf,
    },
    #[error("{file}:{line}:{column}: invalid glob pattern `{text}`: {error}\n  hint: write `[[]` for a literal `[`")]
    BadPattern {
        file: PathBuf,
        line: usize,
        column: usize,
        text: String,
        error: String,
    },
    #[error("{file}:{line}:{column}: {instruction} source `{text}` resolves to {resolved}, outside the build context {context}\n  hint: only files inside the build context can be copied; move them into it")]
    Escapes {
        file: PathBuf,
        line: usize,
        column: usize,
        instruction: &'static str,
        text: String,
        resolved: PathBuf,
        context: PathBuf,
    },
    #[error("{file}:{line}:{column}: {instruction} source `{text}` is a symlink {link} to `{target}`, which does not exist\n  hint: fix the link or copy its target")]
    BrokenSymlink {
        file: PathBuf,
        line: usize,
        column: usize,
        instruction: &'static str,
        text: String,
        link: PathBuf,
        target: String,
    },
    #[error("{file}:{line}:{column}: COPY destination `{text}` {problem}\n  hint: destinations are paths inside the bundle, relative to its root")]
    BadDest {
        file: PathBuf,
        line: usize,
        column: usize,
        text: String,
        problem: &'static str,
    },
    #[error("{file}:{line}:{column}: symlink {link} has the absolute target `{target}` (copied by {instruction} `{text}`)\n  hint: make the target relative to the link's directory and inside the copied directory, or copy the target itself")]
    AbsoluteSymlink {
        file: PathBuf,
        line: usize,
        column: usize,
        instruction: &'static str,
        text: String,
        link: PathBuf,
        target: String,
    },
    #[error("{file}:{line}:{column}: symlink {link} -> `{target}` points outside the copied directory {tree} (copied by {instruction} `{text}`)\n  hint: keep link targets inside the copied directory, or copy the target itself")]
    EscapingSymlink {
        file: PathBuf,
        line: usize,
        column: usize,
        instruction: &'static str,
        text: String,
        link: PathBuf,
        target: String,
        tree: PathBuf,
    },
    #[error("{file}:{line}:{column}: {path} is a {kind} (copied by {instruction} `{text}`)\n  hint: only regular files, directories and symlinks can be copied")]
    SpecialFile {
        file: PathBuf,
        line: usize,
        column: usize,
        instruction: &'static str,
        text: String,
        path: PathBuf,
        kind: &'static str,
    },
    #[error("{file}:{line}:{column}: path {path} is not valid UTF-8 (copied by {instruction} `{text}`)\n  hint: rename it; bundle paths must be UTF-8")]
    NonUtf8 {
        file: PathBuf,
        line: usize,
        column: usize,
        instruction: &'static str,
        text: String,
        path: PathBuf,
    },
    #[error("{file}:{line}:{column}: cannot read {path}: {error} (copied by {instruction} `{text}`)")]
    Io {
        file: PathBuf,
        line: usize,
        column: usize,
        instruction: &'static str,
        text: String,
        path: PathBuf,
        error: String,
    },
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

/// A source after glob expansion and symlink resolution.
struct Source<'k> {
    instruction: &'static str,
    text: &'k str,
    pos: Pos,
    /// The name it was matched under (the last component; empty for the context root).
    name: String,
    /// The canonical path, inside the context.
    path: PathBuf,
    is_dir: bool,
    mode: u32,
    size: u64,
}

struct Resolver<'a> {
    file: &'a Path,
    context: &'a Path,
    root: PathBuf,
    plan: BTreeMap<String, PlannedEntry>,
    existing_dirs: Option<&'a std::collections::BTreeSet<String>>,
    downloads: Option<&'a BTreeMap<String, PathBuf>>,
}

fn has_glob_meta(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}/{b}"),
    }
}

/// Lexically normalises `path` (`.` dropped, `..` pops), never above the root.
fn lexical_normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

fn mode_of(meta: &fs::Metadata) -> u32 {
    meta.permissions().mode() & 0o777
}

fn special_kind(ft: &fs::FileType) -> &'static str {
    if ft.is_socket() {
        "socket"
    } else if ft.is_fifo() {
        "fifo"
    } else if ft.is_block_device() {
        "block device"
    } else if ft.is_char_device() {
        "character device"
    } else {
        "special file"
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

    /// Expands one source (glob or plain path) into the files and directories it names.
    fn sources<'k>(&self, instruction: &'static str, text: &'k str, pos: Pos) -> Result<Vec<Source<'k>>, ContextError> {
        let at = |pos: Pos| (self.file.to_path_buf(), pos.line, pos.column);
        let escapes = |resolved: PathBuf| {
            let (file, line, column) = at(pos);
            ContextError::Escapes {
                file,
                line,
                column,
                instruction,
                text: text.to_string(),
                resolved,
                context: self.context.to_path_buf(),
            }
        };
        if let Some(path) = self.downloads.and_then(|d| d.get(text)) {
            // A URL source, downloaded before the layers are resolved (download.rs).
            let meta = fs::metadata(path).map_err(|e| {
                let (file, line, column) = at(pos);
                ContextError::Io {
                    file,
                    line,
                    column,
                    instruction,
                    text: text.to_string(),
                    path: path.clone(),
                    error: e.to_string(),
                }
            })?;
            return Ok(vec![Source {
                instruction,
                text,
                pos,
                name: path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                path: path.clone(),
                is_dir: false,
                mode: 0o644,
                size: meta.len(),
            }]);
        }
        if Path::new(text).is_absolute() {
            return Err(escapes(PathBuf::from(text)));
        }
        let mut parts: Vec<&str> = Vec::new();
        for part in text.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    if parts.pop().is_none() {
                        return Err(escapes(lexical_normalize(&self.root.join(text))));
                    }
                }
                p => parts.push(p),
            }
        }
        let is_glob = parts.iter().any(|p| has_glob_meta(p));
        // Candidates: (absolute path, the name it was matched under).
        let mut candidates: Vec<(PathBuf, String)> = vec![(self.root.clone(), String::new())];
        for part in &parts {
            if !has_glob_meta(part) {
                for c in &mut candidates {
                    c.0.push(part);
                    c.1 = part.to_string();
                }
                continue;
            }
            let pattern = glob::Pattern::new(part).map_err(|e| {
                let (file, line, column) = at(pos);
                ContextError::BadPattern {
                    file,
                    line,
                    column,
                    text: text.to_string(),
                    error: e.to_string(),
                }
            })?;
            let options = glob::MatchOptions {
                case_sensitive: true,
                require_literal_separator: true,
                require_literal_leading_dot: false,
            };
            let mut next = Vec::new();
            for (dir, _) in &candidates {
                let Ok(entries) = fs::read_dir(dir) else {
                    continue;
                };
                let mut names: Vec<String> = entries
                    .filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| pattern.matches_with(n, options))
                    .collect();
                names.sort();
                next.extend(names.into_iter().map(|n| (dir.join(&n), n)));
            }
            candidates = next;
        }
        if is_glob {
            candidates.retain(|(p, _)| fs::symlink_metadata(p).is_ok());
            if candidates.is_empty() {
                let (file, line, column) = at(pos);
                return Err(ContextError::NoMatch {
                    file,
                    line,
                    column,
                    instruction,
                    text: text.to_string(),
                    context: self.context.to_path_buf(),
                });
            }
        }
        let mut out = Vec::new();
        for (path, name) in candidates {
            let (file, line, column) = at(pos);
            let canonical = match fs::canonicalize(&path) {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    // A dangling symlink exists but cannot be followed.
                    if let Ok(target) = fs::read_link(&path) {
                        return Err(ContextError::BrokenSymlink {
                            file,
                            line,
                            column,
                            instruction,
                            text: text.to_string(),
                            link: path,
                            target: target.to_string_lossy().into_owned(),
                        });
                    }
                    return Err(ContextError::NotFound {
                        file,
                        line,
                        column,
                        instruction,
                        text: text.to_string(),
                        context: self.context.to_path_buf(),
                    });
                }
                Err(e) => {
                    return Err(ContextError::Io {
                        file,
                        line,
                        column,
                        instruction,
                        text: text.to_string(),
                        path,
                        error: e.to_string(),
                    })
                }
            };
            if !canonical.starts_with(&self.root) {
                return Err(escapes(canonical));
            }
            let meta = fs::metadata(&canonical).map_err(|e| ContextError::Io {
                file: file.clone(),
                line,
                column,
                instruction,
                text: text.to_string(),
                path: canonical.clone(),
                error: e.to_string(),
            })?;
            let ft = meta.file_type();
            if !ft.is_dir() && !ft.is_file() {
                return Err(ContextError::SpecialFile {
                    file,
                    line,
                    column,
                    instruction,
                    text: text.to_string(),
                    path: canonical,
                    kind: special_kind(&ft),
                });
            }
            out.push(Source {
                instruction,
                text,
                pos,
                name,
                path: canonical,
                is_dir: ft.is_dir(),
                mode: mode_of(&meta),
                size: meta.len(),
            });
        }
        Ok(out)
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

    /// Copies the contents of the directory `s` to `dest` ("" for the root).
    fn tree(&mut self, s: &Source, dest: &str, from: Pos) -> Result<(), ContextError> {
        let (file, line, column) = (self.file.to_path_buf(), s.pos.line, s.pos.column);
        let instruction = s.instruction;
        let text = s.text.to_string();
        let io_err = |path: PathBuf, error: String| ContextError::Io {
            file: file.clone(),
            line,
            column,
            instruction,
            text: text.clone(),
            path,
            error,
        };
        let non_utf8 = |path: PathBuf| ContextError::NonUtf8 {
            file: file.clone(),
            line,
            column,
            instruction,
            text: text.clone(),
            path,
        };
        if !dest.is_empty() {
            self.insert(PlannedEntry {
                dest: dest.to_string(),
                source: s.path.clone(),
                kind: Kind::Dir { mode: s.mode },
                from,
            });
        }
        let walk = walkdir::WalkDir::new(&s.path)
            .min_depth(1)
            .follow_links(false)
            .sort_by_file_name();
        for entry in walk {
            let entry = entry.map_err(|e| {
                let path = e.path().map_or_else(|| s.path.clone(), Path::to_path_buf);
                io_err(path, e.to_string())
            })?;
            let path = entry.path();
            let rel = path.strip_prefix(&s.path).unwrap_or(path);
            let mut rel_parts: Vec<&str> = Vec::new();
            for c in rel.components() {
                let part = c.as_os_str().to_str().ok_or_else(|| non_utf8(path.to_path_buf()))?;
                rel_parts.push(part);
            }
            let target_dest = join(dest, &rel_parts.join("/"));
            let ft = entry.file_type();
            let kind = if ft.is_symlink() {
                let target = fs::read_link(path).map_err(|e| io_err(path.to_path_buf(), e.to_string()))?;
                let target_str = target.to_str().ok_or_else(|| non_utf8(path.to_path_buf()))?.to_string();
                if target.is_absolute() {
                    return Err(ContextError::AbsoluteSymlink {
                        file: file.clone(),
                        line,
                        column,
                        instruction,
                        text: text.clone(),
                        link: path.to_path_buf(),
                        target: target_str,
                    });
                }
                // Resolve lexically from the link's directory, within the copied tree.
                let mut depth: Vec<&str> = rel_parts[..rel_parts.len().saturating_sub(1)].to_vec();
                let mut escapes = false;
                for c in target.components() {
                    match c {
                        Component::CurDir => {}
                        Component::ParentDir => {
                            if depth.pop().is_none() {
                                escapes = true;
                                break;
                            }
                        }
                        Component::Normal(n) => depth.push(n.to_str().unwrap_or_default()),
                        Component::RootDir | Component::Prefix(_) => {
                            escapes = true;
                            break;
                        }
                    }
                }
                if escapes {
                    return Err(ContextError::EscapingSymlink {
                        file: file.clone(),
                        line,
                        column,
                        instruction,
                        text: text.clone(),
                        link: path.to_path_buf(),
                        target: target_str,
                        tree: s.path.clone(),
                    });
                }
                Kind::Symlink { target: target_str }
            } else {
                let meta = entry
                    .metadata()
                    .map_err(|e| io_err(path.to_path_buf(), e.to_string()))?;
                if ft.is_dir() {
                    Kind::Dir { mode: mode_of(&meta) }
                } else if ft.is_file() {
                    Kind::File {
                        mode: mode_of(&meta),
                        size: meta.len(),
                    }
                } else {
                    return Err(ContextError::SpecialFile {
                        file: file.clone(),
                        line,
                        column,
                        instruction,
                        text: text.clone(),
                        path: path.to_path_buf(),
                        kind: special_kind(&ft),
                    });
                }
            };
            self.insert(PlannedEntry {
                dest: target_dest,
                source: path.to_path_buf(),
                kind,
                from,
            });
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubefile::parse;
    use std::os::unix::fs::symlink;

    struct Ctx {
        _tmp: tempfile::TempDir,
        /// The canonical build context directory.
        root: PathBuf,
        /// A canonical directory next to the context (outside it).
        outside: PathBuf,
    }

    fn ctx() -> Ctx {
        let tmp = tempfile::tempdir().unwrap();
        let base = fs::canonicalize(tmp.path()).unwrap();
        let root = base.join("ctx");
        let outside = base.join("outside");
        fs::create_dir(&root).unwrap();
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("secret"), "secret").unwrap();
        Ctx {
            _tmp: tmp,
            root,
            outside,
        }
    }

    impl Ctx {
        fn file(&self, rel: &str, contents: &str, mode: u32) -> PathBuf {
            let p = self.root.join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, contents).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
            p
        }
        fn dir(&self, rel: &str, mode: u32) -> PathBuf {
            let p = self.root.join(rel);
            fs::create_dir_all(&p).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
            p
        }
        fn link(&self, rel: &str, target: &str) -> PathBuf {
            let p = self.root.join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            symlink(target, &p).unwrap();
            p
        }
        fn plan(&self, kubefile: &str) -> Result<Vec<PlannedEntry>, ContextError> {
            let k = parse(Path::new("Kubefile"), kubefile, &BTreeMap::new(), "amd64").unwrap();
            resolve(&self.root, &k)
        }
        fn ok(&self, kubefile: &str) -> Vec<PlannedEntry> {
            match self.plan(kubefile) {
                Ok(p) => p,
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
        fn err(&self, kubefile: &str) -> ContextError {
            match self.plan(kubefile) {
                Ok(p) => panic!("expected an error, got {p:#?}"),
                Err(e) => e,
            }
        }
    }

    /// `dest kind` lines, e.g. `etc d755`, `etc/a f644:5`, `l s->target`.
    fn summary(entries: &[PlannedEntry]) -> Vec<String> {
        entries
            .iter()
            .map(|e| match &e.kind {
                Kind::Dir { mode } => format!("{} d{mode:o}", e.dest),
                Kind::File { mode, size } => format!("{} f{mode:o}:{size}", e.dest),
                Kind::Symlink { target } => format!("{} s->{target}", e.dest),
            })
            .collect()
    }

    fn get<'e>(entries: &'e [PlannedEntry], dest: &str) -> &'e PlannedEntry {
        entries.iter().find(|e| e.dest == dest).unwrap()
    }

    #[test]
    fn directory_copy_with_nested_files() {
        let c = ctx();
        c.file("manifests/a.yaml", "aaaaa", 0o644);
        c.file("manifests/sub/b.yaml", "bb", 0o600);
        c.file("manifests/sub/run.sh", "#!/bin/sh\n", 0o4755);
        c.dir("manifests/sub", 0o750);
        c.dir("manifests", 0o700);
        let plan = c.ok("FROM scratch\nCOPY manifests etc/manifests\n");
        assert_eq!(
            summary(&plan),
            vec![
                "etc d755",
                "etc/manifests d700",
                "etc/manifests/a.yaml f644:5",
                "etc/manifests/sub d750",
                "etc/manifests/sub/b.yaml f600:2",
                "etc/manifests/sub/run.sh f755:10",
            ]
        );
        let a = get(&plan, "etc/manifests/a.yaml");
        assert_eq!(a.source, c.root.join("manifests/a.yaml"));
        assert_eq!(a.from, Pos::new(2, 1));
        assert_eq!(get(&plan, "etc").source, PathBuf::new());
        assert_eq!(get(&plan, "etc/manifests").source, c.root.join("manifests"));
        // Trailing slash and `/.` mean the same; the root as dest copies into the root.
        let plan = c.ok("FROM scratch\nCOPY manifests/. /\n");
        assert_eq!(summary(&plan)[0], "a.yaml f644:5");
        assert_eq!(plan.len(), 4);
    }

    #[test]
    fn whole_context_copy() {
        let c = ctx();
        c.file("x", "1", 0o644);
        c.file("d/y", "22", 0o644);
        c.dir("d", 0o755);
        let plan = c.ok("FROM scratch\nCOPY . /\n");
        assert_eq!(summary(&plan), vec!["d d755", "d/y f644:2", "x f644:1"]);
    }

    #[test]
    fn file_dest_rules() {
        let c = ctx();
        c.file("a.txt", "a", 0o644);
        c.file("b.txt", "b", 0o640);
        c.dir("d", 0o755);
        c.file("d/in", "i", 0o644);
        let dests = |k: &str| -> Vec<String> { c.ok(k).into_iter().map(|e| e.dest).collect() };
        assert_eq!(dests("FROM scratch\nCOPY a.txt renamed.txt\n"), vec!["renamed.txt"]);
        assert_eq!(
            dests("FROM scratch\nCOPY a.txt x/y/renamed\n"),
            vec!["x", "x/y", "x/y/renamed"]
        );
        assert_eq!(dests("FROM scratch\nCOPY a.txt dir/\n"), vec!["dir", "dir/a.txt"]);
        assert_eq!(dests("FROM scratch\nCOPY ./a.txt .\n"), vec!["a.txt"]);
        assert_eq!(dests("FROM scratch\nCOPY a.txt /\n"), vec!["a.txt"]);
        assert_eq!(dests("FROM scratch\nCOPY a.txt /abs/x\n"), vec!["abs", "abs/x"]);
        assert_eq!(
            dests("FROM scratch\nCOPY a.txt b.txt out\n"),
            vec!["out", "out/a.txt", "out/b.txt"]
        );
        // A file next to a directory source goes inside dest too.
        assert_eq!(
            dests("FROM scratch\nCOPY a.txt d out\n"),
            vec!["out", "out/a.txt", "out/in"]
        );
        // A dest that an earlier instruction made a directory is a directory.
        assert_eq!(
            dests("FROM scratch\nCOPY d x\nCOPY a.txt x\n"),
            vec!["x", "x/a.txt", "x/in"]
        );
        match c.err("FROM scratch\nCOPY a.txt  sub/../../x\n") {
            ContextError::BadDest {
                line,
                column,
                text,
                problem,
                ..
            } => {
                assert_eq!((line, column), (2, 13));
                assert_eq!(text, "sub/../../x");
                assert_eq!(problem, "contains `..`");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn globs() {
        let c = ctx();
        c.file("a.yaml", "a", 0o644);
        c.file("b.yaml", "b", 0o644);
        c.file("c.txt", "c", 0o644);
        c.file(".hidden.yaml", "h", 0o644);
        c.file("sub/d.yaml", "d", 0o644);
        c.file("sub/e.txt", "e", 0o644);
        let dests = |k: &str| -> Vec<String> { c.ok(k).into_iter().map(|e| e.dest).collect() };
        assert_eq!(
            dests("FROM scratch\nCOPY *.yaml out/\n"),
            vec!["out", "out/.hidden.yaml", "out/a.yaml", "out/b.yaml"]
        );
        assert_eq!(dests("FROM scratch\nCOPY */*.yaml out\n"), vec!["out"]);
        assert_eq!(dests("FROM scratch\nCOPY s?b/*.yaml out/\n"), vec!["out", "out/d.yaml"]);
        assert_eq!(
            dests("FROM scratch\nCOPY [ab].yaml c.t?t out\n"),
            vec!["out", "out/a.yaml", "out/b.yaml", "out/c.txt"]
        );
        // One match, dest without a slash: the file is renamed.
        assert_eq!(dests("FROM scratch\nCOPY c.t?t renamed\n"), vec!["renamed"]);
        match c.err("FROM scratch\nCOPY a.yaml  nomatch*.x y\n") {
            ContextError::NoMatch {
                line,
                column,
                text,
                instruction,
                ..
            } => {
                assert_eq!((line, column, instruction), (2, 14, "COPY"));
                assert_eq!(text, "nomatch*.x");
            }
            other => panic!("{other:?}"),
        }
        match c.err("FROM scratch\nCOPY [ y\n") {
            ContextError::BadPattern { line, column, text, .. } => {
                assert_eq!((line, column, text.as_str()), (2, 6, "["));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn glob_dir_matches_copy_their_contents() {
        let c = ctx();
        c.file("charts/nginx/Chart.yaml", "n", 0o644);
        c.file("charts/redis/Chart.yaml", "r", 0o644);
        c.dir("charts/nginx", 0o755);
        c.dir("charts/redis", 0o755);
        let plan = c.ok("FROM scratch\nCOPY charts/* all/\n");
        // Docker semantics: each matched directory's contents go into dest.
        assert_eq!(summary(&plan), vec!["all d755", "all/Chart.yaml f644:1"]);
        assert_eq!(
            get(&plan, "all/Chart.yaml").source,
            c.root.join("charts/redis/Chart.yaml")
        );
    }

    #[test]
    fn missing_source() {
        let c = ctx();
        c.file("present", "p", 0o644);
        let e = c.err("FROM scratch\nCOPY present missing.txt dest/\n");
        assert_eq!(
            e,
            ContextError::NotFound {
                file: "Kubefile".into(),
                line: 2,
                column: 14,
                instruction: "COPY",
                text: "missing.txt".into(),
                context: c.root.clone(),
            }
        );
        assert_eq!(
            e.to_string().lines().next().unwrap(),
            format!(
                "Kubefile:2:14: COPY source `missing.txt` not found in build context {}",
                c.root.display()
            )
        );
        let e = c.err("FROM scratch\nAPP web local://nope/x.yaml\n");
        assert!(matches!(
            e,
            ContextError::NotFound {
                line: 2,
                column: 9,
                instruction: "APP",
                ..
            }
        ));
    }

    #[test]
    fn dotdot_source_escapes() {
        let c = ctx();
        c.file("sub/x", "x", 0o644);
        let e = c.err("FROM scratch\nCOPY sub/x ../outside/secret dest/\n");
        match e {
            ContextError::Escapes {
                line,
                column,
                text,
                resolved,
                ..
            } => {
                assert_eq!((line, column), (2, 12));
                assert_eq!(text, "../outside/secret");
                assert_eq!(resolved, c.outside.join("secret"));
            }
            other => panic!("{other:?}"),
        }
        // `..` that stays inside is fine.
        assert_eq!(c.ok("FROM scratch\nCOPY sub/../sub/x y\n")[0].dest, "y");
        let e = c.err("FROM scratch\nCOPY sub/../../x y\n");
        assert!(matches!(e, ContextError::Escapes { line: 2, column: 6, .. }));
    }

    #[test]
    fn absolute_source_escapes() {
        let c = ctx();
        let secret = c.outside.join("secret");
        let e = c.err(&format!("FROM scratch\nCOPY {} y\n", secret.display()));
        match &e {
            ContextError::Escapes {
                line, column, resolved, ..
            } => {
                assert_eq!((*line, *column), (2, 6));
                assert_eq!(resolved, &secret);
            }
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().contains("outside the build context"));
    }

    #[test]
    fn symlink_source_pointing_outside() {
        let c = ctx();
        c.link("escape", &c.outside.join("secret").display().to_string());
        c.link("rel-escape", "../outside");
        match c.err("FROM scratch\nCOPY escape y\n") {
            ContextError::Escapes {
                line,
                column,
                text,
                resolved,
                ..
            } => {
                assert_eq!((line, column, text.as_str()), (2, 6, "escape"));
                assert_eq!(resolved, c.outside.join("secret"));
            }
            other => panic!("{other:?}"),
        }
        // Through a symlinked directory in the middle of the path, and through a glob.
        let e = c.err("FROM scratch\nCOPY rel-escape/secret y\n");
        assert!(matches!(e, ContextError::Escapes { ref resolved, .. } if *resolved == c.outside.join("secret")));
        let e = c.err("FROM scratch\nCOPY rel-*/* y\n");
        assert!(matches!(e, ContextError::Escapes { line: 2, column: 6, .. }));
    }

    #[test]
    fn symlink_source_inside_is_followed() {
        let c = ctx();
        c.file("real/file.txt", "12345", 0o600);
        c.link("alias.txt", "real/file.txt");
        c.link("dir-alias", "real");
        let plan = c.ok("FROM scratch\nCOPY alias.txt out/\nCOPY dir-alias tree/\n");
        assert_eq!(
            summary(&plan),
            vec!["out d755", "out/alias.txt f600:5", "tree d755", "tree/file.txt f600:5"]
        );
        assert_eq!(get(&plan, "out/alias.txt").source, c.root.join("real/file.txt"));
        c.link("dangling", "nowhere");
        let e = c.err("FROM scratch\nCOPY dangling y\n");
        match e {
            ContextError::BrokenSymlink {
                line, column, target, ..
            } => {
                assert_eq!((line, column, target.as_str()), (2, 6, "nowhere"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn symlinks_inside_a_copied_directory() {
        let c = ctx();
        c.file("app/conf/real.yaml", "r", 0o644);
        c.link("app/conf/current.yaml", "real.yaml");
        c.link("app/bin/conf", "../conf");
        c.link("app/self", ".");
        c.link("app/dangling-inside", "conf/not-yet.yaml");
        let plan = c.ok("FROM scratch\nCOPY app opt/app\n");
        let s = summary(&plan);
        assert!(
            s.contains(&"opt/app/conf/current.yaml s->real.yaml".to_string()),
            "{s:#?}"
        );
        assert!(s.contains(&"opt/app/bin/conf s->../conf".to_string()), "{s:#?}");
        assert!(s.contains(&"opt/app/self s->.".to_string()), "{s:#?}");
        assert!(
            s.contains(&"opt/app/dangling-inside s->conf/not-yet.yaml".to_string()),
            "{s:#?}"
        );
        assert_eq!(get(&plan, "opt/app/self").source, c.root.join("app/self"));

        // Relative, but out of the copied tree (though still inside the context).
        c.file("shared/common.yaml", "c", 0o644);
        c.link("app2/common.yaml", "../shared/common.yaml");
        match c.err("FROM scratch\nCOPY \\\n     app2 dest/\n") {
            ContextError::EscapingSymlink {
                line,
                column,
                link,
                target,
                tree,
                ..
            } => {
                assert_eq!((line, column), (3, 6));
                assert_eq!(link, c.root.join("app2/common.yaml"));
                assert_eq!(target, "../shared/common.yaml");
                assert_eq!(tree, c.root.join("app2"));
            }
            other => panic!("{other:?}"),
        }
        c.link("app3/sub/up", "../../x");
        assert!(matches!(
            c.err("FROM scratch\nCOPY app3 d\n"),
            ContextError::EscapingSymlink { ref target, .. } if target == "../../x"
        ));
    }

    #[test]
    fn absolute_symlink_inside_a_directory() {
        let c = ctx();
        c.file("app/a", "a", 0o644);
        let abs = c.root.join("app/a").display().to_string();
        c.link("app/abs", &abs);
        let e = c.err("FROM scratch\nAPP web local://app\n");
        match &e {
            ContextError::AbsoluteSymlink {
                line,
                column,
                instruction,
                link,
                target,
                ..
            } => {
                assert_eq!((*line, *column, *instruction), (2, 9, "APP"));
                assert_eq!(link, &c.root.join("app/abs"));
                assert_eq!(target, &abs);
            }
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().starts_with("Kubefile:2:9: symlink "));
    }

    #[test]
    fn special_files_are_errors() {
        let c = ctx();
        c.dir("run", 0o755);
        let _listener = std::os::unix::net::UnixListener::bind(c.root.join("run/agent.sock")).unwrap();
        match c.err("FROM scratch\nCOPY run /run\n") {
            ContextError::SpecialFile {
                line,
                column,
                path,
                kind,
                ..
            } => {
                assert_eq!((line, column, kind), (2, 6, "socket"));
                assert_eq!(path, c.root.join("run/agent.sock"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            c.err("FROM scratch\nCOPY run/agent.sock x\n"),
            ContextError::SpecialFile { kind: "socket", .. }
        ));
    }

    #[test]
    fn apps_land_under_application_apps() {
        let c = ctx();
        c.file("apps/nginx/deploy.yaml", "d", 0o644);
        c.file("apps/nginx/svc.yaml", "s", 0o644);
        c.dir("apps/nginx", 0o755);
        c.file("values-amd64.yaml", "v", 0o644);
        let plan = c.ok("FROM scratch\nAPP nginx local://apps/nginx local://values-${ARCH}.yaml\n");
        assert_eq!(
            summary(&plan),
            vec![
                "application d755",
                "application/apps d755",
                "application/apps/nginx d755",
                "application/apps/nginx/nginx d755",
                "application/apps/nginx/nginx/deploy.yaml f644:1",
                "application/apps/nginx/nginx/svc.yaml f644:1",
                "application/apps/nginx/values-amd64.yaml f644:1",
            ]
        );
        assert!(plan.iter().all(|e| e.from == Pos::new(2, 1)));
    }

    #[test]
    fn layering_later_copy_wins() {
        let c = ctx();
        c.file("v1/conf.yaml", "one", 0o644);
        c.file("v1/keep.yaml", "keep", 0o644);
        c.file("v2/conf.yaml", "two!", 0o600);
        c.file("flat", "f", 0o644);
        c.dir("v1", 0o755);
        c.dir("v2", 0o700);
        let plan = c.ok("FROM scratch\nCOPY v1 app/\nCOPY v2/conf.yaml app/conf.yaml\n");
        assert_eq!(
            summary(&plan),
            vec!["app d755", "app/conf.yaml f600:4", "app/keep.yaml f644:4"]
        );
        let conf = get(&plan, "app/conf.yaml");
        assert_eq!(
            (conf.source.clone(), conf.from),
            (c.root.join("v2/conf.yaml"), Pos::new(3, 1))
        );
        // A directory over a directory merges, and its mode wins.
        let plan = c.ok("FROM scratch\nCOPY v1 app/\nCOPY v2 app/\n");
        assert_eq!(
            summary(&plan),
            vec!["app d700", "app/conf.yaml f600:4", "app/keep.yaml f644:4"]
        );
        // A file (or symlink) over a directory drops what was under it; a directory needed
        // as a parent replaces a file.
        c.file("t1/sub/a", "a", 0o644);
        c.file("t1/sub/b", "b", 0o644);
        c.file("t2/sub", "now a file", 0o644);
        c.link("t3/sub", "elsewhere");
        let plan = c.ok("FROM scratch\nCOPY t1 app/\nCOPY t2 app/\nCOPY flat x\nCOPY flat x/y\n");
        assert_eq!(
            summary(&plan),
            vec!["app d755", "app/sub f644:10", "x d755", "x/y f644:1"]
        );
        assert_eq!(get(&plan, "x").source, PathBuf::new());
        let plan = c.ok("FROM scratch\nCOPY t1 app/\nCOPY t3 app/\n");
        assert_eq!(summary(&plan), vec!["app d755", "app/sub s->elsewhere"]);
        // A single file onto an existing directory goes inside it, as in Docker.
        let plan = c.ok("FROM scratch\nCOPY t1 app/\nCOPY flat app/sub\n");
        assert_eq!(
            summary(&plan),
            vec![
                "app d755",
                "app/sub d755",
                "app/sub/a f644:1",
                "app/sub/b f644:1",
                "app/sub/flat f644:1"
            ]
        );
        // APP and COPY apply in file order.
        let plan = c.ok("FROM scratch\nAPP web local://v1\nCOPY flat application/apps/web/v1/conf.yaml\n");
        assert_eq!(
            get(&plan, "application/apps/web/v1/conf.yaml").source,
            c.root.join("flat")
        );
    }

    #[test]
    fn bad_context() {
        let c = ctx();
        let k = parse(Path::new("Kubefile"), "FROM scratch\n", &BTreeMap::new(), "amd64").unwrap();
        let missing = c.root.join("nope");
        let e = resolve(&missing, &k).unwrap_err();
        assert!(matches!(e, ContextError::BadContext { ref context, .. } if *context == missing));
    }
}
