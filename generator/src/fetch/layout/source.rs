//! A `--image-source` value: `PATH`, or `NAME=PATH`.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use bundle_format::reference::{Reference, ReferenceError};

/// A `--image-source` value: `PATH`, or `NAME=PATH` where NAME (`busybox`,
/// `registry.k8s.io/pause`) is the image name that tag-only `ref.name` annotations of the
/// layout refer to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSource {
    pub path: PathBuf,
    /// Normalised `registry/repository` for tag-only annotations.
    pub name: Option<String>,
}

/// Why a `--image-source` value is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Name(#[from] ReferenceError),
    #[error("image source name `{name}` must be a name without tag or digest")]
    NotAName { name: String },
    #[error("image source `{value}` has an empty path")]
    EmptyPath { value: String },
    #[error("empty image source path")]
    Empty,
}

impl LocalSource {
    pub fn new(path: impl Into<PathBuf>, name: Option<&str>) -> Result<LocalSource, SourceError> {
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

fn normalise_name(n: &str) -> Result<String, SourceError> {
    let r: Reference = n.parse()?;
    if r.digest.is_some() || (r.tag.as_deref() != Some("latest") || n.ends_with(":latest")) {
        return Err(SourceError::NotAName { name: n.to_string() });
    }
    Ok(r.name())
}

impl FromStr for LocalSource {
    type Err = SourceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('=') {
            Some((name, path)) if !name.contains('/') || !Path::new(s).exists() => {
                if path.is_empty() {
                    return Err(SourceError::EmptyPath { value: s.to_string() });
                }
                LocalSource::new(path, Some(name))
            }
            _ if s.is_empty() => Err(SourceError::Empty),
            _ => LocalSource::new(s, None),
        }
    }
}
