//! Container image references (`nginx:1.25`, `registry.k8s.io/pause:3.9`,
//! `harbor.corp:8443/team/app@sha256:...`): parsing, validation and the normalised full name a
//! bundle records and its registry serves.
//!
//! Grammar and normalisation follow the distribution reference rules that docker, containerd
//! and kubelet share: the first path component is a registry host if it contains `.` or `:`
//! or is `localhost`; otherwise the registry is `docker.io`, and a one-component Docker Hub
//! repository gets `library/`. A reference with neither tag nor digest means `:latest`.
//! Only `sha256` digests are accepted. Names are validated strictly, so a name taken from a
//! request can never be a path trick.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;

pub const DOCKER_HUB: &str = "docker.io";

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Reference {
    /// `docker.io`, `registry.k8s.io`, `harbor.corp:8443`.
    pub registry: String,
    /// `library/nginx`, `team/app`.
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("image reference `{0}` is empty or too long")]
    Length(String),
    #[error("image reference `{reference}` has an invalid registry host `{host}`")]
    Registry { reference: String, host: String },
    #[error("image reference `{reference}` has an invalid repository `{repository}` (lowercase letters, digits and . _ - separators)")]
    Repository { reference: String, repository: String },
    #[error("image reference `{reference}` has an invalid tag `{tag}`")]
    Tag { reference: String, tag: String },
    #[error("image reference `{reference}` has an invalid digest: {why}")]
    Digest { reference: String, why: String },
}

impl Reference {
    /// `registry/repository`, the name without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The tag, or the digest's text: what goes after `/manifests/` in a registry URL.
    pub fn manifest_ref(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".into(),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > 512 {
            return Err(ReferenceError::Length(s.chars().take(64).collect()));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                let digest = d.parse::<Digest>().map_err(|e| ReferenceError::Digest {
                    reference: s.into(),
                    why: e.to_string(),
                })?;
                (r, Some(digest))
            }
            None => (s, None),
        };
        // A tag follows the last ':' that comes after the last '/' (a ':' before it is a port).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag {
            if !is_tag(t) {
                return Err(ReferenceError::Tag {
                    reference: s.into(),
                    tag: t.into(),
                });
            }
        }
        let (registry, repository) = split_registry(name);
        let registry = if registry == "index.docker.io" {
            DOCKER_HUB.to_string()
        } else {
            registry.to_string()
        };
        if !is_registry(&registry) {
            return Err(ReferenceError::Registry {
                reference: s.into(),
                host: registry,
            });
        }
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository.to_string()
        };
        if !is_repository(&repository) {
            return Err(ReferenceError::Repository {
                reference: s.into(),
                repository,
            });
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some("latest".to_string()),
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

/// Split `name` into (registry, repository) by the docker rule.
fn split_registry(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest)) if first.contains('.') || first.contains(':') || first == "localhost" => (first, rest),
        _ => (DOCKER_HUB, name),
    }
}

/// `host[:port]`: DNS labels or an IPv4 address, then an optional port.
pub fn is_registry(s: &str) -> bool {
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    port_ok && !host.is_empty() && host.len() <= 253 && host.split('.').all(label_ok)
}

/// Path components `[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*` joined by `/`, at most 255 bytes.
pub fn is_repository(s: &str) -> bool {
    !s.is_empty() && s.len() <= 255 && s.split('/').all(is_path_component)
}

fn is_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator: '.', '_', '__', or a run of '-', followed by an alphanumeric.
        let start = i;
        match b[i] {
            b'.' => i += 1,
            b'_' => i += if b.get(i + 1) == Some(&b'_') { 2 } else { 1 },
            b'-' => {
                while b.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || !b.get(i).is_some_and(|&x| is_alnum(x)) {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn is_tag(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        s.parse::<Reference>().unwrap().to_string()
    }

    #[test]
    fn normalises_like_docker() {
        assert_eq!(norm("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(norm("nginx:1.25"), "docker.io/library/nginx:1.25");
        assert_eq!(norm("bitnami/redis:7"), "docker.io/bitnami/redis:7");
        assert_eq!(
            norm("index.docker.io/library/busybox:1.36"),
            "docker.io/library/busybox:1.36"
        );
        assert_eq!(norm("registry.k8s.io/pause:3.9"), "registry.k8s.io/pause:3.9");
        assert_eq!(norm("harbor.corp:8443/team/app:2.1"), "harbor.corp:8443/team/app:2.1");
        assert_eq!(norm("localhost/app"), "localhost/app:latest");
        assert_eq!(norm("localhost:5000/app"), "localhost:5000/app:latest");
        assert_eq!(
            norm("127.0.0.1:5000/library/busybox:1.35"),
            "127.0.0.1:5000/library/busybox:1.35"
        );
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(norm(&format!("nginx@{d}")), format!("docker.io/library/nginx@{d}"));
        assert_eq!(
            norm(&format!("nginx:1.25@{d}")),
            format!("docker.io/library/nginx:1.25@{d}")
        );
        let r: Reference = "quay.io/a/b/c:v1".parse().unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("quay.io", "a/b/c", Some("v1"))
        );
    }

    #[test]
    fn rejects_path_tricks_and_bad_names() {
        for bad in [
            "",
            "../etc/passwd",
            "docker.io/../x",
            "Nginx",
            "a//b",
            "a/b/",
            "nginx:",
            "nginx:-x",
            "nginx@sha256:abc",
            "nginx@md5:00",
            "exa mple.com/x",
            "example.com:port/x",
            "-bad.com/x",
            "x/.hidden",
            "a__-b",
        ] {
            assert!(bad.parse::<Reference>().is_err(), "{bad:?} should be rejected");
        }
        assert!(is_repository("a__b/c-d/e.f/g---h"));
    }
}
