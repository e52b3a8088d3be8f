//! Request heads (RFC 9112): where a head ends, whether the bytes so far can still begin one,
//! and parsing a complete head into a [`Request`] that borrows from the connection's buffer.
//! A head that cannot be parsed is a [`ParseError`], each with its status.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

/// A parsed request head, borrowing from the connection's buffer.
#[derive(Debug)]
pub struct Request<'a> {
    pub method: &'a str,
    /// Origin form (`/v2/...?ns=...`); an absolute-form target is reduced to it.
    pub target: &'a str,
    pub version: Version,
    headers: Vec<(&'a str, &'a [u8])>,
}

impl<'a> Request<'a> {
    /// Every value of header `name` (case-insensitive), in order.
    pub fn headers<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a [u8]> + 's {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    /// The value of header `name` if it is present exactly once; `Err` if it is repeated.
    pub fn header(&self, name: &str) -> Result<Option<&'a [u8]>, ()> {
        let mut values = self.headers(name);
        let first = values.next();
        match values.next() {
            Some(_) => Err(()),
            None => Ok(first),
        }
    }

    /// Whether a comma-separated header (`Connection`) lists `token`.
    pub(super) fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers(name)
            .flat_map(|v| v.split(|&b| b == b','))
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    }
}

/// Why a request head cannot be parsed: each maps to a status and closes the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Not `METHOD SP target SP HTTP/x.y`, or a byte no request line may hold.
    RequestLine,
    /// A header line without a name, with space before the colon, a folded line, or a control
    /// byte.
    Header,
    /// A well-formed version other than 1.0 and 1.1.
    Version,
    /// More than [`Limits::max_headers`] header lines.
    TooManyHeaders,
}

impl ParseError {
    pub(super) fn status(self) -> u16 {
        match self {
            ParseError::RequestLine | ParseError::Header => 400,
            ParseError::Version => 505,
            ParseError::TooManyHeaders => 431,
        }
    }

    pub(super) fn message(self) -> &'static str {
        match self {
            ParseError::RequestLine => "malformed request line",
            ParseError::Header => "malformed header line",
            ParseError::Version => "only HTTP/1.0 and HTTP/1.1 are supported",
            ParseError::TooManyHeaders => "too many header lines",
        }
    }
}

/// `tchar` of RFC 9110 §5.6.2: what methods and header names are made of.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The length of the head at the start of `buf` (through its empty line), if it is complete.
/// Lines end with CRLF or a bare LF (RFC 9112 §2.2 lets a recipient accept LF). `from` is where
/// the previous search stopped, so a head trickling in is not scanned again and again.
pub fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from.saturating_sub(2);
    while let Some(p) = buf.get(i..)?.iter().position(|&b| b == b'\n') {
        let at = i + p;
        match (buf.get(at + 1), buf.get(at + 2)) {
            (Some(b'\n'), _) => return Some(at + 2),
            (Some(b'\r'), Some(b'\n')) => return Some(at + 3),
            _ => i = at + 1,
        }
    }
    None
}

/// Whether what arrived so far can still begin a request line: printable ASCII and a method
/// token first. Lets a TLS handshake or other binary junk be refused at once, instead of
/// waiting for a head that never ends (a client probing for HTTPS then retries with HTTP).
pub fn plausible_start(buf: &[u8]) -> bool {
    let line_end = buf.iter().position(|&b| b == b'\r' || b == b'\n').unwrap_or(buf.len());
    let line = &buf[..line_end];
    let method_end = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
    line[..method_end].iter().all(|&b| is_tchar(b)) && line.iter().all(|&b| (0x20..0x7f).contains(&b))
}

/// Parse a complete head (as delimited by [`head_end`], leading empty lines already skipped).
pub fn parse_head(head: &[u8], max_headers: usize) -> Result<Request<'_>, ParseError> {
    let mut lines = head.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let line = lines.next().ok_or(ParseError::RequestLine)?;
    if !line.iter().all(|&b| (0x20..0x7f).contains(&b)) {
        return Err(ParseError::RequestLine);
    }
    let line = std::str::from_utf8(line).map_err(|_| ParseError::RequestLine)?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::RequestLine);
    };
    if method.is_empty() || !method.bytes().all(is_tchar) || target.is_empty() {
        return Err(ParseError::RequestLine);
    }
    let version = match version {
        "HTTP/1.1" => Version::Http11,
        "HTTP/1.0" => Version::Http10,
        v => {
            let b = v.as_bytes();
            let well_formed = b.len() == 8
                && v.starts_with("HTTP/")
                && b[5].is_ascii_digit()
                && b[6] == b'.'
                && b[7].is_ascii_digit();
            return Err(if well_formed {
                ParseError::Version
            } else {
                ParseError::RequestLine
            });
        }
    };
    let target = origin_form(target).ok_or(ParseError::RequestLine)?;
    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        if headers.len() == max_headers {
            return Err(ParseError::TooManyHeaders);
        }
        // A line starting with whitespace is obsolete line folding (RFC 9112 §5.2): refused.
        let colon = line.iter().position(|&b| b == b':').ok_or(ParseError::Header)?;
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(ParseError::Header);
        }
        let value = value.trim_ascii();
        if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(ParseError::Header);
        }
        let name = std::str::from_utf8(name).expect("tchars are ASCII");
        headers.push((name, value));
    }
    Ok(Request {
        method,
        target,
        version,
        headers,
    })
}

