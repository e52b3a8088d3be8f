//! Node-local TCP load balancer for kube-apiservers.
//!
//! Every worker node runs one [`Balancer`] listening on `127.0.0.1:6443`; kubelet,
//! kube-proxy and friends talk to it, and it forwards each TCP connection, unchanged
//! (TLS is end to end, the balancer never looks at the bytes), to one healthy master.
//!
//! # Design decisions
//!
//! * **Std only, threads, no async runtime.** The number of connections on a worker is
//!   small (tens to a few hundred long-lived watches), so one thread per client plus
//!   one extra thread per proxied connection is simple and cheap. Threads get a 64 KiB
//!   stack ([`THREAD_STACK`]) and each direction copies through one 16 KiB heap buffer
//!   ([`COPY_BUF`]), so memory is bounded by `max_connections * (2 * 64 + 2 * 16) KiB`
//!   of address space (much less resident). Beyond `max_connections` new clients are
//!   closed immediately (the message is rate-limited to one line per second).
//! * **Backend choice: least active connections, round-robin tie break.** Apiserver
//!   clients hold watches open for a long time, so connection *count*, not rate, is
//!   the load that matters. After a master comes back it has zero connections and
//!   least-connections steers new clients to it, rebalancing over time, where plain
//!   round robin would leave it under-used. The rotating tie break spreads short
//!   connections evenly when counts are equal.
//! * **Two sources of health information.** A health thread probes every backend each
//!   `health_interval` ([`Probe`]: a TCP connect, or for API servers an HTTPS `GET /readyz`,
//!   which also catches a master whose port is open but which is not ready, and does not
//!   fill its log with aborted TLS handshakes) (all backends in parallel, so one black-holed
//!   master does not delay the others); `fall` consecutive failures mark a backend
//!   down, `rise` consecutive successes mark it up. In addition, a failed connect for a
//!   real client marks that backend down *immediately* and the client is retried on the
//!   next candidate, so a dead master costs at most one connect attempt, never a
//!   client. All backends start healthy. If every backend is marked down, every
//!   backend is still tried once (a stale view is better than refusing everybody).
//! * **Names resolved at each connect** (`host:port`, IPv6 as `[addr]:port`), so DNS
//!   changes are picked up without restart; all resolved addresses are tried in order.
//! * **Half-close is preserved:** when one side reaches EOF the other side's write half
//!   is shut down and the connection finishes when both directions are done. An I/O
//!   error in either direction tears down both sockets. `TCP_NODELAY` is set on both.
//!   There is no idle timeout: watches may legitimately be silent for a long time.
//! * **Stopping.** The accept loop blocks in `accept()`; [`Handle::stop`] sets a flag
//!   and wakes it with a connection to the listening address (loopback for a wildcard
//!   listener). [`Balancer::run`] then returns without waiting for the health thread
//!   (a probe can take `connect_timeout`; the thread exits on its own at the next
//!   check) or for established connections, which keep running until their peers close
//!   them or the process exits.
//! * **Logging** goes to stderr, one line per event, prefixed `lb: `.

pub mod service;

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Stack size of every thread the balancer spawns (connection, pipe and probe threads).
pub const THREAD_STACK: usize = 64 * 1024;
/// Size of the copy buffer used by each direction of a proxied connection.
pub const COPY_BUF: usize = 16 * 1024;

/// Balancer configuration. See [`Config::default`] for the defaults.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on (default `127.0.0.1:6443`).
    pub listen: SocketAddr,
    /// Backends as `host:port` (IPv6 literals as `[addr]:port`), resolved at each connect.
    pub backends: Vec<String>,
    /// Time between health probe rounds (default 1 s).
    pub health_interval: Duration,
    /// Timeout for connects to backends, by clients and health probes (default 2 s).
    pub connect_timeout: Duration,
    /// Consecutive failed probes that mark a backend down (default 2; 0 counts as 1).
    pub fall: u32,
    /// Consecutive good probes that mark a down backend up again (default 2; 0 counts as 1).
    pub rise: u32,
    /// Maximum concurrent client connections; beyond it new clients are closed at once
    /// (default 4096).
    pub max_connections: usize,
    /// How the health thread probes a backend (default [`Probe::Tcp`]).
    pub probe: Probe,
}

