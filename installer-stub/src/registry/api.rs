//! The OCI distribution API, pull side only: which repository, manifest or blob a request means,
//! and the response, over an [`Index`]. No I/O here: bodies are regions of the bundle file that
//! the HTTP layer sends.
//!
//! Routes (any other path is 404 and any method but GET and HEAD is 405):
//! - `/v2/` (and `/v2`): 200 `{}`; skopeo probes it before anything else.
//! - `/v2/<name>/manifests/<tag|digest>`: Content-Type is the manifest's recorded media type.
//!   A digest is found under any repository the bundle has: indexes name their children by
//!   digest only.
//! - `/v2/<name>/blobs/<digest>`: a single byte range gives 206 (containerd resumes with
//!   `Range: bytes=N-`).
//! - `/v2/<name>/tags/list`.
//!
//! Which upstream repository `<name>` means: containerd appends `?ns=<registry host>` and keeps
//! the name (`library/busybox?ns=docker.io`). Without `ns`, the docker rule of
//! [`bundle_format::reference`] decides: a first component with `.` or `:`, or `localhost`, is a
//! registry (`example.com/team/app`), anything else is on docker.io (`library/busybox`). Names,
//! tags and digests are validated with the format crate's grammar before any lookup, so no path
//! trick can name anything but an indexed blob; nothing is ever looked up on a file system.
//! Errors are the distribution spec's JSON: `{"errors":[{"code","message","detail"}]}`.

use bundle_format::reference::{self, Reference};
use bundle_format::Digest;
use serde_json::json;

use super::http::{parse_range, Body, ByteRange, Handler, Request, Response};
use super::index::{Index, Repository};

pub const API_VERSION: (&str, &str) = ("Docker-Distribution-API-Version", "registry/2.0");

pub struct Api {
    index: Index,
}

impl Handler for Api {
    fn handle(&self, request: &Request<'_>) -> Response {
        // A repeated Range header is as unusable as a malformed one.
        let range = request.header("Range").unwrap_or(Some(b""));
        self.route(request.method, request.target, range)
    }

    fn error(&self, status: u16, message: &str) -> Response {
        let code = if status == 503 {
            "TOOMANYREQUESTS"
        } else {
            "UNSUPPORTED"
        };
        error(status, code, message)
    }
}

/// What a path under `/v2/` asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    Manifest { name: &'a str, reference: &'a str },
    Blob { name: &'a str, digest: &'a str },
    Tags { name: &'a str },
}

/// An error response, returned early with `?`.
type Answer = Result<Response, Response>;

impl Api {
    pub fn new(index: Index) -> Api {
        Api { index }
    }

    /// The response to `method target` (origin form, still percent-encoded) with an optional
    /// `Range` header value.
    pub fn route(&self, method: &str, target: &str, range: Option<&[u8]>) -> Response {
        self.answer(method, target, range).unwrap_or_else(|e| e)
    }

    fn answer(&self, method: &str, target: &str, range: Option<&[u8]>) -> Answer {
        if method != "GET" && method != "HEAD" {
            let mut r = error(
                405,
                "UNSUPPORTED",
                "this registry is read-only: only GET and HEAD are allowed",
            );
            r.headers.push(("Allow", "GET, HEAD".into()));
            return Err(r);
        }
        // Routing happens on the raw path, so an escaped `/` (`%2F`) stays inside its component;
        // then each component is decoded and validated.
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        if path == "/v2" || path == "/v2/" {
            let json = vec![("Content-Type", "application/json".into())];
            return Ok(response(200, json, Body::Bytes(b"{}".to_vec())));
        }
        let Some(route) = path.strip_prefix("/v2/").and_then(parse_route) else {
            let message = "no such endpoint: this registry serves /v2/ manifests, blobs and tags";
            return Err(error(404, "UNSUPPORTED", message));
        };
        let ns = query_param(query, "ns")
            .ok_or_else(|| error(400, "NAME_INVALID", "malformed percent-encoding in the query"))?;
        let ns = ns.as_deref();
        let decode = |s: &str| {
            percent_decode(s).ok_or_else(|| error(400, "UNSUPPORTED", "malformed percent-encoding in the path"))
        };
        match route {
            Route::Manifest { name, reference } => self.manifest(&decode(name)?, ns, &decode(reference)?),
            Route::Blob { name, digest } => self.blob(&decode(name)?, ns, &decode(digest)?, range),
            Route::Tags { name } => self.tags(&decode(name)?, ns),
        }
    }

