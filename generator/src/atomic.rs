//! Files that appear whole or not at all: written under a temporary name in the same
//! directory, synced, then renamed.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result};
use tempfile::NamedTempFile;

/// A temporary file beside `dest`, to be [`commit`]ted to it.
pub fn temp_beside(dest: &Path) -> Result<NamedTempFile> {
    let dir = parent_dir(dest);
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .with_context(|| format!("failed to create a temporary file in {}", dir.display()))
}

/// Sync `tmp`, give it `mode`, and rename it to `dest`.
pub fn commit(tmp: NamedTempFile, dest: &Path, mode: u32) -> Result<()> {
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("failed to write {}", dest.display()))?;
    tmp.persist(dest)
        .with_context(|| format!("failed to rename the temporary file to {}", dest.display()))?;
    Ok(())
}

/// Write `bytes` to `dest` atomically with `mode`.
pub fn write(dest: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut tmp = temp_beside(dest)?;
    tmp.write_all(bytes)
        .with_context(|| format!("failed to write {}", dest.display()))?;
    commit(tmp, dest, mode)
}

/// Make the renames in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(parent_dir_or_self(dir))
        .and_then(|d| d.sync_all())
        .with_context(|| format!("failed to sync directory {}", dir.display()))
}

fn parent_dir(p: &Path) -> &Path {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

fn parent_dir_or_self(p: &Path) -> &Path {
    if p.as_os_str().is_empty() {
        Path::new(".")
    } else {
        p
    }
}
