//! Copying a directory source: every entry below it, walked in name order, becomes a planned
//! entry; symlinks are kept when their relative target stays inside the copied tree, and
//! absolute or escaping links, special files and non-UTF-8 names are errors.

use std::fs;
use std::path::{Component, Path, PathBuf};

use super::sources::{mode_of, special_kind, Source};
use super::{join, ContextError, Kind, PlannedEntry, Resolver};
use crate::kubefile::Pos;

impl Resolver<'_> {
    /// Copies the contents of the directory `s` to `dest` ("" for the root).
    pub(super) fn tree(&mut self, s: &Source, dest: &str, from: Pos) -> Result<(), ContextError> {
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
}
