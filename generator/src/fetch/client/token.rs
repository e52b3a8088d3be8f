//! Answering a registry's `401`: Basic credentials for the endpoint's own host, or a Bearer token
//! fetched from the challenge's realm and cached per (host, scope); and the errors that say which
//! credentials are missing or were refused.

use base64::Engine;
use serde::Deserialize;

use super::super::auth::Challenge;
use super::super::FetchError;
use std::io::Read;

use super::failure::error_excerpt;
use super::url::{query_escape, split_url};
use super::Repo;

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
    pub(super) fn scope(&self) -> String {
        format!("repository:{}:pull", self.path)
    }

    /// The `Authorization` value to send to the endpoint's host now, if any.
    pub(super) fn authorization(&self) -> Result<Option<String>, FetchError> {
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
    pub(super) fn basic(&self, realm: Option<&str>) -> Result<String, FetchError> {
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

    pub(super) fn unauthorized(&self, hint: String) -> FetchError {
        FetchError::Unauthorized {
            reference: self.reference.clone(),
            endpoint: self.endpoint_name(),
            hint,
        }
    }

    pub(super) fn rejected_hint(&self) -> String {
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
    pub(super) fn answer(&self, challenge: Option<Challenge>) -> Result<(), FetchError> {
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
    pub(super) fn fetch_token(
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
}
