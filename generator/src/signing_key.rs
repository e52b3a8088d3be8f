//! The vendor's signing key: loaded from `--key`, or the per-user key created on first use.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use bundle_format::SigningKey;

use bundle_format::io::write_atomic_mode;

/// Load the key at `path`, or the per-user default key (creating it on first use).
pub fn load_or_create(path: Option<&Path>) -> Result<SigningKey> {
    match path {
        Some(p) => load(p),
        None => {
            let p = default_path()?;
            if p.exists() {
                return load(&p);
            }
            let key = SigningKey::generate("delivery signing key").context("failed to generate a signing key")?;
            let dir = p.parent().expect("the default path has a parent");
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("failed to create {}", dir.display()))?;
            write_pair(&key, &p, &p.with_extension("pub"))?;
            terminal::log(format_args!(
                "created a signing key at {} (fingerprint {}): give {} to your customers out of band, and back up the key",
                p.display(),
                key.public().fingerprint(),
                p.with_extension("pub").display()
            ));
            Ok(key)
        }
    }
}

/// Write a private key (0600) and its public line (0644), atomically.
pub fn write_pair(key: &SigningKey, private: &Path, public: &Path) -> Result<()> {
    write_atomic_mode(private, key.to_openssh().as_bytes(), 0o600)
        .with_context(|| format!("failed to write {}", private.display()))?;
    write_atomic_mode(public, key.public().to_openssh_line(key.comment()).as_bytes(), 0o644)
        .with_context(|| format!("failed to write {}", public.display()))
}

fn load(path: &Path) -> Result<SigningKey> {
    let meta = fs::metadata(path).with_context(|| format!("failed to read signing key {}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        terminal::log(format_args!(
            "warning: signing key {} is readable by other users (mode {:04o}); run: chmod 600 {}",
            path.display(),
            meta.permissions().mode() & 0o7777,
            path.display()
        ));
    }
    let text = fs::read_to_string(path).with_context(|| format!("failed to read signing key {}", path.display()))?;
    SigningKey::from_openssh(&text).with_context(|| format!("failed to load signing key {}", path.display()))
}

fn default_path() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("delivery/signing.key"));
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".config/delivery/signing.key")),
        None => bail!("no --key given and neither HOME nor XDG_CONFIG_HOME is set: pass --key FILE"),
    }
}