/// The origin-form of a request target: itself, or the path of an absolute-form
/// (`http://host/v2/`, which a server must accept, RFC 9112 §3.2.2). `*` is kept for OPTIONS.
fn origin_form(target: &str) -> Option<&str> {
    if target.starts_with('/') || target == "*" {
        return Some(target);
    }
    let rest = ["http://", "https://"].iter().find_map(|scheme| {
        target
            .get(..scheme.len())
            .filter(|s| s.eq_ignore_ascii_case(scheme))
            .map(|s| &target[s.len()..])
    })?;
    match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => Some(&rest[i..]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(head: &str) -> Result<Request<'_>, ParseError> {
        parse_head(head.as_bytes(), 100)
    }

    #[test]
    fn parses_request_line_and_headers() {
        let r = parse("GET /v2/library/busybox/manifests/1.36?ns=docker.io HTTP/1.1\r\nHost: x\r\nRange:  bytes=0-1 \r\nX-A: 1\r\nx-a: 2\r\n\r\n").unwrap();
        assert_eq!(
            (r.method, r.target, r.version),
            (
                "GET",
                "/v2/library/busybox/manifests/1.36?ns=docker.io",
                Version::Http11
            )
        );
        assert_eq!(r.header("range"), Ok(Some(&b"bytes=0-1"[..])));
        assert_eq!(r.header("X-A"), Err(()), "repeated");
        assert_eq!(r.header("Accept"), Ok(None));
        let r = parse("HEAD / HTTP/1.0\nConnection: Keep-Alive, foo\n\n").unwrap();
        assert_eq!(r.version, Version::Http10);
        assert!(r.has_token("connection", "keep-alive"));
        let r = parse("GET http://127.0.0.1:5000/v2/?x HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(r.target, "/v2/?x");
        let r = parse("GET HTTP://h/ HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(r.target, "/");
    }

    #[test]
    fn rejects_malformed_request_lines() {
        for bad in [
            "GET  /v2/ HTTP/1.1\r\n\r\n",
            "GET /v2/  HTTP/1.1\r\n\r\n",
            "GET /v2/ HTTP/1.1 x\r\n\r\n",
            "GET /v2/\r\n\r\n",
            " GET /v2/ HTTP/1.1\r\n\r\n",
            "G(T /v2/ HTTP/1.1\r\n\r\n",
            "GET /v2/ http/1.1\r\n\r\n",
            "GET /v2/ HTTP/11\r\n\r\n",
            "GET v2/ HTTP/1.1\r\n\r\n",
            "GET http://host HTTP/1.1\r\n\r\n",
            "GET ftp://host/ HTTP/1.1\r\n\r\n",
            "GET /v2/\tx HTTP/1.1\r\n\r\n",
            "GET /v2/\x7f HTTP/1.1\r\n\r\n",
            "GET /v2/\rx HTTP/1.1\r\n\r\n",
            "GET /caf\u{e9} HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(parse(bad).unwrap_err(), ParseError::RequestLine, "{bad:?}");
        }
        assert_eq!(parse("GET / HTTP/2.0\r\n\r\n").unwrap_err(), ParseError::Version);
        assert_eq!(
            parse("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap_err(),
            ParseError::Version
        );
        assert_eq!(parse("GET / HTTP/0.9\r\n\r\n").unwrap_err(), ParseError::Version);
    }

    #[test]
    fn rejects_malformed_headers() {
        for bad in [
            "GET / HTTP/1.1\r\nHost : x\r\n\r\n",
            "GET / HTTP/1.1\r\nHost\r\n\r\n",
            "GET / HTTP/1.1\r\n: x\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
            "GET / HTTP/1.1\r\nHo st: x\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\0y\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\ry\r\n\r\n",
            "GET / HTTP/1.1\r\nX: \x1b[31m\r\n\r\n",
        ] {
            assert_eq!(parse(bad).unwrap_err(), ParseError::Header, "{bad:?}");
        }
        let many: String = (0..101).map(|i| format!("X-{i}: y\r\n")).collect();
        assert_eq!(
            parse(&format!("GET / HTTP/1.1\r\n{many}\r\n")).unwrap_err(),
            ParseError::TooManyHeaders
        );
        // obs-text in a value is allowed and passed through as bytes.
        let r = parse_head(b"GET / HTTP/1.1\r\nX: caf\xe9\r\n\r\n", 100).unwrap();
        assert_eq!(r.header("x"), Ok(Some(&b"caf\xe9"[..])));
    }

    #[test]
    fn finds_the_end_of_a_head() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nNEXT", 0), Some(27));
        assert_eq!(head_end(b"GET / HTTP/1.1\nHost: x\n\nNEXT", 0), Some(24));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n", 0), None);
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n\r", 0), None);
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\n", 0), Some(18));
        // Resuming a search where the previous one stopped still finds a split terminator.
        let full = b"GET / HTTP/1.1\r\n\r\n";
        assert_eq!(head_end(full, 16), Some(18));
        assert_eq!(head_end(full, 17), Some(18));
        assert_eq!(head_end(b"", 0), None);
    }

    #[test]
    fn refuses_binary_junk_before_a_head_completes() {
        assert!(plausible_start(b""));
        assert!(plausible_start(b"GE"));
        assert!(plausible_start(b"GET /v2/ HT"));
        assert!(
            !plausible_start(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
            "a TLS ClientHello"
        );
        assert!(!plausible_start(b"G\0"));
        assert!(!plausible_start(b"GET /\x80"));
        assert!(!plausible_start(b"(GET"));
    }
}