/// A health probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// The backend accepts a TCP connection.
    Tcp,
    /// The backend completes a TLS handshake and answers `GET <path>` over HTTP/1.1 with a 2xx
    /// status, or with 401/403 (it serves requests, though anonymous readiness checks are not
    /// allowed there). The certificate is not verified: this is a health check, not a client;
    /// the clients' own TLS sessions go through untouched and verify it.
    Https {
        /// The request path, e.g. `/readyz`.
        path: String,
    },
}

/// A `--probe` value that is neither `tcp` nor `https:/PATH`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}`: expected `tcp` or `https:/PATH` (e.g. https:/readyz)")]
pub struct ProbeError(pub String);

impl std::str::FromStr for Probe {
    type Err = ProbeError;

    /// `tcp`, or `https:PATH` (e.g. `https:/readyz`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            None if s == "tcp" => Ok(Probe::Tcp),
            Some(("https", path)) if path.starts_with('/') && !path.contains(char::is_whitespace) => {
                Ok(Probe::Https { path: path.to_string() })
            }
            _ => Err(ProbeError(s.to_string())),
        }
    }
}

impl std::fmt::Display for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Probe::Tcp => f.write_str("tcp"),
            Probe::Https { path } => write!(f, "https:{path}"),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 6443),
            backends: Vec::new(),
            health_interval: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(2),
            fall: 2,
            rise: 2,
            max_connections: 4096,
            probe: Probe::Tcp,
        }
    }
}

/// A snapshot of one backend's state, as returned by [`Balancer::status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendStatus {
    /// The backend as configured (`host:port`).
    pub backend: String,
    /// Whether the balancer currently considers the backend healthy.
    pub healthy: bool,
    /// Connections currently proxied to this backend.
    pub active: usize,
    /// Connections proxied to this backend since start.
    pub total: u64,
}

/// Health bookkeeping of one backend, guarded by a mutex so transitions log exactly once.
#[derive(Debug)]
struct Health {
    healthy: bool,
    fails: u32,
    oks: u32,
}

#[derive(Debug)]
struct Backend {
    name: String,
    health: Mutex<Health>,
    active: AtomicUsize,
    total: AtomicU64,
}

impl Backend {
    fn is_healthy(&self) -> bool {
        lock(&self.health).healthy
    }

    /// Marks the backend down at once (a real client could not connect).
    fn mark_down(&self, err: &io::Error) {
        let mut h = lock(&self.health);
        h.oks = 0;
        if h.healthy {
            h.healthy = false;
            eprintln!("lb: backend {} is down ({})", self.name, describe(err));
        }
    }

    /// Feeds one health probe result into the fall/rise counters.
    fn probe_result(&self, res: &io::Result<()>, fall: u32, rise: u32) {
        let mut h = lock(&self.health);
        match res {
            Ok(()) => {
                h.fails = 0;
                h.oks = h.oks.saturating_add(1);
                if !h.healthy && h.oks >= rise {
                    h.healthy = true;
                    eprintln!("lb: backend {} is up again", self.name);
                }
            }
            Err(e) => {
                h.oks = 0;
                h.fails = h.fails.saturating_add(1);
                if h.healthy && h.fails >= fall {
                    h.healthy = false;
                    eprintln!("lb: backend {} is down ({})", self.name, describe(e));
                }
            }
        }
    }
}

#[derive(Debug)]
struct Inner {
    cfg: Config,
    local: SocketAddr,
    backends: Vec<Backend>,
    stop: AtomicBool,
    rr: AtomicUsize,
    conns: AtomicUsize,
    refused: AtomicU64,
    last_refuse_log: Mutex<Option<Instant>>,
}

impl Inner {
    fn status(&self) -> Vec<BackendStatus> {
        self.backends
            .iter()
            .map(|b| BackendStatus {
                backend: b.name.clone(),
                healthy: b.is_healthy(),
                active: b.active.load(Ordering::SeqCst),
                total: b.total.load(Ordering::SeqCst),
            })
            .collect()
    }

