//! An uncompressed tar indexed once (entry name -> offset and size of its data), so entries are
//! read in place, straight from the archive; compressed tars are refused.

use std::collections::HashMap;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use bundle_format::io::read_full;

use super::super::FetchError;
use super::{open_file, read_capped};

pub(super) struct TarIndex {
    pub(super) path: PathBuf,
    pub(super) entries: HashMap<String, (u64, u64)>,
}

impl TarIndex {
    pub(super) fn read(path: &Path) -> Result<TarIndex, FetchError> {
        let io_err = |e: io::Error| FetchError::Io {
            path: path.to_path_buf(),
            action: "read the archive",
            error: e,
        };
        let mut f = open_file(path)?;
        let mut magic = [0u8; 4];
        let got = read_full(&mut f, &mut magic).map_err(io_err)?;
        if got >= 2 && (magic[..2] == [0x1f, 0x8b] || magic == [0x28, 0xb5, 0x2f, 0xfd]) {
            return Err(FetchError::BadLocalSource {
                path: path.to_path_buf(),
                message: "compressed archives are not supported: decompress it first (docker save and skopeo write \
                          plain tar)"
                    .into(),
            });
        }
        f.seek(SeekFrom::Start(0)).map_err(io_err)?;
        let mut archive = tar::Archive::new(f);
        let mut entries = HashMap::new();
        let mut links = Vec::new();
        for e in archive.entries_with_seek().map_err(io_err)? {
            let e = e.map_err(io_err)?;
            let name = match e.path() {
                Ok(p) => normalise(&p),
                Err(_) => continue,
            };
            let Some(name) = name else { continue };
            let kind = e.header().entry_type();
            if kind.is_file() {
                entries.insert(name, (e.raw_file_position(), e.size()));
            } else if kind.is_symlink() || kind.is_hard_link() {
                if let Ok(Some(target)) = e.link_name() {
                    let base = if kind.is_symlink() {
                        Path::new(&name).parent().map(Path::to_path_buf).unwrap_or_default()
                    } else {
                        PathBuf::new()
                    };
                    if let Some(t) = normalise(&base.join(target)) {
                        links.push((name, t));
                    }
                }
            }
        }
        // Old `docker save` links identical layers to one another.
        for (name, target) in links {
            if let Some(&at) = entries.get(&target) {
                entries.insert(name, at);
            }
        }
        Ok(TarIndex {
            path: path.to_path_buf(),
            entries,
        })
    }

    pub(super) fn io(&self, e: io::Error) -> FetchError {
        FetchError::Io {
            path: self.path.clone(),
            action: "read the archive",
            error: e,
        }
    }

    pub(super) fn entry(&self, name: &str) -> Result<(u64, u64), FetchError> {
        let key = normalise(Path::new(name)).unwrap_or_default();
        self.entries
            .get(&key)
            .copied()
            .ok_or_else(|| FetchError::BadLocalSource {
                path: self.path.clone(),
                message: format!("the archive has no file {name}"),
            })
    }

    pub(super) fn open_entry(&self, name: &str) -> Result<Box<dyn Read + Send>, FetchError> {
        let (offset, size) = self.entry(name)?;
        let mut f = open_file(&self.path)?;
        f.seek(SeekFrom::Start(offset)).map_err(|e| self.io(e))?;
        Ok(Box::new(f.take(size)))
    }

    pub(super) fn read_entry(&self, name: &str, cap: u64) -> Result<Vec<u8>, FetchError> {
        read_capped(&mut self.open_entry(name)?, cap, &self.path.join(name))
    }
}

/// `a/./b` -> `a/b`; `None` for paths that leave the archive root.
pub(super) fn normalise(p: &Path) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::Prefix(_) => return None,
        }
    }
    if parts.is_empty() {
        None
    } else {
        Some(parts.join("/"))
    }
}
