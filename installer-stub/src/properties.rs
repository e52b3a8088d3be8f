//! The properties the stub's parsers keep on any input, beyond not panicking: the Clusterfile
//! parser and the registry's request parser and routing. Each function is one fuzz target
//! (`fuzz/fuzz_targets/`, run by `cargo +nightly fuzz run <target>`) and, on stable, a bounded
//! property test below over seeded mutations of real inputs ([`fuzz_cases`], issue 12).

use std::collections::BTreeSet;
use std::path::Path;

use crate::clusterfile::{self, Role};
use crate::registry::api::Api;
use crate::registry::http::{head_end, parse_head, parse_range, Body, ByteRange, Handler};
use crate::registry::index::{tests::sample, Index};

/// A Clusterfile: an accepted one parses again to the same thing and keeps the promises the
/// installer relies on (a master, a registry host among the hosts, no host twice, every host
/// with a role); a refused one points every error at a line and column of the input.
pub fn clusterfile(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("cluster.toml");
    let home = || Some("/home/fuzz".into());
    match clusterfile::parse_with_home(path, text, home()) {
        Ok(c) => {
            let again = clusterfile::parse_with_home(path, text, home()).expect("an accepted file is accepted again");
            assert_eq!(again, c);
            assert!(!c.hosts.is_empty() && c.hosts.len() <= clusterfile::MAX_HOSTS);
            assert!(c.first_master().has_role(Role::Master));
            assert_eq!(c.registry_host().address, c.registry.host);
            let addresses: BTreeSet<_> = c.hosts.iter().map(|h| &h.address).collect();
            assert_eq!(addresses.len(), c.hosts.len(), "a host is listed twice");
            assert!(c.hosts.iter().all(|h| !h.roles.is_empty()));
        }
        Err(errors) => {
            assert!(!errors.0.is_empty(), "refused without an error");
            let lines: Vec<&str> = text.split('\n').collect();
            for e in &errors.0 {
                let at = e.span().expect("parse reads no file");
                assert!(
                    (1..=lines.len()).contains(&at.line),
                    "{e}: line {} of {}",
                    at.line,
                    lines.len()
                );
                let columns = lines[at.line - 1].chars().count() + 1;
                assert!(
                    (1..=columns).contains(&at.column),
                    "{e}: column {} of {columns}",
                    at.column
                );
            }
        }
    }
}

