//! A `--image-source` value: `PATH`, or `NAME=PATH`.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use bundle_format::reference::Reference;

/// A `--image-source` value: `PATH`, or `NAME=PATH` where NAME (`busybox`,
/// `registry.k8s.io/pause`) is the image name that tag-only `ref.name` annotations of the
/// layout refer to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSource {
    pub path: PathBuf,
    /// Normalised `registry/repository` for tag-only annotations.
    pub name: Option<String>,
}

impl LocalSource {
    pub fn new(path: impl Into<PathBuf>, name: Option<&str>) -> Result<LocalSource, String> {
        let name = match name {
            Some(n) => Some(normalise_name(n)?),
            None => None,
        };
        Ok(LocalSource {
            path: path.into(),
            name,
        })
    }
}

fn normalise_name(n: &str) -> Result<String, String> {
    let r: Reference = n.parse().map_err(|e| format!("{e}"))?;
    if r.digest.is_some() || (r.tag.as_deref() != Some("latest") || n.ends_with(":latest")) {
        return Err(format!("image source name `{n}` must be a name without tag or digest"));
    }
    Ok(r.name())
}

impl FromStr for LocalSource {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('=') {
            Some((name, path)) if !name.contains('/') || !Path::new(s).exists() => {
                if path.is_empty() {
                    return Err(format!("image source `{s}` has an empty path"));
                }
                LocalSource::new(path, Some(name))
            }
            _ if s.is_empty() => Err("empty image source path".into()),
            _ => LocalSource::new(s, None),
        }
    }
}