    /// Backends to try for one client, in order: healthy ones by (active connections,
    /// rotating index); if none is healthy, all of them in rotating order.
    fn candidates(&self) -> Vec<usize> {
        let n = self.backends.len();
        let start = self.rr.fetch_add(1, Ordering::Relaxed) % n;
        let rot = |i: usize| (i + n - start) % n;
        let mut healthy: Vec<(usize, usize)> = self
            .backends
            .iter()
            .enumerate()
            .filter(|(_, b)| b.is_healthy())
            .map(|(i, b)| (i, b.active.load(Ordering::SeqCst)))
            .collect();
        if healthy.is_empty() {
            let mut all: Vec<usize> = (0..n).collect();
            all.sort_by_key(|&i| rot(i));
            return all;
        }
        healthy.sort_by_key(|&(i, active)| (active, rot(i)));
        healthy.into_iter().map(|(i, _)| i).collect()
    }

    fn note_refused(&self, peer: SocketAddr) {
        let refused = self.refused.fetch_add(1, Ordering::SeqCst) + 1;
        let mut last = lock(&self.last_refuse_log);
        let now = Instant::now();
        if last.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1)) {
            *last = Some(now);
            eprintln!(
                "lb: connection limit {} reached, closing client {} ({} refused so far)",
                self.cfg.max_connections, peer, refused
            );
        }
    }
}

/// Cloneable, `Send` handle to a running [`Balancer`]: stops it and reads its status.
#[derive(Debug, Clone)]
pub struct Handle {
    inner: Arc<Inner>,
}

impl Handle {
    /// Asks [`Balancer::run`] to return; the accept loop notices at once (it is woken by
    /// a connection to the listening address). Idempotent.
    pub fn stop(&self) {
        if self.inner.stop.swap(true, Ordering::SeqCst) {
            return;
        }
        let mut addr = self.inner.local;
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr {
                SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            });
        }
        let _ = TcpStream::connect_timeout(&addr, Duration::from_millis(500));
    }

    /// Same as [`Balancer::status`], usable while `run()` owns the balancer.
    pub fn status(&self) -> Vec<BackendStatus> {
        self.inner.status()
    }
}

/// The load balancer: a bound listener plus shared backend state. Create it with
/// [`Balancer::bind`], then call [`Balancer::run`] (usually on its own thread).
#[derive(Debug)]
pub struct Balancer {
    listener: TcpListener,
    inner: Arc<Inner>,
}

impl Balancer {
    /// Binds the listening socket. Fails if `cfg.backends` is empty or the address
    /// cannot be bound (the error message names the address).
    pub fn bind(mut cfg: Config) -> io::Result<Balancer> {
        if cfg.backends.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "lb: no backends configured",
            ));
        }
        cfg.fall = cfg.fall.max(1);
        cfg.rise = cfg.rise.max(1);
        let listener = TcpListener::bind(cfg.listen)
            .map_err(|e| io::Error::new(e.kind(), format!("lb: cannot listen on {}: {}", cfg.listen, e)))?;
        let local = listener.local_addr()?;
        let backends = cfg
            .backends
            .iter()
            .map(|name| Backend {
                name: name.clone(),
                health: Mutex::new(Health {
                    healthy: true,
                    fails: 0,
                    oks: 0,
                }),
                active: AtomicUsize::new(0),
                total: AtomicU64::new(0),
            })
            .collect();
        let inner = Arc::new(Inner {
            cfg,
            local,
            backends,
            stop: AtomicBool::new(false),
            rr: AtomicUsize::new(0),
            conns: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
            last_refuse_log: Mutex::new(None),
        });
        Ok(Balancer { listener, inner })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local
    }

    /// A handle that can stop the balancer and read its status from other threads.
    pub fn handle(&self) -> Handle {
        Handle {
            inner: self.inner.clone(),
        }
    }

    /// Runs the health thread and the accept loop; returns `Ok(())` after
    /// [`Handle::stop`]. Established connections are left running.
    pub fn run(self) -> io::Result<()> {
        let health = self.inner.clone();
        thread::Builder::new()
            .name("lb-health".into())
            .stack_size(THREAD_STACK)
            .spawn(move || health_loop(&health))?;
        let inner = self.inner;
        eprintln!(
            "lb: listening on {}, backends {}",
            inner.local,
            inner.cfg.backends.join(", ")
        );
        while !inner.stop.load(Ordering::SeqCst) {
            let (client, peer) = match self.listener.accept() {
                Ok(c) => c,
                Err(e) => {
                    if inner.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if !matches!(e.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::Interrupted) {
                        // e.g. EMFILE: do not spin.
                        eprintln!("lb: accept on {} failed: {}", inner.local, e);
                        thread::sleep(Duration::from_millis(50));
                    }
                    continue;
                }
            };
            if inner.stop.load(Ordering::SeqCst) {
                break;
            }
            if inner.conns.fetch_add(1, Ordering::SeqCst) >= inner.cfg.max_connections {
                inner.conns.fetch_sub(1, Ordering::SeqCst);
                inner.note_refused(peer);
                drop(client);
                continue;
            }
            let conn_inner = inner.clone();
            let spawned = thread::Builder::new()
                .name("lb-conn".into())
                .stack_size(THREAD_STACK)
                .spawn(move || {
                    let _guard = CountGuard(&conn_inner.conns);
                    serve(&conn_inner, client, peer);
                });
            if let Err(e) = spawned {
                // The closure (and the client socket) was dropped; undo the count.
                inner.conns.fetch_sub(1, Ordering::SeqCst);
                eprintln!("lb: cannot start thread for client {}: {}", peer, e);
            }
        }
        eprintln!("lb: stopped listening on {}", inner.local);
        Ok(())
    }
}

