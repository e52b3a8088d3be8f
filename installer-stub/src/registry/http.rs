//! A minimal HTTP/1.1 server for a read-only API: request heads only (GET and HEAD carry no
//! body), keep-alive and pipelining, HTTP/1.0, byte ranges, and bodies sent straight from one
//! file.
//!
//! Bounded by construction: one thread per connection with a small stack, at most
//! [`Limits::max_connections`] of them (beyond that a 503 and close), one fixed buffer of
//! [`Limits::max_head`] bytes per connection (a larger head gets 431), and a deadline for each
//! request head (idle keep-alive connections and slow senders are closed). Request bodies are
//! never read: a request that announces one is answered and the connection closed, so its bytes
//! can never be taken for a next request.
//!
//! File bodies go out through a fixed pool of [`Limits::copy_buffers`] buffers (pread, then
//! write), and with sendfile(2) while every buffer is in use. Copying looks like the slower way,
//! but sendfile hands the socket one reference per 4 KiB page cache page, and when the reader is
//! on the same machine (loopback, the registry host's own containerd) every one of those pages is
//! taken and released again on the receiving side, by every client pulling the same blob: with
//! the clients of `tests/bench/registry.sh` the copy was about 1.3 times faster (2 cores, 8
//! clients, the pool switched off for comparison). The pool keeps memory bounded whatever the
//! number of clients.
//! Grammar: RFC 9112 (messages) and RFC 9110 §14 (ranges).

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What one server may use.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Request line plus headers, in bytes.
    pub max_head: usize,
    pub max_headers: usize,
    /// For a whole request head to arrive (from the end of the previous response), and for any
    /// write to make progress.
    pub timeout: Duration,
    pub max_connections: usize,
    pub stack_size: usize,
    /// Buffers file bodies are copied through, at most; allocated when first needed.
    pub copy_buffers: usize,
    /// Bytes in each, and in each read of the file.
    pub copy_buffer_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head: 16 << 10,
            max_headers: 100,
            timeout: Duration::from_secs(30),
            max_connections: 256,
            stack_size: 256 << 10,
            copy_buffers: 16,
            copy_buffer_size: 1 << 20,
        }
    }
}

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
    fn has_token(&self, name: &str, token: &str) -> bool {
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
    fn status(self) -> u16 {
        match self {
            ParseError::RequestLine | ParseError::Header => 400,
            ParseError::Version => 505,
            ParseError::TooManyHeaders => 431,
        }
    }

    fn message(self) -> &'static str {
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

/// What a `Range` header asks of a representation of `len` bytes (RFC 9110 §14).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// No range, a unit other than bytes, or several ranges: send everything (a server may
    /// ignore Range; a single range is all that image clients ask for).
    Whole,
    /// First and last byte, inclusive.
    Part(u64, u64),
    /// Malformed, or outside the representation: 416.
    Unsatisfiable,
}

/// Interpret a `Range` header value against a length.
pub fn parse_range(value: Option<&[u8]>, len: u64) -> ByteRange {
    let Some(value) = value else {
        return ByteRange::Whole;
    };
    let Ok(value) = std::str::from_utf8(value) else {
        return ByteRange::Unsatisfiable;
    };
    let Some((unit, set)) = value.split_once('=') else {
        return ByteRange::Unsatisfiable;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return ByteRange::Whole;
    }
    // A list: empty elements and whitespace around commas are allowed (RFC 9110 §5.6.1).
    let specs: Vec<&str> = set
        .split(',')
        .map(|s| s.trim_matches([' ', '\t']))
        .filter(|s| !s.is_empty())
        .collect();
    let parsed: Vec<Option<(Option<u64>, Option<u64>)>> = specs.iter().map(|s| range_spec(s)).collect();
    match parsed.as_slice() {
        [Some(spec)] => resolve(*spec, len),
        [] => ByteRange::Unsatisfiable,
        many if many.iter().all(Option::is_some) => ByteRange::Whole,
        _ => ByteRange::Unsatisfiable,
    }
}

/// `first-last`, `first-` or `-suffix`, digits only; `None` if malformed or `last < first`.
fn range_spec(s: &str) -> Option<(Option<u64>, Option<u64>)> {
    let (a, b) = s.split_once('-')?;
    let num = |t: &str| -> Option<Option<u64>> {
        if t.is_empty() {
            Some(None)
        } else if t.bytes().all(|c| c.is_ascii_digit()) {
            t.parse().ok().map(Some)
        } else {
            None
        }
    };
    let (first, last) = (num(a)?, num(b)?);
    match (first, last) {
        (None, None) => None,
        (Some(f), Some(l)) if l < f => None,
        spec => Some(spec),
    }
}

