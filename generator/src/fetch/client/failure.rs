//! Transport failures as [`FetchError`]s that say what to do: TLS problems, refused or broken
//! connections, which failures are worth another try, and an error response's first bytes.

use std::io::Read;

use ureq::http::Response;
use ureq::Body;

use super::super::FetchError;
use super::Repo;

impl Repo<'_> {
    pub(super) fn tls_error(&self, e: ureq::Error, endpoint: String, host: &str) -> FetchError {
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

    pub(super) fn transport_error(&self, e: ureq::Error, endpoint: &str, https: bool) -> FetchError {
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
pub(super) fn transient(e: &ureq::Error) -> bool {
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
pub(super) fn error_excerpt(resp: Response<Body>) -> String {
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
