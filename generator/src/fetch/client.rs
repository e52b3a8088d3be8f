//! The distribution (OCI registry) pull API over HTTP: which endpoint serves a reference
//! (Docker Hub's host, mirrors, plain HTTP for `--insecure-registry` endpoints only), manifest
//! and blob GETs, Basic and Bearer-token authentication, redirects, and the mapping of
//! transport failures to [`FetchError`]s that say what to do.
//!
//! No `GET /v2/` ping (containerd never sends one): the first real request answers 401 with
//! the challenge. Redirects are followed by hand so that `Authorization` is only ever sent to
//! the endpoint's own host, and never over a downgrade from HTTPS to HTTP.

use std::fs;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde::Deserialize;
use ureq::http::Response;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};
use ureq::Body;

use bundle_format::digest::Digest;
use bundle_format::reference::{Reference, DOCKER_HUB};

use super::auth::{canonical_host, Auths, Challenge, Tokens};
use super::manifest::{self, MAX_MANIFEST};
use super::{FetchError, Mirror, Options};

/// Where Docker Hub's registry API is served.
pub const DOCKER_HUB_HOST: &str = "registry-1.docker.io";
/// System CA bundles, first found wins (Debian/Ubuntu, Fedora/RHEL, Alpine/others).
const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];
const MAX_REDIRECTS: usize = 5;
/// Attempts for one request when the server answers 429/5xx or the connection breaks.
const ATTEMPTS: u32 = 3;

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

/// System roots (from `SSL_CERT_FILE` or the distribution's bundle) plus `ca_file`. Without a
/// system bundle, the Mozilla roots compiled into webpki-roots stand in for it, unless a
/// `ca_file` is given: then only that file is trusted (webpki-roots holds trust anchors, not
/// certificates, so the two cannot be merged).
pub(crate) fn root_certs(ca_file: Option<&Path>) -> Result<RootCerts, FetchError> {
    let mut certs: Vec<Certificate<'static>> = Vec::new();
    let system = std::env::var_os("SSL_CERT_FILE")
        .map(std::path::PathBuf::from)
        .into_iter()
        .chain(SYSTEM_CA_BUNDLES.iter().map(std::path::PathBuf::from))
        .find(|p| p.is_file());
    let have_system = match &system {
        Some(p) => {
            // A broken system bundle is not this program's business: use what parses.
            if let Ok(bytes) = fs::read(p) {
                certs.extend(pem_certs(&bytes).into_iter().flatten());
            }
            !certs.is_empty()
        }
        None => false,
    };
    if let Some(path) = ca_file {
        let bytes = fs::read(path).map_err(|e| FetchError::BadCaFile {
            path: path.to_path_buf(),
            message: format!("cannot read it: {e}"),
        })?;
        let extra = pem_certs(&bytes).map_err(|e| FetchError::BadCaFile {
            path: path.to_path_buf(),
            message: format!("invalid PEM: {e}"),
        })?;
        if extra.is_empty() {
            return Err(FetchError::BadCaFile {
                path: path.to_path_buf(),
                message: "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
            });
        }
        certs.extend(extra);
        return Ok(RootCerts::Specific(Arc::new(certs)));
    }
    Ok(if have_system {
        RootCerts::Specific(Arc::new(certs))
    } else {
        RootCerts::WebPki
    })
}