fn resolve(spec: (Option<u64>, Option<u64>), len: u64) -> ByteRange {
    match spec {
        (Some(first), _) if first >= len => ByteRange::Unsatisfiable,
        (Some(first), None) => ByteRange::Part(first, len - 1),
        (Some(first), Some(last)) => ByteRange::Part(first, last.min(len - 1)),
        (None, Some(0)) => ByteRange::Unsatisfiable,
        (None, Some(_)) if len == 0 => ByteRange::Unsatisfiable,
        (None, Some(suffix)) => ByteRange::Part(len - suffix.min(len), len - 1),
        (None, None) => ByteRange::Unsatisfiable,
    }
}

/// A response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Bytes(Vec<u8>),
    /// `len` bytes of the served file from `offset`.
    File {
        offset: u64,
        len: u64,
    },
}

impl Body {
    pub fn len(&self) -> u64 {
        match self {
            Body::Bytes(b) => b.len() as u64,
            Body::File { len, .. } => *len,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Besides Content-Length and Connection, which the server writes.
    pub headers: Vec<(&'static str, String)>,
    /// What a GET gets; a HEAD gets the same head and no body.
    pub body: Body,
}

impl Response {
    #[cfg(test)]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        416 => "Range Not Satisfiable",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// What answers requests. `error` builds the responses the server itself must give (malformed
/// requests, overload), so they look like the handler's own errors.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, request: &Request<'_>) -> Response;
    fn error(&self, status: u16, message: &str) -> Response;
}

/// The server: a handler, the file its [`Body::File`] bodies come from, and limits.
pub struct Server<H> {
    handler: H,
    file: File,
    limits: Limits,
    /// One stderr line per request.
    access_log: bool,
    buffers: Buffers,
}

/// The pool file bodies are copied through: at most `max` buffers, each allocated on first use
/// and kept for the next body.
struct Buffers {
    max: usize,
    size: usize,
    /// Free buffers, and how many exist in all.
    pool: Mutex<(Vec<Box<[u8]>>, usize)>,
}

impl Buffers {
    /// A free buffer, or `None` when all `max` are in use.
    fn take(&self) -> Option<Lease<'_>> {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(buf) = pool.0.pop() {
            return Some(Lease {
                buf: Some(buf),
                owner: self,
            });
        }
        if pool.1 == self.max {
            return None;
        }
        pool.1 += 1;
        drop(pool);
        let buf = vec![0u8; self.size].into_boxed_slice();
        Some(Lease {
            buf: Some(buf),
            owner: self,
        })
    }
}

/// A buffer out of the pool; it goes back when dropped.
struct Lease<'a> {
    buf: Option<Box<[u8]>>,
    owner: &'a Buffers,
}

impl Lease<'_> {
    fn buf(&mut self) -> &mut [u8] {
        self.buf.as_deref_mut().expect("held until dropped")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(buf) = self.buf.take() {
            self.owner.pool.lock().unwrap_or_else(|e| e.into_inner()).0.push(buf);
        }
    }
}

/// Why a response was not sent in full.
#[derive(Debug)]
enum SendError {
    /// The client went away or stopped reading: routine.
    Peer,
    /// The served file could not be read where the response said: worth a log line.
    File(io::Error),
}

/// Rate-limits a repeated log line (accept failures, overload) to one per few seconds.
struct Throttle(AtomicU64);

