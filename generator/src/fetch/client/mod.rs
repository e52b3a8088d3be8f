//! The distribution (OCI registry) pull API over HTTP: which endpoint serves a reference
//! (Docker Hub's host, mirrors, plain HTTP for `--insecure-registry` endpoints only), manifest
//! and blob GETs, Basic and Bearer-token authentication, redirects, and the mapping of
//! transport failures to [`FetchError`]s that say what to do.
//!
//! No `GET /v2/` ping (containerd never sends one): the first real request answers 401 with
//! the challenge. Redirects are followed by hand so that `Authorization` is only ever sent to
//! the endpoint's own host, and never over a downgrade from HTTPS to HTTP.
//!
//! Here: the client and a repository's manifest and blob GETs with their redirects and retries.
//! Which endpoint serves a reference is `endpoint.rs`, trusted roots `tls.rs`, answering auth
//! challenges `token.rs`, transport failures as errors `failure.rs`, URL handling `url.rs`.

mod endpoint;
mod failure;
mod tls;
mod token;
mod url;

use std::io::Read;
use std::time::Duration;

use ureq::http::Response;
use ureq::tls::TlsConfig;
use ureq::Body;

use bundle_format::digest::Digest;
use bundle_format::reference::Reference;

use super::auth::{Auths, Challenge, Tokens};
use super::manifest::{self, MAX_MANIFEST};
use super::{FetchError, Options};

pub(crate) use endpoint::{endpoints, Endpoint};
use failure::{error_excerpt, transient};
pub(crate) use tls::root_certs;
use url::{resolve_location, split_url};

const MAX_REDIRECTS: usize = 5;
/// Attempts for one request when the server answers 429/5xx or the connection breaks.
const ATTEMPTS: u32 = 3;

/// The HTTP agent, credentials and tokens shared by every request of one fetch.
pub(crate) struct Client {
    agent: ureq::Agent,
    auths: Auths,
    tokens: Tokens,
    insecure: Vec<String>,
}

impl Client {
    pub(crate) fn new(opts: &Options) -> Result<Client, FetchError> {
        let roots = root_certs(opts.ca_file.as_deref())?;
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("delivery/", env!("CARGO_PKG_VERSION")))
            .tls_config(TlsConfig::builder().root_certs(roots).build())
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(120)))
            .timeout_per_read(Some(Duration::from_secs(120)))
            .build()
            .new_agent();
        Ok(Client {
            agent,
            auths: opts.auth.clone(),
            tokens: Tokens::default(),
            insecure: opts.insecure.clone(),
        })
    }

    /// A handle on `repository` at `endpoint`; `reference` names the image in errors.
    pub(crate) fn repo(&self, endpoint: Endpoint, repository: &str, reference: &Reference) -> Repo<'_> {
        Repo {
            client: self,
            path: endpoint.repository_path(repository),
            endpoint,
            reference: reference.to_string(),
        }
    }
}

/// One repository on one endpoint.
pub(crate) struct Repo<'a> {
    client: &'a Client,
    pub endpoint: Endpoint,
    /// Mirror prefix plus repository: what goes after `/v2/`.
    pub path: String,
    reference: String,
}

/// A manifest as the registry served it.
pub(crate) struct ManifestResponse {
    pub bytes: Vec<u8>,
    pub content_type: Option<String>,
    pub docker_content_digest: Option<String>,
}