/// Decrements a counter when dropped.
struct CountGuard<'a>(&'a AtomicUsize);

impl Drop for CountGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Short, log-friendly description of a connect error.
fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "connect timed out".into(),
        _ => e.to_string(),
    }
}

/// Resolves `name` and connects to its addresses in turn, each with `timeout`.
fn connect(name: &str, timeout: Duration) -> io::Result<TcpStream> {
    let mut last = None;
    for addr in name.to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{name} resolves to no address"))))
}

/// The TLS client settings of every HTTPS probe, made once.
fn probe_connector() -> io::Result<&'static openssl::ssl::SslConnector> {
    static CONNECTOR: std::sync::OnceLock<openssl::ssl::SslConnector> = std::sync::OnceLock::new();
    if let Some(c) = CONNECTOR.get() {
        return Ok(c);
    }
    let mut tls =
        openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls_client()).map_err(io::Error::other)?;
    tls.set_verify(openssl::ssl::SslVerifyMode::NONE);
    Ok(CONNECTOR.get_or_init(|| tls.build()))
}

/// One health probe of `name` (see [`Probe`]); every step is bounded by `timeout`.
fn probe(name: &str, how: &Probe, timeout: Duration) -> io::Result<()> {
    let stream = connect(name, timeout)?;
    let Probe::Https { path } = how else {
        return Ok(());
    };
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let host = name.rsplit_once(':').map_or(name, |(h, _)| h).trim_matches(['[', ']']);
    let mut conf = probe_connector()?.configure().map_err(io::Error::other)?;
    conf.set_verify_hostname(false);
    let mut s = conf
        .connect(host, stream)
        .map_err(|e| io::Error::other(format!("TLS handshake failed: {e}")))?;
    // One write, one TLS record (write! would send a record per piece).
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {name}\r\nUser-Agent: delivery-lb\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes())?;
    // The status line is all we need: "HTTP/1.1 200 OK".
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n") && head.len() < 256 {
        match s.read(&mut byte)? {
            0 => break,
            _ => head.push(byte[0]),
        }
    }
    let line = String::from_utf8_lossy(&head);
    let code: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| io::Error::other(format!("no HTTP answer to GET {path}")))?;
    let _ = s.shutdown();
    match code {
        200..=299 | 401 | 403 => Ok(()),
        _ => Err(io::Error::other(format!("GET {path}: HTTP {code}"))),
    }
}

