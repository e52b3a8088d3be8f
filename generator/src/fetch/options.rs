//! How a fetch is configured: the cache, the platforms, local sources, mirrors, plain-HTTP
//! endpoints and credentials ([`Options`]), and the `--mirror DOMAIN=HOST[:PORT][/PREFIX]` value
//! ([`Mirror`]).

use std::path::PathBuf;
use std::str::FromStr;

use bundle_format::reference::{is_registry, is_repository};

use super::{auth, Auths, LocalSource, Platform};

/// How to fetch: where the cache is, what to fetch for, from where, with which credentials.
#[derive(Debug, Clone)]
pub struct Options {
    /// Root of the blob cache (`blobs/sha256/<hex>` below it).
    pub cache_dir: PathBuf,
    /// Platforms to fetch from indexes (`--platform os/arch[/variant]`, repeatable).
    pub platforms: Vec<Platform>,
    /// Registry mirrors (`--mirror DOMAIN=HOST[:PORT][/PREFIX]`, repeatable).
    pub mirrors: Vec<Mirror>,
    /// Endpoints (`host:port`, exact match) spoken to over plain HTTP (`--insecure-registry`).
    pub insecure: Vec<String>,
    /// Credentials per registry host (`--registry-auth auth.toml`).
    pub auth: Auths,
    /// Extra CA certificates (PEM) trusted for TLS besides the system ones.
    pub ca_file: Option<PathBuf>,
    /// Parallel blob downloads.
    pub jobs: usize,
    /// Local OCI layouts and archives consulted before any registry.
    pub sources: Vec<LocalSource>,
    /// Re-hash cached layers before trusting them (off: size only; see the module doc).
    pub verify_cached_layers: bool,
}

impl Options {
    /// Defaults: `linux/amd64`, 4 jobs, no mirrors, sources, credentials or insecure endpoints.
    pub fn new(cache_dir: impl Into<PathBuf>) -> Options {
        Options {
            cache_dir: cache_dir.into(),
            platforms: vec![Platform::linux_amd64()],
            mirrors: Vec::new(),
            insecure: Vec::new(),
            auth: Auths::default(),
            ca_file: None,
            jobs: 4,
            sources: Vec::new(),
            verify_cached_layers: false,
        }
    }
}

/// `DOMAIN=HOST[:PORT][/PREFIX]`: images of registry DOMAIN are fetched from HOST under PREFIX.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    /// The upstream registry it stands in for (`docker.io`).
    pub registry: String,
    /// `host[:port]` of the mirror.
    pub host: String,
    /// Path prefix of the mirrored repositories (`dockerhub-proxy`).
    pub prefix: Option<String>,
}

const MIRROR_USAGE: &str = "expected DOMAIN=HOST[:PORT][/PREFIX], for example docker.io=127.0.0.1:5000/dockerhub-proxy";

/// Why a `--mirror` value is refused; each names the whole value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MirrorError {
    #[error("invalid mirror `{value}`: {MIRROR_USAGE}")]
    NoEquals { value: String },
    #[error(
        "invalid mirror `{value}`: give no scheme; HTTPS is used unless the mirror's host:port is also passed \
         to --insecure-registry"
    )]
    Scheme { value: String },
    #[error("invalid mirror `{value}`: `{registry}` is not a registry domain; {MIRROR_USAGE}")]
    Registry { value: String, registry: String },
    #[error("invalid mirror `{value}`: `{host}` is not a host[:port]; {MIRROR_USAGE}")]
    Host { value: String, host: String },
    #[error("invalid mirror `{value}`: `{prefix}` is not a valid repository path prefix")]
    Prefix { value: String, prefix: String },
}

impl FromStr for Mirror {
    type Err = MirrorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let value = || s.to_string();
        let (registry, target) = s
            .split_once('=')
            .ok_or_else(|| MirrorError::NoEquals { value: value() })?;
        if target.contains("://") {
            return Err(MirrorError::Scheme { value: value() });
        }
        let registry = auth::canonical_host(registry.trim()).to_string();
        if !is_registry(&registry) {
            return Err(MirrorError::Registry {
                value: value(),
                registry,
            });
        }
        let (host, prefix) = match target.split_once('/') {
            Some((h, p)) => (h, Some(p.trim_end_matches('/'))),
            None => (target, None),
        };
        if !is_registry(host) {
            return Err(MirrorError::Host {
                value: value(),
                host: host.to_string(),
            });
        }
        let prefix = prefix.filter(|p| !p.is_empty());
        if let Some(p) = prefix {
            if !is_repository(p) {
                return Err(MirrorError::Prefix {
                    value: value(),
                    prefix: p.to_string(),
                });
            }
        }
        Ok(Mirror {
            registry,
            host: host.to_ascii_lowercase(),
            prefix: prefix.map(str::to_string),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mirrors() {
        let m: Mirror = "docker.io=127.0.0.1:5000/dockerhub-proxy".parse().unwrap();
        assert_eq!(
            m,
            Mirror {
                registry: "docker.io".into(),
                host: "127.0.0.1:5000".into(),
                prefix: Some("dockerhub-proxy".into())
            }
        );
        let m: Mirror = "index.docker.io=mirror.corp".parse().unwrap();
        assert_eq!((m.registry.as_str(), m.prefix), ("docker.io", None));
        for bad in [
            "docker.io",
            "docker.io=http://x:5000",
            "docker.io=",
            "docker.io=h/UPPER",
            "bad host=h",
        ] {
            assert!(bad.parse::<Mirror>().is_err(), "{bad}");
        }
    }
}