fn pem_certs(bytes: &[u8]) -> Result<Vec<Certificate<'static>>, ureq::Error> {
    let mut out = Vec::new();
    for item in ureq::tls::parse_pem(bytes) {
        if let PemItem::Certificate(c) = item? {
            out.push(c);
        }
    }
    Ok(out)
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

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
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

    fn scope(&self) -> String {
        format!("repository:{}:pull", self.path)
    }

    /// The `Authorization` value to send to the endpoint's host now, if any.
    fn authorization(&self) -> Result<Option<String>, FetchError> {
        let host = &self.endpoint.host;
        if let Some(t) = self.client.tokens.bearer(host, &self.scope()) {
            return Ok(Some(format!("Bearer {t}")));
        }
        if self.client.tokens.uses_basic(host) {
            return self.basic(None).map(Some);
        }
        Ok(None)
    }

    /// `Basic <base64>` for the endpoint's credentials, or Unauthorized naming what is missing.
    fn basic(&self, realm: Option<&str>) -> Result<String, FetchError> {
        let host = &self.endpoint.host;
        let auths = &self.client.auths;
        let cred = auths.for_host(host).ok_or_else(|| {
            self.unauthorized(format!(
                "{host} asks for credentials{}: add [registries.\"{host}\"] with username and password_env to {}",
                realm.map(|r| format!(" (token service {r})")).unwrap_or_default(),
                auths.file_hint()
            ))
        })?;
        let password = cred
            .password()
            .map_err(|why| self.unauthorized(format!("credentials for {host}: {why}")))?;
        let pair = format!("{}:{password}", cred.username);
        Ok(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        ))
    }

    fn unauthorized(&self, hint: String) -> FetchError {
        FetchError::Unauthorized {
            reference: self.reference.clone(),
            endpoint: self.endpoint_name(),
            hint,
        }
    }

    fn rejected_hint(&self) -> String {
        let host = &self.endpoint.host;
        match self.client.auths.for_host(host) {
            Some(c) => format!(
                "the credentials for {host} (user `{}`, line {} of {}) were rejected, or that user may not pull {}: \
                 check the username and password",
                c.username,
                c.line,
                self.client.auths.file_hint(),
                self.path
            ),
            None => format!(
                "{host} refused an anonymous pull of {}: add credentials for it to {}, or check the repository name",
                self.path,
                self.client.auths.file_hint()
            ),
        }
    }

    /// Answer a 401's challenge: remember Basic for the host, or fetch and cache a token.
    fn answer(&self, challenge: Option<Challenge>) -> Result<(), FetchError> {
        let host = &self.endpoint.host;
        match challenge {
            Some(Challenge::Basic) => {
                self.basic(None)?;
                self.client.tokens.set_basic(host);
                Ok(())
            }
            Some(Challenge::Bearer { realm, service, scope }) => {
                let scope_wanted = self.scope();
                let token = self.fetch_token(&realm, service.as_deref(), scope.as_deref().unwrap_or(&scope_wanted))?;
                self.client.tokens.set_bearer(host, &scope_wanted, token.0, token.1);
                Ok(())
            }
            None => Err(self.unauthorized(format!(
                "{host} answered 401 without a Basic or Bearer challenge; delivery supports only those"
            ))),
        }
    }

    /// GET a token from `realm` (RFC 6750 / distribution token spec), sending the endpoint's
    /// credentials if configured.
    fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<(String, Option<u64>), FetchError> {
        let (realm_https, realm_host) = split_url(realm).map(|(h, host, _)| (h, host)).ok_or_else(|| {
            self.unauthorized(format!(
                "the token realm `{realm}` the registry named is not an http(s) URL"
            ))
        })?;
        let cred = self.client.auths.for_host(&self.endpoint.host);
        let authz = match cred {
            Some(_) => {
                if !realm_https && !self.client.insecure.contains(&realm_host) {
                    return Err(self.unauthorized(format!(
                        "the token service {realm} is plain HTTP: refusing to send the credentials for {} there \
                         (list {realm_host} with --insecure-registry to allow it)",
                        self.endpoint.host
                    )));
                }
                Some(self.basic(Some(realm))?)
            }
            None => None,
        };
        let mut url = realm.to_string();
        let mut sep = if url.contains('?') { '&' } else { '?' };
        if let Some(s) = service {
            url.push_str(&format!("{sep}service={}", query_escape(s)));
            sep = '&';
        }
        url.push_str(&format!("{sep}scope={}", query_escape(scope)));
        let mut req = self.client.agent.get(&url);
        if let Some(a) = &authz {
            req = req.header("Authorization", a);
        }
        let realm_endpoint = format!("{}://{realm_host}", if realm_https { "https" } else { "http" });
        let resp = req
            .call()
            .map_err(|e| self.transport_error(e, &realm_endpoint, realm_https))?;
        let status = resp.status().as_u16();
        match status {
            200 => {}
            401 | 403 => return Err(self.unauthorized(format!("token service {realm}: {}", self.rejected_hint()))),
            _ => {
                return Err(FetchError::Http {
                    reference: self.reference.clone(),
                    endpoint: realm_endpoint,
                    status,
                    what: "a token".into(),
                    message: error_excerpt(resp),
                })
            }
        }
        let mut bytes = Vec::new();
        resp.into_body()
            .into_reader()
            .take(1 << 20)
            .read_to_end(&mut bytes)
            .map_err(|e| self.connect_error(&format!("reading a token from {realm} failed: {e}")))?;
        let parsed: TokenResponse = serde_json::from_slice(&bytes)
            .map_err(|e| self.unauthorized(format!("token service {realm} sent no JSON token: {e}")))?;
        let token = parsed
            .token
            .or(parsed.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| self.unauthorized(format!("token service {realm} sent an empty token")))?;
        Ok((token, parsed.expires_in))
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

    fn tls_error(&self, e: ureq::Error, endpoint: String, host: &str) -> FetchError {
        let message = match &e {
            ureq::Error::Io(io) => io.get_ref().map_or_else(|| io.to_string(), |inner| inner.to_string()),
            other => other.to_string(),
        };
        FetchError::Tls {
            reference: self.reference.clone(),
            endpoint,
            message,
            hint: format!(
                "if {host} uses a private CA, pass its certificate with --ca-file; if it serves plain HTTP, list it \
                 with --insecure-registry {host}"
            ),
        }
    }

    fn transport_error(&self, e: ureq::Error, endpoint: &str, https: bool) -> FetchError {
        let reference = self.reference.clone();
        let endpoint = endpoint.to_string();
        let host = endpoint
            .split_once("://")
            .map_or(endpoint.as_str(), |(_, h)| h)
            .to_string();
        match e {
            // rustls failures inside the TLS stream (an unknown issuer, a plain-HTTP server)
            // reach ureq as io errors of kind InvalidData wrapping rustls::Error; nothing else
            // on an HTTPS connection yields that kind, so it is classified without depending on
            // rustls's types.
            ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::Pem(_) => self.tls_error(e, endpoint, &host),
            ureq::Error::Io(ref io) if https && io.kind() == std::io::ErrorKind::InvalidData => {
                self.tls_error(e, endpoint, &host)
            }
            ureq::Error::Protocol(_) if !https => FetchError::Connect {
                reference,
                endpoint,
                message: e.to_string(),
                hint: format!(
                    "{host} did not answer plain HTTP; if it serves HTTPS, remove it from --insecure-registry"
                ),
            },
            other => {
                let message = match &other {
                    ureq::Error::HostNotFound => "host not found".to_string(),
                    ureq::Error::Timeout(t) => format!("timed out ({t})"),
                    e => e.to_string(),
                };
                FetchError::Connect {
                    reference,
                    endpoint,
                    message,
                    hint: "check that the registry is running and reachable from this machine, or configure a --mirror"
                        .into(),
                }
            }
        }
    }
}