/// Probes all backends each interval until stopped.
fn health_loop(inner: &Inner) {
    let cfg = &inner.cfg;
    while !inner.stop.load(Ordering::SeqCst) {
        let round = Instant::now();
        thread::scope(|s| {
            let probes: Vec<_> = inner
                .backends
                .iter()
                .map(|b| {
                    let h = thread::Builder::new()
                        .name("lb-probe".into())
                        .stack_size(THREAD_STACK)
                        .spawn_scoped(s, move || probe(&b.name, &cfg.probe, cfg.connect_timeout));
                    (b, h)
                })
                .collect();
            for (b, h) in probes {
                // A probe thread that could not be started tells us nothing: skip it.
                if let Ok(h) = h {
                    let res = h.join().unwrap_or_else(|_| Err(io::Error::other("probe panicked")));
                    if !inner.stop.load(Ordering::SeqCst) {
                        b.probe_result(&res, cfg.fall, cfg.rise);
                    }
                }
            }
        });
        // Sleep out the rest of the interval in short slices so stop() is noticed.
        while !inner.stop.load(Ordering::SeqCst) {
            let left = cfg.health_interval.saturating_sub(round.elapsed());
            if left.is_zero() {
                break;
            }
            thread::sleep(left.min(Duration::from_millis(50)));
        }
    }
}

/// Connects one client to a backend and proxies it until both directions finish.
fn serve(inner: &Inner, client: TcpStream, peer: SocketAddr) {
    let _ = client.set_nodelay(true);
    for i in inner.candidates() {
        let b = &inner.backends[i];
        match connect(&b.name, inner.cfg.connect_timeout) {
            Ok(upstream) => {
                b.active.fetch_add(1, Ordering::SeqCst);
                b.total.fetch_add(1, Ordering::SeqCst);
                let _guard = CountGuard(&b.active);
                let _ = upstream.set_nodelay(true);
                proxy(client, upstream);
                return;
            }
            Err(e) => b.mark_down(&e),
        }
    }
    eprintln!("lb: no backend reachable for client {peer}, closing it");
}

/// Copies `from` to `to` until EOF; returns an error if either side fails.
fn pump(from: &mut TcpStream, to: &mut TcpStream) -> io::Result<()> {
    let mut buf = vec![0u8; COPY_BUF];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
    }
}

/// One direction: on EOF half-close the destination, on error tear down both sockets.
fn direction(mut from: TcpStream, mut to: TcpStream) {
    match pump(&mut from, &mut to) {
        Ok(()) => {
            let _ = to.shutdown(Shutdown::Write);
        }
        Err(_) => {
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
        }
    }
}