    fn repository(&self, name: &str, ns: Option<&str>) -> Result<&Repository, Response> {
        let full = resolve(name, ns)?;
        self.index.repository(&full).ok_or_else(|| {
            let message = format!("repository {full} is not in this bundle (see `images`)");
            error(404, "NAME_UNKNOWN", &message)
        })
    }

    fn manifest(&self, name: &str, ns: Option<&str>, reference: &str) -> Answer {
        // A reference with a ':' can only be a digest; anything else must be a tag.
        let digest = if reference.contains(':') {
            Some(parse_digest(reference)?)
        } else if reference::is_tag(reference) {
            None
        } else {
            return Err(error(400, "TAG_INVALID", &format!("invalid tag `{}`", clip(reference))));
        };
        let repository = self.repository(name, ns)?;
        let digest = digest.or_else(|| repository.tag(reference).copied()).ok_or_else(|| {
            error(
                404,
                "MANIFEST_UNKNOWN",
                &format!("no tag `{reference}` in this repository"),
            )
        })?;
        let (blob, media_type) = self
            .index
            .manifest(&digest)
            .ok_or_else(|| error(404, "MANIFEST_UNKNOWN", &format!("no manifest {digest} in this bundle")))?;
        let headers = vec![
            ("Content-Type", media_type.to_string()),
            ("Docker-Content-Digest", digest.to_string()),
            ("ETag", format!("\"{digest}\"")),
        ];
        let body = Body::File {
            offset: blob.offset,
            len: blob.size,
        };
        Ok(response(200, headers, body))
    }

    fn blob(&self, name: &str, ns: Option<&str>, digest: &str, range: Option<&[u8]>) -> Answer {
        let digest = parse_digest(digest)?;
        self.repository(name, ns)?;
        let blob = self
            .index
            .blob(&digest)
            .ok_or_else(|| error(404, "BLOB_UNKNOWN", &format!("no blob {digest} in this bundle")))?;
        let mut headers = vec![
            ("Content-Type", "application/octet-stream".to_string()),
            ("Docker-Content-Digest", digest.to_string()),
            ("ETag", format!("\"{digest}\"")),
            ("Accept-Ranges", "bytes".into()),
        ];
        match parse_range(range, blob.size) {
            ByteRange::Whole => Ok(response(
                200,
                headers,
                Body::File {
                    offset: blob.offset,
                    len: blob.size,
                },
            )),
            ByteRange::Part(first, last) => {
                headers.push(("Content-Range", format!("bytes {first}-{last}/{}", blob.size)));
                let body = Body::File {
                    offset: blob.offset + first,
                    len: last - first + 1,
                };
                Ok(response(206, headers, body))
            }
            ByteRange::Unsatisfiable => {
                let mut r = error(416, "RANGE_INVALID", &format!("the blob has {} bytes", blob.size));
                r.headers.push(("Content-Range", format!("bytes */{}", blob.size)));
                Err(r)
            }
        }
    }

    fn tags(&self, name: &str, ns: Option<&str>) -> Answer {
        let repository = self.repository(name, ns)?;
        let body = json!({"name": name, "tags": repository.tags().collect::<Vec<_>>()});
        let body = serde_json::to_vec(&body).expect("JSON values serialize");
        Ok(response(
            200,
            vec![("Content-Type", "application/json".into())],
            Body::Bytes(body),
        ))
    }
}

fn parse_digest(s: &str) -> Result<Digest, Response> {
    s.parse()
        .map_err(|e: bundle_format::digest::DigestParseError| error(400, "DIGEST_INVALID", &e.to_string()))
}

/// Split what follows `/v2/`: the kind is the last `manifests`/`blobs` before the final
/// component (names may themselves contain slashes, and even a component named `manifests`).
fn parse_route(rest: &str) -> Option<Route<'_>> {
    let (prefix, last) = rest.rsplit_once('/')?;
    if last == "list" {
        if let Some(name) = prefix.strip_suffix("/tags") {
            return Some(Route::Tags { name });
        }
    }
    let (name, kind) = prefix.rsplit_once('/')?;
    match kind {
        "manifests" => Some(Route::Manifest { name, reference: last }),
        "blobs" => Some(Route::Blob { name, digest: last }),
        _ => None,
    }
}

