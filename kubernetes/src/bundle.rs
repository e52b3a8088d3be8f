//! `kubernetes.toml`: the bundle file that makes a bundle a Kubernetes bundle, and the
//! Kubernetes version it names (`version = "v1.35.1"`, one key).

use std::path::{Path, PathBuf};

/// The bundle file that makes a bundle a Kubernetes bundle (at the root of its tree).
pub const KUBERNETES_TOML: &str = "kubernetes.toml";

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesToml {
    pub version: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("failed to read {}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("bundle file {KUBERNETES_TOML}: {message}\n  hint: it holds one key, version = \"v1.35.1\"")]
    Invalid { message: String },
}

/// The `version` in an unpacked bundle's `kubernetes.toml` (`tree` is the bundle's root).
pub fn kubernetes_version(tree: &Path) -> Result<String, BundleError> {
    let path = tree.join(KUBERNETES_TOML);
    let text = std::fs::read_to_string(&path).map_err(|source| BundleError::Read { path, source })?;
    let k: KubernetesToml = toml::from_str(&text).map_err(|e| BundleError::Invalid {
        message: e.message().to_string(),
    })?;
    Ok(k.version)
}
