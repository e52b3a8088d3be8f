//! The little URL handling the pull API needs: splitting an http(s) URL, resolving a redirect's
//! `Location`, escaping a token request's query values.

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
pub(super) fn resolve_location(current: &str, location: &str) -> Option<String> {
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
pub(super) fn query_escape(s: &str) -> String {
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