/// The `registry/repository` key of the index that `name` (and `ns`) mean.
fn resolve(name: &str, ns: Option<&str>) -> Result<String, Response> {
    let invalid = |why: String| error(400, "NAME_INVALID", &why);
    // Only a registry's port may hold a ':'; a tag or digest has no place in a name.
    let last = name.rsplit('/').next().unwrap_or(name);
    if name.contains('@') || last.contains(':') {
        return Err(invalid(format!("invalid repository name `{}`", clip(name))));
    }
    let full = match ns {
        None => name.to_string(),
        Some(ns) => {
            if !reference::is_registry(ns) {
                return Err(invalid(format!("invalid registry `{}` in ns", clip(ns))));
            }
            if !reference::is_repository(name) {
                return Err(invalid(format!("invalid repository name `{}`", clip(name))));
            }
            // A single-label host (`registry`) never names a bundle's image: references
            // normalise such a first component onto docker.io.
            if !(ns.contains('.') || ns.contains(':') || ns == "localhost") {
                return Err(error(
                    404,
                    "NAME_UNKNOWN",
                    &format!("registry {ns} has no images in this bundle"),
                ));
            }
            format!("{ns}/{name}")
        }
    };
    let r: Reference = full
        .parse()
        .map_err(|e: reference::ReferenceError| invalid(clip(&e.to_string())))?;
    Ok(r.name())
}

/// The first value of query parameter `key`, percent-decoded; `None` if the query is malformed.
fn query_param(query: &str, key: &str) -> Option<Option<String>> {
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if percent_decode(k)? == key {
            return Some(Some(percent_decode(v)?));
        }
    }
    Some(None)
}

/// Decode `%XX` escapes; `None` for a malformed escape or bytes that are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = |c: u8| char::from(c).to_digit(16);
            let hi = hex(*b.get(i + 1)?)?;
            let lo = hex(*b.get(i + 2)?)?;
            out.push(u8::try_from(hi * 16 + lo).expect("two hex digits fit a byte"));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// At most 128 characters of client input in a message.
fn clip(s: &str) -> String {
    s.chars().take(128).collect()
}

