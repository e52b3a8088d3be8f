//! One COPY or APP source resolved against the build context: a downloaded URL, or a path or
//! glob (matched one component at a time, sorted) whose every match is followed through
//! symlinks and must stay inside the context and be a file or a directory.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use super::{ContextError, Resolver};
use crate::kubefile::Pos;

/// A source after glob expansion and symlink resolution.
pub(super) struct Source<'k> {
    pub(super) instruction: &'static str,
    pub(super) text: &'k str,
    pub(super) pos: Pos,
    /// The name it was matched under (the last component; empty for the context root).
    pub(super) name: String,
    /// The canonical path, inside the context.
    pub(super) path: PathBuf,
    pub(super) is_dir: bool,
    pub(super) mode: u32,
    pub(super) size: u64,
}

fn has_glob_meta(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Lexically normalises `path` (`.` dropped, `..` pops), never above the root.
pub(super) fn lexical_normalize(path: &Path) -> PathBuf {
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

pub(super) fn mode_of(meta: &fs::Metadata) -> u32 {
    meta.permissions().mode() & 0o777
}

pub(super) fn special_kind(ft: &fs::FileType) -> &'static str {
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

impl Resolver<'_> {
    /// Expands one source (glob or plain path) into the files and directories it names.
    pub(super) fn sources<'k>(
        &self,
        instruction: &'static str,
        text: &'k str,
        pos: Pos,
    ) -> Result<Vec<Source<'k>>, ContextError> {
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
}
