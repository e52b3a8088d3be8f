//! Which endpoints serve a reference: its registry's mirrors in order, else the registry itself
//! (Docker Hub's API at its own host), over HTTPS unless the endpoint is `--insecure-registry`.

use bundle_format::reference::{Reference, DOCKER_HUB};

use super::super::auth::canonical_host;
use super::super::Mirror;

/// Where Docker Hub's registry API is served.
pub const DOCKER_HUB_HOST: &str = "registry-1.docker.io";

/// One registry endpoint: scheme, `host[:port]`, and a path prefix a mirror serves under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub https: bool,
    pub host: String,
    pub prefix: Option<String>,
}

impl Endpoint {
    pub(crate) fn base(&self) -> String {
        format!("{}://{}", if self.https { "https" } else { "http" }, self.host)
    }

    /// The repository path on this endpoint: the mirror prefix, then the repository.
    pub(crate) fn repository_path(&self, repository: &str) -> String {
        match &self.prefix {
            Some(p) => format!("{p}/{repository}"),
            None => repository.to_string(),
        }
    }
}

/// The endpoints to try for `reference`, in order: its mirrors if any are configured for its
/// registry (the upstream is then never contacted), else the registry itself.
pub(crate) fn endpoints(reference: &Reference, mirrors: &[Mirror], insecure: &[String]) -> Vec<Endpoint> {
    let https = |host: &str| !insecure.iter().any(|i| i == host);
    let registry = canonical_host(&reference.registry);
    let from_mirrors: Vec<Endpoint> = mirrors
        .iter()
        .filter(|m| canonical_host(&m.registry) == registry)
        .map(|m| Endpoint {
            https: https(&m.host),
            host: m.host.clone(),
            prefix: m.prefix.clone(),
        })
        .collect();
    if !from_mirrors.is_empty() {
        return from_mirrors;
    }
    let host = if registry == DOCKER_HUB {
        DOCKER_HUB_HOST.to_string()
    } else {
        reference.registry.clone()
    };
    vec![Endpoint {
        https: https(&host),
        host,
        prefix: None,
    }]
}