impl Throttle {
    fn ready(&self) -> bool {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let last = self.0.load(Ordering::Relaxed);
        now >= last + 5
            && self
                .0
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

/// Decrements the connection count when a connection's thread ends (or never starts).
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<H: Handler> Server<H> {
    pub fn new(handler: H, file: File, limits: Limits, access_log: bool) -> Self {
        let buffers = Buffers {
            max: limits.copy_buffers,
            size: limits.copy_buffer_size.max(1),
            pool: Mutex::new((Vec::new(), 0)),
        };
        Server {
            handler,
            file,
            limits,
            access_log,
            buffers,
        }
    }

    /// Accept connections until the process is killed.
    pub fn run(self, listener: TcpListener) -> ! {
        let server = Arc::new(self);
        let active = Arc::new(AtomicUsize::new(0));
        let throttle = Throttle(AtomicU64::new(0));
        loop {
            let (stream, peer) = match listener.accept() {
                Ok(c) => c,
                Err(e) => {
                    match e.kind() {
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted => {}
                        // Out of descriptors or memory: back off rather than spin.
                        _ => {
                            if throttle.ready() {
                                terminal::log(format_args!("error: failed to accept a connection: {e}"));
                            }
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                    continue;
                }
            };
            if active.fetch_add(1, Ordering::AcqRel) >= server.limits.max_connections {
                let _slot = Slot(Arc::clone(&active));
                if throttle.ready() {
                    terminal::log(format_args!(
                        "error: {} connections open, the limit: answering 503 to new ones",
                        server.limits.max_connections
                    ));
                }
                server.refuse(stream, peer);
                continue;
            }
            let slot = Slot(Arc::clone(&active));
            let conn = Arc::clone(&server);
            let spawned = std::thread::Builder::new()
                .name("http".into())
                .stack_size(server.limits.stack_size)
                .spawn(move || {
                    let _slot = slot;
                    conn.connection(stream, peer);
                });
            if let Err(e) = spawned {
                if throttle.ready() {
                    terminal::log(format_args!("error: failed to start a connection thread: {e}"));
                }
            }
        }
    }

    /// Over capacity: a short 503 without reading the request, then close.
    fn refuse(&self, mut stream: TcpStream, peer: SocketAddr) {
        let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
        let mut response = self.handler.error(503, "too many connections; retry later");
        response.headers.push(("Retry-After", "1".into()));
        let _ = self.write(&mut stream, &response, false, false);
        self.log(peer, "-", "-", &response);
        let _ = stream.shutdown(Shutdown::Both);
    }

    fn log(&self, peer: SocketAddr, method: &str, target: &str, response: &Response) {
        if self.access_log {
            let target: String = target.chars().take(256).collect();
            terminal::log(format_args!(
                "{peer} \"{method} {target}\" {} {}",
                response.status,
                response.body.len()
            ));
        }
    }

    /// Serve requests on one connection until it closes, errs, times out, or asks to close.
    fn connection(&self, mut stream: TcpStream, peer: SocketAddr) {
        let timeout = self.limits.timeout;
        if stream.set_write_timeout(Some(timeout)).is_err() || stream.set_nodelay(true).is_err() {
            return;
        }
        let mut buf = vec![0u8; self.limits.max_head];
        let mut len = 0;
        loop {
            let head_len = match self.read_head(&mut stream, &mut buf, &mut len) {
                Ok(Some(n)) => n,
                Ok(None) => return,
                Err(HeadError::Io) => return,
                Err(HeadError::Status(status, message)) => {
                    let response = self.handler.error(status, message);
                    self.log(peer, "-", "-", &response);
                    let _ = self.write(&mut stream, &response, false, false);
                    return linger_close(stream);
                }
            };
            let (response, head_only, keep_alive) = match parse_head(&buf[..head_len], self.limits.max_headers) {
                Err(e) => {
                    let response = self.handler.error(e.status(), e.message());
                    self.log(peer, "-", "-", &response);
                    let _ = self.write(&mut stream, &response, false, false);
                    return linger_close(stream);
                }
                Ok(request) => {
                    let (response, keep_alive) = self.respond(&request);
                    self.log(peer, request.method, request.target, &response);
                    (response, request.method == "HEAD", keep_alive)
                }
            };
            if let Err(e) = self.write(&mut stream, &response, head_only, keep_alive) {
                // A client that goes away mid-body is routine; a bundle file that cannot be read
                // is not.
                if let SendError::File(e) = e {
                    terminal::log(format_args!("error: failed to send a blob from the bundle file: {e}"));
                }
                return;
            }
            if !keep_alive {
                return linger_close(stream);
            }
            buf.copy_within(head_len..len, 0);
            len -= head_len;
        }
    }

    /// The response to a parsed request and whether the connection may stay open.
    fn respond(&self, request: &Request<'_>) -> (Response, bool) {
        let mut keep_alive = match request.version {
            Version::Http11 => !request.has_token("Connection", "close"),
            Version::Http10 => request.has_token("Connection", "keep-alive"),
        };
        let hosts = request.headers("Host").count();
        if hosts > 1 || (hosts == 0 && request.version == Version::Http11) {
            return (
                self.handler
                    .error(400, "an HTTP/1.1 request needs exactly one Host header"),
                false,
            );
        }
        // Bodies are never read, so a request announcing one ends the connection: its bytes must
        // never be parsed as a next request. Content-Length is only inspected, never trusted.
        let chunked = request.headers("Transfer-Encoding").next().is_some();
        let mut lengths = request.headers("Content-Length");
        let body = match (lengths.next(), lengths.next()) {
            (None, _) => false,
            (Some(v), None) if !v.is_empty() && v.iter().all(u8::is_ascii_digit) => v.iter().any(|&d| d != b'0'),
            _ => return (self.handler.error(400, "invalid Content-Length"), false),
        };
        if chunked || body {
            keep_alive = false;
            if matches!(request.method, "GET" | "HEAD") {
                return (self.handler.error(400, "GET and HEAD requests have no body"), false);
            }
        }
        (self.handler.handle(request), keep_alive)
    }

    /// Fill `buf` until it holds a complete head; returns its length, or `None` if the client
    /// closed or went quiet between requests. Leading empty lines are dropped (RFC 9112 §2.2).
    fn read_head(&self, stream: &mut TcpStream, buf: &mut [u8], len: &mut usize) -> Result<Option<usize>, HeadError> {
        let deadline = Instant::now() + self.limits.timeout;
        let mut searched = 0;
        loop {
            let blank = buf[..*len].iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
            if blank > 0 {
                buf.copy_within(blank..*len, 0);
                *len -= blank;
                searched = 0;
            }
            if let Some(end) = head_end(&buf[..*len], searched) {
                return Ok(Some(end));
            }
            searched = *len;
            if !plausible_start(&buf[..*len]) {
                return Err(HeadError::Status(400, "malformed request line"));
            }
            if *len == buf.len() {
                return Err(HeadError::Status(431, "request head too large"));
            }
            let now = Instant::now();
            if now >= deadline {
                return if *len == 0 {
                    Ok(None)
                } else {
                    Err(HeadError::Status(408, "request head too slow"))
                };
            }
            stream
                .set_read_timeout(Some(deadline - now))
                .map_err(|_| HeadError::Io)?;
            match stream.read(&mut buf[*len..]) {
                Ok(0) if *len == 0 => return Ok(None),
                Ok(0) => return Err(HeadError::Io),
                Ok(n) => *len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    return if *len == 0 {
                        Ok(None)
                    } else {
                        Err(HeadError::Status(408, "request head too slow"))
                    };
                }
                Err(_) => return Err(HeadError::Io),
            }
        }
    }

    /// Write the status line, headers and (unless `head_only`) the body.
    fn write(&self, stream: &mut TcpStream, r: &Response, head_only: bool, keep_alive: bool) -> Result<(), SendError> {
        let mut head = format!("HTTP/1.1 {} {}\r\n", r.status, reason(r.status));
        for (name, value) in &r.headers {
            head.push_str(name);
            head.push_str(": ");
            head.push_str(value);
            head.push_str("\r\n");
        }
        head.push_str(&format!("Content-Length: {}\r\n", r.body.len()));
        head.push_str(if keep_alive {
            "Connection: keep-alive\r\n\r\n"
        } else {
            "Connection: close\r\n\r\n"
        });
        let mut head = head.into_bytes();
        match &r.body {
            _ if head_only => stream.write_all(&head).map_err(|_| SendError::Peer),
            Body::Bytes(b) => {
                head.extend_from_slice(b);
                stream.write_all(&head).map_err(|_| SendError::Peer)
            }
            Body::File { len: 0, .. } => stream.write_all(&head).map_err(|_| SendError::Peer),
            Body::File { offset, len } => {
                send_more(stream, &head).map_err(|_| SendError::Peer)?;
                match self.buffers.take() {
                    Some(mut lease) => copy_file(stream, &self.file, *offset, *len, lease.buf()),
                    None => send_file(stream, &self.file, *offset, *len),
                }
            }
        }
    }
}

enum HeadError {
    /// Answer with this status and close.
    Status(u16, &'static str),
    /// Just close.
    Io,
}

/// Close after the client had a chance to read the response: stop writing, then drain what it
/// still sends for a moment, so unread request bytes do not turn the close into a reset that
/// destroys the response in flight.
fn linger_close(mut stream: TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    // At most 2 s in all: a client trickling bytes must not hold a connection slot.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    let mut sink = [0u8; 4096];
    let mut drained = 0;
    while drained < 1 << 20 {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

/// Write all of `bytes` with MSG_MORE: the kernel holds them to go out with the body that
/// follows, so a small response is one segment and no Nagle/delayed-ACK stall sits between.
fn send_more(stream: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        // SAFETY: the pointer and length describe a live slice; the descriptor is open.
        let n = unsafe {
            libc::send(
                stream.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                libc::MSG_MORE | libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        bytes = &bytes[n as usize..];
    }
    Ok(())
}

/// Send `len` bytes of `file` from `offset` through `buf`: read a buffer's worth, write it, again.
fn copy_file(stream: &TcpStream, file: &File, offset: u64, len: u64, buf: &mut [u8]) -> Result<(), SendError> {
    let (mut at, end) = (offset, offset + len);
    while at < end {
        let want = usize::try_from(end - at).map_or(buf.len(), |left| left.min(buf.len()));
        let n = match file.read_at(&mut buf[..want], at) {
            Ok(0) => return Err(SendError::File(file_ends(offset + len))),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(SendError::File(e)),
        };
        (&*stream).write_all(&buf[..n]).map_err(|_| SendError::Peer)?;
        at += n as u64;
    }
    Ok(())
}

/// Send `len` bytes of `file` from `offset` with sendfile(2): file pages go to the socket
/// without passing through this process. The socket's send timeout bounds every stall.
fn send_file(stream: &TcpStream, file: &File, offset: u64, len: u64) -> Result<(), SendError> {
    let mut off =
        libc::off_t::try_from(offset).map_err(|_| SendError::File(io::Error::other("offset out of range")))?;
    let mut left = len;
    while left > 0 {
        let chunk = usize::try_from(left.min(1 << 30)).expect("at most 1 GiB");
        // SAFETY: both descriptors are open for the call; `off` is a valid, exclusive pointer.
        let n = unsafe { libc::sendfile(stream.as_raw_fd(), file.as_raw_fd(), &mut off, chunk) };
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // sendfile does not say which side failed; a peer is by far the likelier.
            return Err(SendError::Peer);
        }
        if n == 0 {
            return Err(SendError::File(file_ends(offset + len)));
        }
        left -= n as u64;
    }
    Ok(())
}

fn file_ends(before: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("the file ends before byte {before}"),
    )
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};

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

    #[test]
    fn range_grammar() {
        use ByteRange::*;
        let r = |v: &str, len| parse_range(Some(v.as_bytes()), len);
        assert_eq!(parse_range(None, 10), Whole);
        assert_eq!(r("bytes=0-", 10), Part(0, 9));
        assert_eq!(r("bytes=3-", 10), Part(3, 9));
        assert_eq!(r("bytes=3-5", 10), Part(3, 5));
        assert_eq!(r("bytes=3-3", 10), Part(3, 3));
        assert_eq!(r("bytes=3-999", 10), Part(3, 9));
        assert_eq!(r("bytes=9-", 10), Part(9, 9));
        assert_eq!(r("bytes=-4", 10), Part(6, 9));
        assert_eq!(r("bytes=-40", 10), Part(0, 9));
        assert_eq!(r("Bytes = 1-2 , ", 10), Part(1, 2));
        assert_eq!(r("bytes=0-1,4-5", 10), Whole, "several ranges: ignored");
        assert_eq!(r("items=0-1", 10), Whole, "another unit: ignored");
        for bad in [
            "bytes=10-",
            "bytes=10-20",
            "bytes=-0",
            "bytes=5-3",
            "bytes=-",
            "bytes=",
            "bytes=,",
            "bytes=a-b",
            "bytes=1-2-3",
            "bytes=+1-2",
            "bytes=0x1-2",
            "bytes=1 -2",
            "bytes=99999999999999999999-",
            "bytes",
            "bytes=0-1,x",
        ] {
            assert_eq!(r(bad, 10), Unsatisfiable, "{bad:?}");
        }
        assert_eq!(r("bytes=0-", 0), Unsatisfiable);
        assert_eq!(r("bytes=-1", 0), Unsatisfiable);
        assert_eq!(parse_range(Some(b"bytes=\xff-"), 10), Unsatisfiable);
        assert_eq!(r(&format!("bytes={}-", u64::MAX), u64::MAX), Unsatisfiable);
        assert_eq!(r(&format!("bytes=0-{}", u64::MAX), u64::MAX), Part(0, u64::MAX - 1));
    }

    /// Answers `/body` with the file's bytes 2..7, `/empty` with none of them, `/past` with
    /// 5 bytes from 8 (the file has 10), anything else with a small text.
    struct Echo;

    impl Handler for Echo {
        fn handle(&self, request: &Request<'_>) -> Response {
            let body = if request.target == "/body" {
                Body::File { offset: 2, len: 5 }
            } else if request.target == "/past" {
                Body::File { offset: 8, len: 5 }
            } else if request.target == "/empty" {
                Body::File { offset: 0, len: 0 }
            } else {
                Body::Bytes(format!("{} {}", request.method, request.target).into_bytes())
            };
            Response {
                status: 200,
                headers: vec![("X-Test", "1".into())],
                body,
            }
        }
        fn error(&self, status: u16, message: &str) -> Response {
            Response {
                status,
                headers: vec![],
                body: Body::Bytes(message.as_bytes().to_vec()),
            }
        }
    }

    /// A server on 127.0.0.1 with `limits`, serving an anonymous file holding `0123456789`.
    fn start(limits: Limits) -> SocketAddr {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_TMPFILE)
            .open(std::env::temp_dir())
            .unwrap();
        file.write_all_at(b"0123456789", 0).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = Server::new(Echo, file, limits, false);
        std::thread::spawn(move || server.run(listener));
        addr
    }

    /// Send `request`, then read until the server closes (or 2 s pass).
    fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.write_all(request).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The status codes of every response in `text` (bodies here never hold `HTTP/1.1 ddd`).
    fn statuses(text: &str) -> Vec<&str> {
        text.match_indices("HTTP/1.1 ")
            .map(|(i, _)| &text[i + 9..(i + 12).min(text.len())])
            .filter(|s| s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit()))
            .collect()
    }

    #[test]
    fn serves_pipelined_keep_alive_requests_and_closes_when_asked() {
        let addr = start(Limits::default());
        let out = exchange(
            addr,
            b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nHEAD /body HTTP/1.1\r\nHost: x\r\n\r\n\r\nGET /body HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /never HTTP/1.1\r\nHost: x\r\n\r\n",
        );
        assert_eq!(statuses(&out), ["200", "200", "200"], "{out}");
        assert!(
            out.contains("Content-Length: 6\r\nConnection: keep-alive\r\n\r\nGET /a"),
            "{out}"
        );
        assert!(
            out.contains("Content-Length: 5\r\nConnection: keep-alive\r\n\r\nHTTP/1.1"),
            "HEAD has no body: {out}"
        );
        assert!(
            out.ends_with("Content-Length: 5\r\nConnection: close\r\n\r\n23456"),
            "{out}"
        );
        assert!(!out.contains("/never"));
    }

    /// File bodies: copied through a pool buffer (one read, or many when the buffer is small),
    /// or sent with sendfile when the pool has no buffer; a file that ends early cuts the
    /// response and closes the connection whichever way the body goes.
    #[test]
    fn file_bodies_through_the_pool_and_with_sendfile() {
        let two = b"GET /body HTTP/1.1\r\nHost: x\r\n\r\nGET /body HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        for (copy_buffers, copy_buffer_size) in [(16, 1 << 20), (1, 3), (0, 1 << 20)] {
            let addr = start(Limits {
                copy_buffers,
                copy_buffer_size,
                ..Limits::default()
            });
            let out = exchange(addr, two);
            assert_eq!(
                out.matches("\r\n\r\n23456").count(),
                2,
                "{copy_buffers} x {copy_buffer_size}: {out}"
            );
            let out = exchange(
                addr,
                b"GET /past HTTP/1.1\r\nHost: x\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n",
            );
            assert!(
                out.ends_with("Content-Length: 5\r\nConnection: keep-alive\r\n\r\n89"),
                "{copy_buffers}: {out}"
            );
        }
    }

    #[test]
    fn the_pool_holds_at_most_its_buffers_and_reuses_them() {
        let buffers = Buffers {
            max: 2,
            size: 4,
            pool: Mutex::new((Vec::new(), 0)),
        };
        let mut a = buffers.take().unwrap();
        let b = buffers.take().unwrap();
        assert!(buffers.take().is_none(), "a third buffer past the limit of 2");
        let first = a.buf().as_ptr();
        drop(a);
        let mut again = buffers.take().expect("a returned buffer is free again");
        assert_eq!((again.buf().as_ptr(), again.buf().len()), (first, 4));
        drop((again, b));
        assert_eq!(buffers.pool.lock().unwrap().1, 2, "no buffer was allocated twice");
    }

    #[test]
    fn an_empty_file_body_is_not_held_back() {
        let addr = start(Limits::default());
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.write_all(b"GET /empty HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut buf = [0u8; 256];
        let t = Instant::now();
        let n = s.read(&mut buf).unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(
            text.starts_with("HTTP/1.1 200 OK")
                && text.ends_with("Content-Length: 0\r\nConnection: keep-alive\r\n\r\n"),
            "{text}"
        );
        assert!(t.elapsed() < Duration::from_millis(150), "held back {:?}", t.elapsed());
    }

    #[test]
    fn http_1_0_closes_unless_keep_alive() {
        let addr = start(Limits::default());
        let out = exchange(addr, b"GET /a HTTP/1.0\r\n\r\nGET /b HTTP/1.0\r\n\r\n");
        assert_eq!(statuses(&out), ["200"], "{out}");
        assert!(out.contains("Connection: close"));
        let out = exchange(
            addr,
            b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\n\r\n",
        );
        assert_eq!(statuses(&out), ["200", "200"], "{out}");
    }

    #[test]
    fn answers_bad_requests_and_closes() {
        let addr = start(Limits::default());
        let cases: [(&[u8], &str); 9] = [
            (b"GET /a HTTP/1.1\r\n\r\n", "400"),
            (b"GET /a HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", "400"),
            (
                b"GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
                "400",
            ),
            (b"GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", "400"),
            (
                b"GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
                "400",
            ),
            (
                b"GET /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                "400",
            ),
            (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "400"),
            (b"GET / HTTP/2.0\r\n\r\n", "505"),
            (b"GET /a HTTP/1.1\r\nHost: x\r\nX: \0\r\n\r\n", "400"),
        ];
        for (request, status) in cases {
            let out = exchange(addr, request);
            assert_eq!(
                statuses(&out),
                [status],
                "{:?}: {out}",
                String::from_utf8_lossy(request)
            );
            assert!(out.contains("Connection: close"));
        }
        // A request with a body gets its answer, and the body is never taken for a request.
        let out = exchange(
            addr,
            b"PUT /a HTTP/1.1\r\nHost: x\r\nContent-Length: 33\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
        );
        assert_eq!(statuses(&out), ["200"], "{out}");
        assert!(out.contains("PUT /a") && !out.contains("GET /b"));
        // Content-Length: 0 is no body.
        let out = exchange(addr, b"GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert_eq!(statuses(&out), ["200", "200"], "{out}");
    }

    #[test]
    fn limits_head_size_time_and_connections() {
        let limits = Limits {
            max_head: 256,
            timeout: Duration::from_millis(300),
            max_connections: 2,
            ..Limits::default()
        };
        let addr = start(limits);
        let big = format!("GET /a HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n", "y".repeat(300));
        assert_eq!(statuses(&exchange(addr, big.as_bytes())), ["431"]);
        // Just under the limit is fine.
        let fits = format!(
            "GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX: {}\r\n\r\n",
            "y".repeat(150)
        );
        assert_eq!(statuses(&exchange(addr, fits.as_bytes())), ["200"]);
        // A head that stops half-way gets 408 when the deadline passes; an idle one is closed.
        let t = Instant::now();
        assert_eq!(statuses(&exchange(addr, b"GET /a HTTP/1.1\r\nHo")), ["408"]);
        assert_eq!(exchange(addr, b""), "");
        assert!(t.elapsed() < Duration::from_secs(2));
        // Two idle connections fill the server: a third gets 503 at once.
        let a = TcpStream::connect(addr).unwrap();
        let b = TcpStream::connect(addr).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(statuses(&exchange(addr, b"")), ["503"]);
        drop((a, b));
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(
            statuses(&exchange(
                addr,
                b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )),
            ["200"]
        );
    }
}