fn response(status: u16, mut headers: Vec<(&'static str, String)>, body: Body) -> Response {
    headers.insert(0, (API_VERSION.0, API_VERSION.1.into()));
    Response { status, headers, body }
}

/// An error in the distribution spec's shape.
fn error(status: u16, code: &str, message: &str) -> Response {
    let body = json!({"errors": [{"code": code, "message": message, "detail": null}]});
    let body = serde_json::to_vec(&body).expect("JSON values serialize");
    response(
        status,
        vec![("Content-Type", "application/json".into())],
        Body::Bytes(body),
    )
}

#[cfg(test)]
mod tests {
    use super::super::index::tests::{digest, sample, OCI_INDEX, OCI_MANIFEST};
    use super::*;

    fn api() -> Api {
        let (m, t) = sample();
        Api::new(Index::build(&m, &t).unwrap())
    }

    fn get(api: &Api, target: &str) -> Response {
        api.route("GET", target, None)
    }

    /// The status and, for an error, its code.
    fn outcome(r: &Response) -> (u16, String) {
        let code = match &r.body {
            Body::Bytes(b) if r.status >= 400 => {
                let v: serde_json::Value = serde_json::from_slice(b).unwrap();
                assert_eq!(v["errors"][0]["detail"], serde_json::Value::Null);
                assert_eq!(r.header("Content-Type"), Some("application/json"));
                v["errors"][0]["code"].as_str().unwrap().to_string()
            }
            _ => String::new(),
        };
        (r.status, code)
    }

    fn expect(api: &Api, target: &str, status: u16, code: &str) {
        assert_eq!(outcome(&get(api, target)), (status, code.to_string()), "{target}");
    }

    #[test]
    fn base_endpoint_and_unknown_paths() {
        let api = api();
        for t in ["/v2/", "/v2", "/v2/?x=1"] {
            let r = get(&api, t);
            assert_eq!((r.status, &r.body), (200, &Body::Bytes(b"{}".to_vec())), "{t}");
            assert_eq!(r.header("Docker-Distribution-API-Version"), Some("registry/2.0"));
        }
        for t in [
            "/",
            "/V2/",
            "/v2x",
            "/v2/_catalog",
            "/v3/",
            "/v2/../etc/passwd",
            "/v2/library/busybox",
            "/v2/manifests/1.36",
        ] {
            expect(&api, t, 404, "UNSUPPORTED");
        }
        for t in [
            "/v2/library/busybox/manifests/1.36/",
            "/v2/library/busybox/blobs/uploads/",
            "/v2/library/busybox/tags/",
        ] {
            expect(&api, t, 404, "UNSUPPORTED");
        }
    }

    #[test]
    fn write_methods_are_refused() {
        let api = api();
        for m in ["POST", "PUT", "PATCH", "DELETE", "OPTIONS", "get"] {
            for t in [
                "/v2/",
                "/v2/library/busybox/manifests/1.36",
                "/v2/library/busybox/blobs/uploads/",
                "/x",
            ] {
                let r = api.route(m, t, None);
                assert_eq!(outcome(&r), (405, "UNSUPPORTED".into()), "{m} {t}");
                assert_eq!(r.header("Allow"), Some("GET, HEAD"));
            }
        }
    }

    #[test]
    fn manifests_by_tag_under_every_form_of_a_name() {
        let api = api();
        let busybox = Body::File { offset: 1110, len: 20 };
        for t in [
            "/v2/library/busybox/manifests/1.36",
            "/v2/busybox/manifests/1.36",
            "/v2/docker.io/library/busybox/manifests/1.36",
            "/v2/index.docker.io/library/busybox/manifests/1.36",
            "/v2/library/busybox/manifests/1.36?ns=docker.io",
            "/v2/library/busybox/manifests/1.36?foo=bar&ns=docker.io&ns=example.com",
            "/v2/library/busybox/manifests/1%2e36",
            "/v2/library%2fbusybox/manifests/1.36",
        ] {
            let r = get(&api, t);
            assert_eq!((r.status, &r.body), (200, &busybox), "{t}");
            assert_eq!(r.header("Content-Type"), Some(OCI_MANIFEST));
            assert_eq!(r.header("Docker-Content-Digest"), Some(digest(2).to_string().as_str()));
        }
        let app = Body::File { offset: 1130, len: 30 };
        for t in [
            "/v2/team/app/manifests/2.1?ns=example.com",
            "/v2/team/app/manifests/2.1?ns=harbor.corp:8443",
            "/v2/team/app/manifests/2.1?ns=harbor.corp%3A8443",
            "/v2/example.com/team/app/manifests/2.1",
            "/v2/harbor.corp:8443/team/app/manifests/2.1",
        ] {
            let r = get(&api, t);
            assert_eq!((r.status, &r.body), (200, &app), "{t}");
            assert_eq!(r.header("Content-Type"), Some(OCI_INDEX));
        }
        let r = get(&api, "/v2/library/busybox/tags/list");
        assert_eq!(
            r.body,
            Body::Bytes(br#"{"name":"library/busybox","tags":["1.36"]}"#.to_vec())
        );
    }

    #[test]
    fn manifests_by_digest_from_any_repository() {
        let api = api();
        let r = get(&api, &format!("/v2/library/busybox/manifests/{}", digest(3)));
        assert_eq!((r.status, r.header("Content-Type")), (200, Some(OCI_INDEX)));
        let r = get(&api, &format!("/v2/team/app/manifests/{}?ns=example.com", digest(2)));
        assert_eq!((r.status, &r.body), (200, &Body::File { offset: 1110, len: 20 }));
        // A layer is not a manifest, and a repository must exist.
        expect(
            &api,
            &format!("/v2/library/busybox/manifests/{}", digest(1)),
            404,
            "MANIFEST_UNKNOWN",
        );
        expect(
            &api,
            &format!("/v2/library/nginx/manifests/{}", digest(2)),
            404,
            "NAME_UNKNOWN",
        );
    }

    #[test]
    fn unknown_and_invalid_names_tags_and_digests() {
        let api = api();
        let d = digest(9);
        for (t, status, code) in [
            ("/v2/library/nginx/manifests/latest", 404, "NAME_UNKNOWN"),
            ("/v2/team/app/manifests/2.1", 404, "NAME_UNKNOWN"),
            ("/v2/team/app/manifests/2.1?ns=docker.io", 404, "NAME_UNKNOWN"),
            ("/v2/team/app/manifests/2.1?ns=registry", 404, "NAME_UNKNOWN"),
            ("/v2/team/app/manifests/2.1?ns=other.example", 404, "NAME_UNKNOWN"),
            ("/v2/library/busybox/manifests/9.9", 404, "MANIFEST_UNKNOWN"),
            ("/v2/library/busybox/manifests/latest", 404, "MANIFEST_UNKNOWN"),
            (&format!("/v2/library/busybox/manifests/{d}"), 404, "MANIFEST_UNKNOWN"),
            (&format!("/v2/library/busybox/blobs/{d}"), 404, "BLOB_UNKNOWN"),
            (&format!("/v2/library/busybox/blobs/{}", digest(4)), 404, "BLOB_UNKNOWN"),
            ("/v2/library/busybox/manifests/-x", 400, "TAG_INVALID"),
            ("/v2/library/busybox/manifests/", 400, "TAG_INVALID"),
            ("/v2/library/busybox/manifests/..", 400, "TAG_INVALID"),
            ("/v2/library/busybox/manifests/sha256:abc", 400, "DIGEST_INVALID"),
            (
                &format!("/v2/library/busybox/manifests/sha512:{}", "a".repeat(128)),
                400,
                "DIGEST_INVALID",
            ),
            (
                &format!("/v2/library/busybox/manifests/sha256:{}", "A".repeat(64)),
                400,
                "DIGEST_INVALID",
            ),
            ("/v2/library/busybox/blobs/1.36", 400, "DIGEST_INVALID"),
            (
                "/v2/library/busybox/blobs/sha256:..%2F..%2Fetc%2Fpasswd",
                400,
                "DIGEST_INVALID",
            ),
            ("/v2/Library/BusyBox/manifests/1.36", 400, "NAME_INVALID"),
            ("/v2/library//busybox/manifests/1.36", 400, "NAME_INVALID"),
            ("/v2//library/busybox/manifests/1.36", 400, "NAME_INVALID"),
            ("/v2/%2e%2e/%2e%2e/etc/passwd/manifests/latest", 400, "NAME_INVALID"),
            ("/v2/library/..%2f..%2fetc/manifests/latest", 400, "NAME_INVALID"),
            ("/v2/library/busybox%00/manifests/1.36", 400, "NAME_INVALID"),
            ("/v2/library/busybox:1.36/manifests/1.36", 400, "NAME_INVALID"),
            ("/v2/harbor.corp:8443/manifests/2.1", 400, "NAME_INVALID"),
            ("/v2/library/busybox@sha256:x/manifests/1.36", 400, "NAME_INVALID"),
            ("/v2/library/busybox/manifests/1.36?ns=../x", 400, "NAME_INVALID"),
            ("/v2/library/busybox/manifests/1.36?ns=%zz", 400, "NAME_INVALID"),
            (
                "/v2/example.com/team/app/manifests/2.1?ns=example.com",
                404,
                "NAME_UNKNOWN",
            ),
            ("/v2/library/busybox/manifests/1%2", 400, "UNSUPPORTED"),
            ("/v2/library/busybox/manifests/%ff", 400, "UNSUPPORTED"),
        ] {
            expect(&api, t, status, code);
        }
        let long = format!("/v2/{}/manifests/1", "a/".repeat(300));
        expect(&api, &long, 400, "NAME_INVALID");
    }

    #[test]
    fn blobs_with_and_without_ranges() {
        let api = api();
        let path = format!("/v2/library/busybox/blobs/{}", digest(1));
        let r = get(&api, &path);
        assert_eq!((r.status, &r.body), (200, &Body::File { offset: 1010, len: 100 }));
        assert_eq!(r.header("Content-Type"), Some("application/octet-stream"));
        assert_eq!(r.header("Accept-Ranges"), Some("bytes"));
        assert_eq!(r.header("Docker-Content-Digest"), Some(digest(1).to_string().as_str()));
        let ranged = |v: &str| api.route("GET", &path, Some(v.as_bytes()));
        let r = ranged("bytes=10-19");
        assert_eq!((r.status, &r.body), (206, &Body::File { offset: 1020, len: 10 }));
        assert_eq!(r.header("Content-Range"), Some("bytes 10-19/100"));
        let r = ranged("bytes=90-");
        assert_eq!((r.status, &r.body), (206, &Body::File { offset: 1100, len: 10 }));
        assert_eq!(r.header("Content-Range"), Some("bytes 90-99/100"));
        let r = ranged("bytes=-1");
        assert_eq!((r.status, &r.body), (206, &Body::File { offset: 1109, len: 1 }));
        for bad in ["bytes=100-", "bytes=5-1", "bytes=x", ""] {
            let r = ranged(bad);
            assert_eq!(outcome(&r), (416, "RANGE_INVALID".into()), "{bad}");
            assert_eq!(r.header("Content-Range"), Some("bytes */100"));
        }
        // Manifests are blobs too, by digest, under any repository.
        let r = get(&api, &format!("/v2/team/app/blobs/{}?ns=example.com", digest(2)));
        assert_eq!((r.status, &r.body), (200, &Body::File { offset: 1110, len: 20 }));
        expect(
            &api,
            &format!("/v2/library/nginx/blobs/{}", digest(1)),
            404,
            "NAME_UNKNOWN",
        );
    }
}
