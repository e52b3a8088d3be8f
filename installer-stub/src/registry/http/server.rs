//! The server: the accept loop (a slot for each connection, or 503), then one thread per
//! connection reading request heads against their deadline, answering through the
//! [`Handler`], and keeping the connection for the next request or closing it.

use std::fs::File;
use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::request::{head_end, parse_head, plausible_start, Request, Version};
use super::response::{head, Body, Response};
use super::send::{copy_file, linger_close, reset_on_close, send_file, Buffers, Pace, SendError, LINGER};
use super::slots::{Held, Refused, Slots};
use super::{Handler, Limits};

/// The server: a handler, the file its [`Body::File`] bodies come from, and limits.
pub struct Server<H> {
    handler: H,
    file: File,
    limits: Limits,
    /// One stderr line per request.
    access_log: bool,
    buffers: Buffers,
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
        let slots = Arc::new(Slots::new(&self.limits));
        let server = Arc::new(self);
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
            let accepted = Instant::now();
            let id = match slots.admit(peer.ip().to_canonical(), stream.as_raw_fd()) {
                Ok(id) => id,
                Err(refused) => {
                    if throttle.ready() {
                        match refused {
                            Refused::Address => terminal::log(format_args!(
                                "error: {} holds {} connections, the most one address may, all busy: answering 503 to its new ones",
                                peer.ip(),
                                slots.per_address
                            )),
                            Refused::Full => terminal::log(format_args!(
                                "error: {} connections open and sending responses, the limit: answering 503 to new ones",
                                slots.max
                            )),
                        }
                    }
                    server.refuse(stream, peer);
                    continue;
                }
            };
            let held = Held {
                stream,
                id,
                slots: Arc::clone(&slots),
            };
            let conn = Arc::clone(&server);
            let spawned = std::thread::Builder::new()
                .name("http".into())
                .stack_size(server.limits.stack_size)
                .spawn(move || conn.connection(held, peer, accepted));
            if let Err(e) = spawned {
                if throttle.ready() {
                    terminal::log(format_args!("error: failed to start a connection thread: {e}"));
                }
            }
        }
    }

    /// No slot: a short 503 without reading the request, then close. Sent without waiting (a
    /// new socket's buffer takes it whole), so no client can stall the accept loop.
    fn refuse(&self, stream: TcpStream, peer: SocketAddr) {
        let mut response = self.handler.error(503, "too many connections; retry later");
        response.headers.push(("Retry-After", "1".into()));
        let mut bytes = head(&response, false);
        if let Body::Bytes(b) = &response.body {
            bytes.extend_from_slice(b);
        }
        // SAFETY: the pointer and length describe a live buffer; the descriptor is open.
        unsafe {
            libc::send(
                stream.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
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
    fn connection(&self, mut held: Held, peer: SocketAddr, accepted: Instant) {
        if held.stream.set_nodelay(true).is_err() {
            return;
        }
        let mut buf = vec![0u8; self.limits.max_head];
        let mut len = 0;
        // The head deadline runs from the accept, then from the end of each response.
        let mut deadline = accepted + self.limits.timeout;
        loop {
            let head_len = match self.read_head(&mut held.stream, &mut buf, &mut len, deadline) {
                Ok(Some(n)) => n,
                Ok(None) => return,
                Err(HeadError::Io) => return,
                Err(HeadError::Status(status, message)) => {
                    let response = self.handler.error(status, message);
                    self.log(peer, "-", "-", &response);
                    let _ = self.write(&held.stream, &response, false, false);
                    // Past the deadline the client has had all its time: no more lingering.
                    let linger = if status == 408 { Duration::ZERO } else { LINGER };
                    return linger_close(&mut held.stream, linger);
                }
            };
            let (response, head_only, keep_alive) = match parse_head(&buf[..head_len], self.limits.max_headers) {
                Err(e) => {
                    let response = self.handler.error(e.status(), e.message());
                    self.log(peer, "-", "-", &response);
                    let _ = self.write(&held.stream, &response, false, false);
                    return linger_close(&mut held.stream, LINGER);
                }
                Ok(request) => {
                    held.serving(true);
                    let (response, keep_alive) = self.respond(&request);
                    self.log(peer, request.method, request.target, &response);
                    (response, request.method == "HEAD", keep_alive)
                }
            };
            match self.write(&held.stream, &response, head_only, keep_alive) {
                Ok(()) => {}
                Err(SendError::Peer) => return,
                Err(SendError::Slow) => return reset_on_close(held.stream.as_raw_fd()),
                // A client that goes away mid-body is routine; a bundle file that cannot be read
                // is not.
                Err(SendError::File(e)) => {
                    terminal::log(format_args!("error: failed to send a blob from the bundle file: {e}"));
                    return;
                }
            }
            held.serving(false);
            if !keep_alive {
                return linger_close(&mut held.stream, LINGER);
            }
            buf.copy_within(head_len..len, 0);
            len -= head_len;
            deadline = Instant::now() + self.limits.timeout;
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
    /// The head must be complete by `deadline`, however slowly it trickles.
    fn read_head(
        &self,
        stream: &mut TcpStream,
        buf: &mut [u8],
        len: &mut usize,
        deadline: Instant,
    ) -> Result<Option<usize>, HeadError> {
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

    /// Write the status line, headers and (unless `head_only`) the body, held to the minimum
    /// rate.
    fn write(&self, stream: &TcpStream, r: &Response, head_only: bool, keep_alive: bool) -> Result<(), SendError> {
        let mut head = head(r, keep_alive);
        let mut pace = Pace::new(stream, &self.limits);
        match &r.body {
            _ if head_only => pace.send_all(&head, 0),
            Body::Bytes(b) => {
                head.extend_from_slice(b);
                pace.send_all(&head, 0)
            }
            Body::File { len: 0, .. } => pace.send_all(&head, 0),
            Body::File { offset, len } => {
                // MSG_MORE: the kernel holds the head to go out with the body that follows, so a
                // small response is one segment and no Nagle/delayed-ACK stall sits between.
                pace.send_all(&head, libc::MSG_MORE)?;
                match self.buffers.take() {
                    Some(mut lease) => copy_file(&mut pace, &self.file, *offset, *len, lease.buf()),
                    None => send_file(&mut pace, &self.file, *offset, *len),
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

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::fs::{FileExt, OpenOptionsExt};

    use super::super::send::set_socket_option;
    use super::*;

    /// Answers `/body` with the file's bytes 2..7, `/empty` with none of them, `/past` with
    /// 5 bytes from 8 (the file has 10), `/big` with [`BIG`] bytes (served by [`start_big`]),
    /// anything else with a small text.
    struct Echo;

    /// Far more than loopback's socket buffers hold: a client that stops reading stops the body.
    const BIG: u64 = 256 << 20;

    impl Handler for Echo {
        fn handle(&self, request: &Request<'_>) -> Response {
            let body = if request.target == "/body" {
                Body::File { offset: 2, len: 5 }
            } else if request.target == "/past" {
                Body::File { offset: 8, len: 5 }
            } else if request.target == "/big" {
                Body::File { offset: 0, len: BIG }
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
        serve(limits, 10)
    }

    /// A server whose file is [`BIG`] bytes long (sparse: no disk used), for `/big`.
    fn start_big(limits: Limits) -> SocketAddr {
        serve(limits, BIG)
    }

    fn serve(limits: Limits, file_len: u64) -> SocketAddr {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_TMPFILE)
            .open(std::env::temp_dir())
            .unwrap();
        file.write_all_at(b"0123456789", 0).unwrap();
        file.set_len(file_len).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = Server::new(Echo, file, limits, false);
        std::thread::spawn(move || server.run(listener));
        addr
    }

    /// A client socket whose source address is `from` (every 127.x.y.z is this machine's, so
    /// tests can play several client addresses), with a small receive buffer so that a client
    /// that stops reading stops the server's writes soon.
    fn connect_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
        use std::os::fd::FromRawFd;
        let sockaddr = |ip: [u8; 4], port: u16| libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(ip),
            },
            sin_zero: [0; 8],
        };
        let SocketAddr::V4(to) = to else { panic!("IPv4 only") };
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        // SAFETY: a fresh descriptor, owned by the TcpStream at once; pointers to locals.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            assert!(fd >= 0, "{}", io::Error::last_os_error());
            let stream = TcpStream::from_raw_fd(fd);
            set_socket_option(fd, libc::SO_RCVBUF, &4096 as &libc::c_int);
            let local = sockaddr(from, 0);
            assert_eq!(
                libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), len),
                0,
                "{}",
                io::Error::last_os_error()
            );
            let remote = sockaddr(to.ip().octets(), to.port());
            assert_eq!(
                libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), len),
                0,
                "{}",
                io::Error::last_os_error()
            );
            stream
        }
    }

    /// One request with `Connection: close` from `from`; the status, or `""` if none came.
    fn status_from(from: [u8; 4], addr: SocketAddr, target: &str) -> String {
        let mut s = connect_from(from, addr);
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let request = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        if s.write_all(request.as_bytes()).is_err() {
            return String::new();
        }
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        statuses(&String::from_utf8_lossy(&out))
            .first()
            .map_or(String::new(), |s| s.to_string())
    }

    /// Sends `GET /big` from `from` and reads the response's status line only: then the client
    /// holds the connection, its server busy with a body nobody reads.
    fn start_big_download(from: [u8; 4], addr: SocketAddr) -> (TcpStream, String) {
        let mut s = connect_from(from, addr);
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut line = [0u8; 12];
        let status = match s.read_exact(&mut line) {
            Ok(()) => String::from_utf8_lossy(&line[9..]).into_owned(),
            Err(_) => String::new(),
        };
        (s, status)
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
        // Two idle connections fill the server: a third closes the one waiting longest.
        let mut a = connect_from([127, 0, 0, 2], addr);
        let b = connect_from([127, 0, 0, 3], addr);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(status_from([127, 0, 0, 4], addr, "/a"), "200");
        a.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        assert_eq!(
            a.read(&mut [0u8; 16]).unwrap(),
            0,
            "the oldest idle connection is closed"
        );
        drop(b);
    }

    /// Eight connection slots, two per address, and a timeout far longer than any test here.
    fn eight_slots() -> Limits {
        Limits {
            timeout: Duration::from_secs(10),
            max_connections: 8,
            ..Limits::default()
        }
    }

    /// Issue 12: a thousand connections that never send a request held every slot for the
    /// whole head timeout, and every new client got 503 meanwhile.
    #[test]
    fn idle_connections_do_not_lock_out_new_clients() {
        let addr = start(eight_slots());
        let idle: Vec<TcpStream> = (0..20).map(|_| connect_from([127, 0, 0, 1], addr)).collect();
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(
            status_from([127, 0, 0, 1], addr, "/a"),
            "200",
            "from the idle clients' address"
        );
        assert_eq!(status_from([127, 0, 0, 2], addr, "/a"), "200", "from another address");
        drop(idle);
    }

    /// Issue 12: clients reading at 1 KiB/s held every slot for as long as they read.
    #[test]
    fn slow_readers_do_not_lock_out_new_clients() {
        let addr = start_big(eight_slots());
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut readers = Vec::new();
        for from in 2..6 {
            for _ in 0..2 {
                let (mut s, status) = start_big_download([127, 0, 0, from], addr);
                assert_eq!(status, "200");
                let stop = Arc::clone(&stop);
                readers.push(std::thread::spawn(move || {
                    let mut kib = [0u8; 1024];
                    while !stop.load(Ordering::Relaxed) && s.read(&mut kib).is_ok_and(|n| n > 0) {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }));
            }
        }
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(status_from([127, 0, 0, 6], addr, "/a"), "200");
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            r.join().unwrap();
        }
    }

    /// Issue 12: a client that stopped reading held its slot about three times the documented
    /// timeout (94 s for 30 s): the send timeout bounded each write call, and a call that moved
    /// a single byte started the clock again.
    #[test]
    fn client_that_never_reads_is_dropped_within_the_documented_time() {
        let timeout = Duration::from_secs(1);
        let addr = start_big(Limits {
            timeout,
            max_connections: 1,
            ..Limits::default()
        });
        let (never_reads, status) = start_big_download([127, 0, 0, 2], addr);
        assert_eq!(status, "200");
        let t = Instant::now();
        assert_eq!(status_from([127, 0, 0, 3], addr, "/a"), "503", "the one slot is taken");
        while status_from([127, 0, 0, 3], addr, "/a") != "200" {
            assert!(t.elapsed() < Duration::from_secs(10), "the slot was never freed");
            std::thread::sleep(Duration::from_millis(100));
        }
        // Generous: the documented bound is the timeout itself.
        assert!(t.elapsed() < timeout + Duration::from_secs(1), "held {:?}", t.elapsed());
        drop(never_reads);
    }

    /// Issue 12: one client address could take every connection slot.
    #[test]
    fn one_address_cannot_take_every_slot() {
        let addr = start_big(eight_slots());
        let downloads: Vec<(TcpStream, String)> = (0..8).map(|_| start_big_download([127, 0, 0, 2], addr)).collect();
        let statuses: Vec<&str> = downloads.iter().map(|(_, status)| status.as_str()).collect();
        assert_eq!(
            statuses,
            ["200", "200", "503", "503", "503", "503", "503", "503"],
            "a quarter of the slots per address"
        );
        assert_eq!(status_from([127, 0, 0, 3], addr, "/a"), "200");
        drop(downloads);
    }

    /// A head sent a byte at a time must still arrive whole within the timeout, counted from
    /// the end of the previous response on a keep-alive connection; then the slot is free.
    #[test]
    fn trickled_headers_hit_the_deadline() {
        let timeout = Duration::from_millis(500);
        let addr = start(Limits {
            timeout,
            ..Limits::default()
        });
        let mut s = connect_from([127, 0, 0, 2], addr);
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut first = Vec::new();
        while !first.ends_with(b"GET /a") {
            let mut buf = [0u8; 256];
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&first));
            first.extend_from_slice(&buf[..n]);
        }
        let t = Instant::now();
        let trickle = b"GET /a HTTP/1.1\r\nHost: x\r\nX: "
            .iter()
            .chain(std::iter::repeat(&b'y'));
        for byte in trickle {
            if s.write_all(&[*byte]).is_err() {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(6), "never closed");
            std::thread::sleep(Duration::from_millis(50));
        }
        // Writes fail once the server has closed: generous, the deadline is 0.5 s.
        assert!(
            t.elapsed() < timeout + Duration::from_secs(1),
            "closed after {:?}",
            t.elapsed()
        );
    }
}