/// Proxies both directions (one extra thread) and returns when both are done.
fn proxy(client: TcpStream, upstream: TcpStream) {
    let (c2, u2) = match (client.try_clone(), upstream.try_clone()) {
        (Ok(c), Ok(u)) => (c, u),
        _ => return,
    };
    let up = thread::Builder::new()
        .name("lb-pipe".into())
        .stack_size(THREAD_STACK)
        .spawn(move || direction(c2, u2));
    match up {
        Ok(up) => {
            direction(upstream, client);
            let _ = up.join();
        }
        Err(e) => eprintln!("lb: cannot start proxy thread: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// A test backend: accepts on `listener` until dropped, handling each connection
    /// with `f` on its own thread. Dropping it closes the listener.
    struct TestBackend {
        addr: SocketAddr,
        stop: Arc<AtomicBool>,
        thread: Option<thread::JoinHandle<()>>,
    }

    impl TestBackend {
        fn start(listener: TcpListener, f: fn(TcpStream, &str)) -> TestBackend {
            let addr = listener.local_addr().unwrap();
            listener.set_nonblocking(true).unwrap();
            let stop = Arc::new(AtomicBool::new(false));
            let s = stop.clone();
            let name = addr.to_string();
            let thread = thread::spawn(move || {
                while !s.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((c, _)) => {
                            c.set_nonblocking(false).unwrap();
                            let name = name.clone();
                            thread::spawn(move || f(c, &name));
                        }
                        Err(_) => thread::sleep(Duration::from_millis(2)),
                    }
                }
            });
            TestBackend {
                addr,
                stop,
                thread: Some(thread),
            }
        }
    }

    impl Drop for TestBackend {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            if let Some(t) = self.thread.take() {
                t.join().unwrap();
            }
        }
    }

    fn name_reply(mut c: TcpStream, name: &str) {
        let _ = c.write_all(name.as_bytes());
    }

    fn echo(mut c: TcpStream, _: &str) {
        let mut w = c.try_clone().unwrap();
        let _ = io::copy(&mut c, &mut w);
        let _ = w.shutdown(Shutdown::Write);
    }

    fn listener() -> TcpListener {
        TcpListener::bind("127.0.0.1:0").unwrap()
    }

    fn test_config(backends: &[SocketAddr]) -> Config {
        Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            backends: backends.iter().map(|a| a.to_string()).collect(),
            health_interval: Duration::from_millis(100),
            connect_timeout: Duration::from_millis(500),
            ..Config::default()
        }
    }

    struct Running {
        addr: SocketAddr,
        handle: Handle,
        done: mpsc::Receiver<io::Result<()>>,
    }

    impl Drop for Running {
        fn drop(&mut self) {
            self.handle.stop();
        }
    }

    fn start(cfg: Config) -> Running {
        let b = Balancer::bind(cfg).unwrap();
        let addr = b.local_addr();
        let handle = b.handle();
        let (tx, done) = mpsc::channel();
        thread::spawn(move || {
            let _ = tx.send(b.run());
        });
        Running { addr, handle, done }
    }

    /// One client connection through the balancer; returns everything it reads.
    fn fetch(addr: SocketAddr) -> String {
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut s = String::new();
        let _ = c.read_to_string(&mut s);
        s
    }

    fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if f() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn healthy(h: &Handle, name: &str) -> bool {
        h.status().iter().find(|s| s.backend == name).unwrap().healthy
    }

    fn three_backends() -> Vec<TestBackend> {
        (0..3).map(|_| TestBackend::start(listener(), name_reply)).collect()
    }

    #[test]
    fn traffic_is_spread_over_backends() {
        let bes = three_backends();
        let addrs: Vec<_> = bes.iter().map(|b| b.addr).collect();
        let lb = start(test_config(&addrs));
        let mut seen = std::collections::HashMap::new();
        for _ in 0..30 {
            *seen.entry(fetch(lb.addr)).or_insert(0) += 1;
        }
        for a in &addrs {
            assert!(
                seen.get(&a.to_string()).copied().unwrap_or(0) > 0,
                "{a} got nothing: {seen:?}"
            );
        }
        assert_eq!(seen.values().sum::<i32>(), 30, "{seen:?}");
        let total: u64 = lb.handle.status().iter().map(|s| s.total).sum();
        assert_eq!(total, 30);
    }

    /// Drops the second backend and checks that nothing is lost; returns the rest.
    fn fail_one(lb: &Running, mut bes: Vec<TestBackend>) -> (SocketAddr, Vec<TestBackend>) {
        let dead = bes.remove(1);
        let dead_addr = dead.addr;
        drop(dead);
        let alive: Vec<String> = bes.iter().map(|b| b.addr.to_string()).collect();
        // No client may be lost, even before the health thread notices.
        for _ in 0..20 {
            let r = fetch(lb.addr);
            assert!(alive.contains(&r), "reply {r:?} not from a live backend {alive:?}");
        }
        assert!(
            wait_until(Duration::from_secs(3), || !healthy(&lb.handle, &dead_addr.to_string())),
            "dead backend still healthy: {:?}",
            lb.handle.status()
        );
        (dead_addr, bes)
    }

    #[test]
    fn failover_when_backend_dies() {
        let bes = three_backends();
        let addrs: Vec<_> = bes.iter().map(|b| b.addr).collect();
        let lb = start(test_config(&addrs));
        let (dead, _bes) = fail_one(&lb, bes);
        // Remains down while it stays dead.
        thread::sleep(Duration::from_millis(300));
        assert!(!healthy(&lb.handle, &dead.to_string()));
    }

    #[test]
    fn backend_rejoins() {
        let bes = three_backends();
        let addrs: Vec<_> = bes.iter().map(|b| b.addr).collect();
        let lb = start(test_config(&addrs));
        let (dead, _bes) = fail_one(&lb, bes);
        let _back = TestBackend::start(TcpListener::bind(dead).unwrap(), name_reply);
        let name = dead.to_string();
        assert!(
            wait_until(Duration::from_secs(3), || healthy(&lb.handle, &name)),
            "not healthy again: {:?}",
            lb.handle.status()
        );
        assert!(
            wait_until(Duration::from_secs(3), || fetch(lb.addr) == name),
            "rejoined backend gets no traffic"
        );
    }

    #[test]
    fn client_closed_when_no_backend_reachable() {
        let bes = three_backends();
        let addrs: Vec<_> = bes.iter().map(|b| b.addr).collect();
        drop(bes);
        let cfg = test_config(&addrs);
        let limit = cfg.connect_timeout + Duration::from_secs(1);
        let lb = start(cfg);
        for _ in 0..2 {
            // First with a (possibly) stale all-healthy view, then with all marked down.
            let t = Instant::now();
            let mut c = TcpStream::connect(lb.addr).unwrap();
            c.set_read_timeout(Some(limit)).unwrap();
            let mut buf = [0u8; 16];
            match c.read(&mut buf) {
                Ok(0) => {}
                Ok(n) => panic!("unexpected {n} bytes"),
                Err(e) => assert!(
                    !matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut),
                    "client left hanging: {e}"
                ),
            }
            assert!(t.elapsed() < limit);
            wait_until(Duration::from_secs(3), || lb.handle.status().iter().all(|s| !s.healthy));
        }
        assert!(lb.handle.status().iter().all(|s| !s.healthy && s.total == 0));
    }

    #[test]
    fn echo_with_half_close() {
        let be = TestBackend::start(listener(), echo);
        let lb = start(test_config(&[be.addr]));
        let data: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
        let c = TcpStream::connect(lb.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut w = c.try_clone().unwrap();
        let payload = data.clone();
        let writer = thread::spawn(move || {
            w.write_all(&payload).unwrap();
            w.shutdown(Shutdown::Write).unwrap();
        });
        let mut got = Vec::new();
        (&c).read_to_end(&mut got).unwrap();
        writer.join().unwrap();
        assert_eq!(got.len(), data.len());
        assert!(got == data, "echoed data differs");
        assert!(wait_until(Duration::from_secs(2), || lb.handle.status()[0].active == 0));
    }

    #[test]
    fn max_connections_enforced() {
        let be = TestBackend::start(listener(), echo);
        let mut cfg = test_config(&[be.addr]);
        cfg.max_connections = 2;
        let lb = start(cfg);
        let held = |addr| {
            let mut c = TcpStream::connect(addr).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            c.write_all(b"x").unwrap();
            let mut b = [0u8; 1];
            c.read_exact(&mut b).unwrap();
            c
        };
        let a = held(lb.addr);
        let _b = held(lb.addr);
        let t = Instant::now();
        let mut c = TcpStream::connect(lb.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let _ = c.write_all(b"x");
        let mut buf = [0u8; 1];
        match c.read(&mut buf) {
            Ok(0) => {}
            Ok(_) => panic!("third connection was served"),
            Err(e) => assert!(
                !matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut),
                "third connection left hanging: {e}"
            ),
        }
        assert!(t.elapsed() < Duration::from_millis(500), "took {:?}", t.elapsed());
        // Releasing one makes room again.
        drop(a);
        assert!(wait_until(Duration::from_secs(2), || lb.handle.status()[0].active == 1));
        let _d = held(lb.addr);
    }

    #[test]
    fn stop_makes_run_return() {
        let be = TestBackend::start(listener(), name_reply);
        let lb = start(test_config(&[be.addr]));
        assert_eq!(fetch(lb.addr), be.addr.to_string());
        let t = Instant::now();
        lb.handle.stop();
        let res = lb
            .done
            .recv_timeout(Duration::from_secs(1))
            .expect("run() did not return within 1 s");
        res.unwrap();
        assert!(t.elapsed() < Duration::from_secs(1));
        // The listener is gone.
        assert!(TcpStream::connect(lb.addr).is_err());
    }

    #[test]
    fn bind_error_names_address() {
        let l = listener();
        let mut cfg = test_config(&[l.local_addr().unwrap()]);
        cfg.listen = l.local_addr().unwrap();
        let e = Balancer::bind(cfg).unwrap_err();
        assert!(e.to_string().contains(&l.local_addr().unwrap().to_string()), "{e}");
        assert!(Balancer::bind(Config::default()).is_err(), "empty backends accepted");
    }

    /// A TLS server (self-signed certificate) answering every request with the status in
    /// `status`, like a kube-apiserver's /readyz.
    fn https_backend(status: Arc<std::sync::atomic::AtomicU16>) -> SocketAddr {
        use openssl::{asn1::Asn1Time, hash::MessageDigest, pkey::PKey, rsa::Rsa, ssl, x509};
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut name = x509::X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "kube-apiserver").unwrap();
        let name = name.build();
        let mut cert = x509::X509Builder::new().unwrap();
        cert.set_version(2).unwrap();
        cert.set_subject_name(&name).unwrap();
        cert.set_issuer_name(&name).unwrap();
        cert.set_pubkey(&key).unwrap();
        cert.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
        cert.set_not_after(&Asn1Time::days_from_now(1).unwrap()).unwrap();
        cert.sign(&key, MessageDigest::sha256()).unwrap();
        let mut acceptor = ssl::SslAcceptor::mozilla_intermediate_v5(ssl::SslMethod::tls()).unwrap();
        acceptor.set_private_key(&key).unwrap();
        acceptor.set_certificate(&cert.build()).unwrap();
        let acceptor = Arc::new(acceptor.build());
        let l = listener();
        let addr = l.local_addr().unwrap();
        thread::spawn(move || {
            for c in l.incoming().flatten() {
                let (acceptor, status) = (acceptor.clone(), status.clone());
                thread::spawn(move || {
                    let Ok(mut s) = acceptor.accept(c) else { return };
                    let mut req = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf) {
                            Ok(n) if n > 0 => req.extend_from_slice(&buf[..n]),
                            _ => return,
                        }
                    }
                    let code = status.load(Ordering::SeqCst);
                    let _ = write!(s, "HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    let _ = s.shutdown();
                });
            }
        });
        addr
    }

    #[test]
    fn https_probe_needs_a_tls_answer_with_a_good_status() {
        let status = Arc::new(std::sync::atomic::AtomicU16::new(200));
        let name = https_backend(status.clone()).to_string();
        let readyz = Probe::Https { path: "/readyz".into() };
        let t = Duration::from_secs(2);
        let r = probe(&name, &readyz, t);
        assert!(r.is_ok(), "{r:?}");
        status.store(401, Ordering::SeqCst);
        assert!(
            probe(&name, &readyz, t).is_ok(),
            "401: it answers, anonymous checks are off"
        );
        status.store(503, Ordering::SeqCst);
        let e = probe(&name, &readyz, t).unwrap_err();
        assert!(e.to_string().contains("GET /readyz: HTTP 503"), "{e}");
        // A port that accepts but speaks no TLS is down for an https probe, up for a tcp one.
        let plain = TestBackend::start(listener(), name_reply);
        let e = probe(&plain.addr.to_string(), &readyz, t).unwrap_err();
        assert!(e.to_string().contains("TLS handshake failed"), "{e}");
        assert!(probe(&plain.addr.to_string(), &Probe::Tcp, t).is_ok());
        assert_eq!("https:/readyz".parse::<Probe>().unwrap(), readyz);
        assert_eq!(readyz.to_string(), "https:/readyz");
        assert!("https:readyz".parse::<Probe>().is_err() && "udp".parse::<Probe>().is_err());
    }

    #[test]
    fn a_backend_that_listens_but_is_not_ready_gets_no_clients() {
        let ready = Arc::new(std::sync::atomic::AtomicU16::new(200));
        let unready = Arc::new(std::sync::atomic::AtomicU16::new(503));
        let a = https_backend(ready);
        let b = https_backend(unready.clone());
        let lb = start(Config {
            probe: Probe::Https { path: "/readyz".into() },
            ..test_config(&[a, b])
        });
        assert!(wait_until(Duration::from_secs(3), || !healthy(
            &lb.handle,
            &b.to_string()
        )));
        assert!(healthy(&lb.handle, &a.to_string()));
        for _ in 0..10 {
            let _ = TcpStream::connect(lb.addr).unwrap();
        }
        assert!(wait_until(Duration::from_secs(2), || {
            lb.handle.status().iter().map(|s| s.total).sum::<u64>() == 10
        }));
        let st = lb.handle.status();
        assert_eq!(
            st.iter().find(|s| s.backend == b.to_string()).unwrap().total,
            0,
            "{st:?}"
        );
        unready.store(200, Ordering::SeqCst);
        assert!(wait_until(Duration::from_secs(3), || healthy(
            &lb.handle,
            &b.to_string()
        )));
    }
}