impl Repo<'_> {
    pub(crate) fn endpoint_name(&self) -> String {
        self.endpoint.base()
    }

    /// `GET /v2/<path>/manifests/<tag|digest>`, at most [`MAX_MANIFEST`] bytes.
    pub(crate) fn manifest(&self, reference: &str) -> Result<ManifestResponse, FetchError> {
        let what = if reference.starts_with("sha256:") {
            format!("manifest {reference}")
        } else {
            format!("manifest for tag {reference}")
        };
        let resp = self.get(
            &format!("/v2/{}/manifests/{reference}", self.path),
            Some(manifest::ACCEPT),
            &what,
        )?;
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let content_type = header("content-type");
        let docker_content_digest = header("docker-content-digest");
        let too_large = || FetchError::TooLarge {
            reference: self.reference.clone(),
            what: what.clone(),
            limit: MAX_MANIFEST,
        };
        if resp.body().content_length().is_some_and(|n| n > MAX_MANIFEST) {
            return Err(too_large());
        }
        let mut bytes = Vec::new();
        resp.into_body()
            .into_reader()
            .take(MAX_MANIFEST + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| self.connect_error(&format!("reading {what} failed: {e}")))?;
        if bytes.len() as u64 > MAX_MANIFEST {
            return Err(too_large());
        }
        Ok(ManifestResponse {
            bytes,
            content_type,
            docker_content_digest,
        })
    }

    /// `GET /v2/<path>/blobs/<digest>`: the body as a reader (the caller hashes and caps it).
    pub(crate) fn blob(&self, digest: &Digest) -> Result<Box<dyn Read + Send>, FetchError> {
        let resp = self.get(
            &format!("/v2/{}/blobs/{digest}", self.path),
            None,
            &format!("blob {digest}"),
        )?;
        Ok(Box::new(resp.into_body().into_reader()))
    }

    pub(crate) fn connect_error(&self, message: &str) -> FetchError {
        FetchError::Connect {
            reference: self.reference.clone(),
            endpoint: self.endpoint_name(),
            message: message.to_string(),
            hint: "check that the registry is running and reachable from this machine, or configure a --mirror".into(),
        }
    }

    /// GET `path` on the endpoint, answering one auth challenge, following redirects and
    /// retrying 429/5xx and broken connections a few times.
    fn get(&self, path: &str, accept: Option<&str>, what: &str) -> Result<Response<Body>, FetchError> {
        let base = self.endpoint.base();
        let mut url = format!("{base}{path}");
        let mut challenges = 0;
        let mut redirects = 0;
        let mut attempt = 1;
        loop {
            let target = split_url(&url).ok_or_else(|| self.connect_error(&format!("bad redirect URL `{url}`")))?;
            let on_endpoint = target.0 == self.endpoint.https && target.1 == self.endpoint.host;
            let mut req = self.client.agent.get(&url);
            if let Some(a) = accept {
                req = req.header("Accept", a);
            }
            if on_endpoint {
                if let Some(authz) = self.authorization()? {
                    req = req.header("Authorization", authz);
                }
            }
            let target_base = format!("{}://{}", if target.0 { "https" } else { "http" }, target.1);
            let resp = match req.call() {
                Ok(r) => r,
                Err(e) if attempt < ATTEMPTS && transient(&e) => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(250 * u64::from(attempt)));
                    continue;
                }
                Err(e) => return Err(self.transport_error(e, &target_base, target.0)),
            };
            let status = resp.status().as_u16();
            match status {
                200..=299 => return Ok(resp),
                301 | 302 | 303 | 307 | 308 => {
                    redirects += 1;
                    let location = resp
                        .headers()
                        .get("location")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    let next = resolve_location(&url, location)
                        .ok_or_else(|| self.connect_error(&format!("bad redirect for {what}: `{location}`")))?;
                    let next_target = split_url(&next).expect("resolve_location returns http(s) URLs");
                    if redirects > MAX_REDIRECTS {
                        return Err(self.connect_error(&format!("more than {MAX_REDIRECTS} redirects for {what}")));
                    }
                    if target.0 && !next_target.0 && !self.client.insecure.contains(&next_target.1) {
                        return Err(self.connect_error(&format!(
                            "{what} redirects from HTTPS to plain HTTP {}; refused",
                            next_target.1
                        )));
                    }
                    url = next;
                }
                401 if on_endpoint && challenges == 0 => {
                    challenges += 1;
                    // A cached token may have expired on the server's side: drop it.
                    self.client.tokens.forget_bearer(&self.endpoint.host, &self.scope());
                    let challenge = resp
                        .headers()
                        .get_all("www-authenticate")
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .find_map(Challenge::parse);
                    self.answer(challenge)?;
                }
                401 | 403 => return Err(self.unauthorized(self.rejected_hint())),
                404 => {
                    return Err(FetchError::NotFound {
                        reference: self.reference.clone(),
                        endpoint: format!("{target_base}/v2/{}", self.path),
                        what: what.to_string(),
                    })
                }
                429 | 500..=599 if attempt < ATTEMPTS => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(500 * u64::from(attempt)));
                }
                _ => {
                    return Err(FetchError::Http {
                        reference: self.reference.clone(),
                        endpoint: target_base,
                        status,
                        what: what.to_string(),
                        message: error_excerpt(resp),
                    })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::url::query_escape;
    use super::*;
    use crate::fetch::Mirror;

    fn r(s: &str) -> Reference {
        s.parse().unwrap()
    }

    #[test]
    fn docker_hub_mirrors_and_insecure_endpoints() {
        let none: Vec<Mirror> = vec![];
        let e = endpoints(&r("nginx:1.25"), &none, &[]);
        assert_eq!(
            e,
            vec![Endpoint {
                https: true,
                host: "registry-1.docker.io".into(),
                prefix: None
            }]
        );
        assert_eq!(e[0].repository_path("library/nginx"), "library/nginx");

        let mirrors: Vec<Mirror> = vec!["docker.io=127.0.0.1:5000/dockerhub-proxy".parse().unwrap()];
        let insecure = vec!["127.0.0.1:5000".to_string()];
        let e = endpoints(&r("docker.io/library/nginx:1.25"), &mirrors, &insecure);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].base(), "http://127.0.0.1:5000");
        assert_eq!(e[0].repository_path("library/nginx"), "dockerhub-proxy/library/nginx");
        // Other registries are not mirrored; the insecure match is exact host:port.
        let e = endpoints(&r("127.0.0.1:5001/app:1"), &mirrors, &insecure);
        assert_eq!(e[0].base(), "https://127.0.0.1:5001");
    }

    #[test]
    fn redirects_resolve_and_urls_split() {
        assert_eq!(
            split_url("https://H:5000/v2/x?a=b"),
            Some((true, "h:5000".into(), "/v2/x?a=b".into()))
        );
        assert_eq!(split_url("http://u:p@h/x"), None);
        assert_eq!(split_url("ftp://h/x"), None);
        let cur = "https://reg:5000/v2/a/blobs/sha256:00";
        assert_eq!(resolve_location(cur, "/data/1").unwrap(), "https://reg:5000/data/1");
        assert_eq!(resolve_location(cur, "//cdn/x").unwrap(), "https://cdn/x");
        assert_eq!(resolve_location(cur, "http://other/y").unwrap(), "http://other/y");
        assert_eq!(resolve_location(cur, "z").unwrap(), "https://reg:5000/v2/a/blobs/z");
        assert_eq!(resolve_location(cur, ""), None);
        assert_eq!(
            query_escape("repository:library/busybox:pull"),
            "repository%3Alibrary%2Fbusybox%3Apull"
        );
    }
}