/// Errors worth another try: a broken or reset connection, a timeout.
fn transient(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::Io(io) => !matches!(
            io.kind(),
            std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::InvalidData
        ),
        ureq::Error::Timeout(_) => true,
        _ => false,
    }
}

/// The first bytes of an error response body, for the message (registries send JSON errors).
fn error_excerpt(resp: Response<Body>) -> String {
    let mut bytes = Vec::new();
    let _ = resp.into_body().into_reader().take(512).read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let text: String = text.chars().filter(|c| !c.is_control()).collect();
    if text.trim().is_empty() {
        "(no details)".into()
    } else {
        text.trim().to_string()
    }
}

/// (https?, host[:port], path-and-query) of an http(s) URL.
pub(crate) fn split_url(url: &str) -> Option<(bool, String, String)> {
    let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return None;
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let host = &rest[..end];
    if host.is_empty() || host.contains('@') {
        return None;
    }
    let path = if end == rest.len() {
        "/".to_string()
    } else {
        rest[end..].to_string()
    };
    Some((https, host.to_ascii_lowercase(), path))
}

/// Resolve a `Location` header against the URL that answered with it.
fn resolve_location(current: &str, location: &str) -> Option<String> {
    let (https, host, path) = split_url(current)?;
    let scheme = if https { "https" } else { "http" };
    let next = if location.starts_with("http://") || location.starts_with("https://") {
        location.to_string()
    } else if let Some(rest) = location.strip_prefix("//") {
        format!("{scheme}://{rest}")
    } else if location.starts_with('/') {
        format!("{scheme}://{host}{location}")
    } else if !location.is_empty() {
        let dir = path.split('?').next().unwrap_or("/");
        let dir = &dir[..dir.rfind('/').map_or(0, |i| i + 1)];
        format!("{scheme}://{host}{dir}{location}")
    } else {
        return None;
    };
    split_url(&next).map(|_| next)
}

/// Percent-encode a query value (everything but RFC 3986 unreserved characters).
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