/// Bytes as they arrive on a registry connection: the head is delimited the same way whether it
/// arrives at once or in pieces, parsing it never depends on the bytes after it, and the answer
/// routed from it is well-formed (a known status, header values that cannot split the response,
/// a body inside the blob region, a byte range inside the blob).
pub fn request_head(data: &[u8]) {
    // The server drops empty lines before a request (RFC 9112 §2.2).
    let blank = data.iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
    let data = &data[blank..];
    let end = head_end(data, 0);
    // Searching again as the bytes trickle in, from where the last search stopped.
    let step = 1 + data.first().map_or(0, |&b| usize::from(b % 7));
    let mut searched = 0;
    let mut found = None;
    for len in (0..=data.len()).step_by(step).chain([data.len()]) {
        if let Some(e) = head_end(&data[..len], searched) {
            found = Some(e);
            break;
        }
        searched = len;
    }
    assert_eq!(found, end, "a head found in pieces ends where the whole head ends");
    let Some(end) = end else {
        return;
    };
    assert!(end <= data.len() && data[..end].ends_with(b"\n"));
    let head = &data[..end];
    let request = parse_head(head, 100);
    let with_rest = parse_head(data, 100);
    assert_eq!(
        format!("{request:?}"),
        format!("{with_rest:?}"),
        "the bytes after the head changed how it parses"
    );
    let Ok(request) = request else {
        return;
    };
    let (sample, trailer) = sample();
    let api = Api::new(Index::build(&sample, &trailer).expect("the sample indexes"));
    let response = api.handle(&request);
    assert!(
        [200, 206, 400, 404, 405, 416].contains(&response.status),
        "status {}",
        response.status
    );
    for (name, value) in &response.headers {
        assert!(
            !value.bytes().any(|b| b < 0x20 || b == 0x7f),
            "header {name} carries a control byte: {value:?}"
        );
    }
    if let Body::File { offset, len } = response.body {
        assert!(offset >= trailer.blobs_offset && offset + len <= trailer.manifest_offset);
    }
    for len in [0, 1, 10, u64::MAX] {
        if let ByteRange::Part(first, last) = parse_range(request.header("Range").ok().flatten(), len) {
            assert!(first <= last && last < len, "{first}-{last} of {len}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every Clusterfile the repository has: the commented template and the test fixtures.
    fn clusterfiles() -> Vec<Vec<u8>> {
        let mut seeds = vec![clusterfile::TEMPLATE.as_bytes().to_vec()];
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
        for entry in walk(&fixtures) {
            if entry.extension().is_some_and(|e| e == "toml") {
                seeds.push(std::fs::read(&entry).expect("a fixture reads"));
            }
        }
        seeds.push(
            b"name = \"c\"\n[[hosts]]\naddresses = [\"10.0.0.1-3\", \"node-1.example\"]\nroles = [\"master\", \"registry\"]\nssh = { user = \"ops\", port = 2222 }\n".to_vec(),
        );
        seeds
    }

    fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
        out.sort();
        out
    }

    #[test]
    fn clusterfile_parse_keeps_its_promises() {
        let dictionary: &[&[u8]] = &[
            b"[[hosts]]\n",
            b"roles = [\"master\"]\n",
            b"addresses = [\"10.0.0.1-255.255.255.255\"]\n",
            b"\"registry\"",
            b"password = \"x\"\n",
            b"[ssh]\n",
            b"host_key_policy = \"strict\"\n",
            b"~/",
            b"\"::1\"",
            b"10.0.0.1-10.0.255.255",
            b"= {",
            b"\n",
        ];
        fuzz_cases::run("clusterfile", 10_000, &clusterfiles(), dictionary, 8 << 10, clusterfile);
    }

    #[test]
    fn request_heads_parse_and_route_within_bounds() {
        let seeds: Vec<Vec<u8>> = [
            "GET /v2/ HTTP/1.1\r\nHost: registry.local:5000\r\n\r\n",
            "HEAD /v2/library/busybox/manifests/1.36?ns=docker.io HTTP/1.1\r\nHost: x\r\nAccept: application/vnd.oci.image.index.v1+json\r\n\r\n",
            "GET /v2/library/busybox/blobs/sha256:0101010101010101010101010101010101010101010101010101010101010101 HTTP/1.1\r\nHost: x\r\nRange: bytes=10-\r\n\r\nGET /v2/ HTTP/1.1\r\n\r\n",
            "GET http://x/v2/team/app/tags/list?ns=example.com HTTP/1.0\nConnection: keep-alive\n\n",
            "GET /v2/team%2Fapp/manifests/sha256:0303030303030303030303030303030303030303030303030303030303030303?ns=harbor.corp%3A8443 HTTP/1.1\r\nHost: x\r\n\r\n",
            "\r\nDELETE /v2/library/busybox/manifests/1.36 HTTP/1.1\r\nHost: x\r\n\r\n",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        let dictionary: &[&[u8]] = &[
            b"\r\n",
            b"\n\n",
            b"%2F",
            b"%",
            b"..",
            b"?ns=",
            b"Range: bytes=-5\r\n",
            b"Range: bytes=18446744073709551615-\r\n",
            b"sha256:",
            b"/manifests/",
            b"/blobs/",
            b" HTTP/1.1",
            b":",
        ];
        fuzz_cases::run("request_head", 20_000, &seeds, dictionary, 4 << 10, request_head);
    }
}
