//! One SSH connection to one host: connect with an explicit host-key check, run shell scripts
//! (optionally as root through sudo) and upload files with an end-to-end SHA-256 check.
//!
//! Built on the `ssh2` crate (libssh2), which checks no host keys by itself: `connect` reads the
//! OpenSSH known_hosts file and refuses unknown (strict) or changed keys. Every channel is driven
//! in non-blocking mode with `poll(2)` so stdout, stderr and stdin are served together (no window
//! deadlock), and a cut link ends as [`SshError::ConnectionLost`] through TCP keepalive and
//! `TCP_USER_TIMEOUT` on the socket, even while a command is silent.
//!
//! Secrets ([`Secret`]) never reach a command line, an error or a log: scripts, exported
//! variables and the sudo password all travel on the channel's stdin.

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use bundle_format::digest::Digest;
use bundle_format::io::{read_full, HashingReader};
use ssh2::{CheckResult, HostKeyType, KnownHostFileKind};

mod host_lock;
pub use host_lock::HostLock;

/// A secret string: Debug/Display print "***". Never put it in a command line or a log.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Self {
        Secret(s)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// How to log in.
#[derive(Debug, Clone)]
pub enum Login {
    /// An unencrypted private key file (OpenSSH or PEM format).
    Key(PathBuf),
    Password(Secret),
}

/// How to become root when a step is privileged and the user is not root.
#[derive(Debug, Clone)]
pub enum Sudo {
    No,
    Passwordless,
    Password(Secret),
}

/// What to do with a host key that known_hosts does not list. A changed key is always refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKeyPolicy {
    /// Refuse it.
    Strict,
    /// Trust it on first use and append it to known_hosts.
    AcceptNew,
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct Target {
    /// IP or DNS name, used to connect and in known_hosts.
    pub host: String,
    pub port: u16,
    pub user: String,
    pub login: Login,
    pub sudo: Sudo,
    pub host_key_policy: HostKeyPolicy,
    /// For AcceptNew, new keys are appended here (created 0600 with parent dir 0700 if missing).
    pub known_hosts: PathBuf,
    pub connect_timeout: Duration,
    /// A cut link becomes an error within about this long (TCP keepalive + TCP_USER_TIMEOUT),
    /// even during a long silent command.
    pub dead_peer_timeout: Duration,
}

/// The collected result of [`Session::run`].
#[derive(Debug, Clone)]
pub struct Output {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Everything that can go wrong talking to one host. Each message names `host:port` and, where
/// there is one, what to do next.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("cannot reach {host}:{port}: {reason}; check the address, the port and that sshd runs")]
    Unreachable { host: String, port: u16, reason: String },

    #[error(
        "host key of {host}:{port} is not in {known_hosts} (fingerprint {fingerprint}); \
         verify it and add it with ssh-keyscan, or use the accept-new host key policy"
    )]
    HostKeyUnknown {
        host: String,
        port: u16,
        fingerprint: String,
        known_hosts: PathBuf,
    },

    #[error(
        "host key of {host}:{port} CHANGED: {known_hosts}:{line} has {old_fingerprint}, the host \
         offers {new_fingerprint}; if the host was reinstalled, remove the line with \
         ssh-keygen -R {} -f {known_hosts}, otherwise suspect an attack",
        keygen_host_arg(.host, *.port)
    )]
    HostKeyChanged {
        host: String,
        port: u16,
        old_fingerprint: String,
        new_fingerprint: String,
        known_hosts: PathBuf,
        line: usize,
    },

    #[error("{user}@{host}:{port} refused {method} authentication; check the key/password and the user")]
    AuthFailed {
        host: String,
        port: u16,
        user: String,
        method: &'static str,
    },

    #[error("sudo on {host}:{port} failed for {user}: {reason}; check the sudo setting and password")]
    SudoFailed {
        host: String,
        port: u16,
        user: String,
        reason: String,
    },

    #[error("connection to {host}:{port} lost while {action}: {reason}; check the host and the network, then retry")]
    ConnectionLost {
        host: String,
        port: u16,
        action: String,
        reason: String,
    },

    #[error(
        "upload to {host}:{port} {path} failed its digest check (expected sha256 {expected}, \
         got {actual}); the partial file was removed, retry the upload"
    )]
    DigestMismatch {
        host: String,
        port: u16,
        path: String,
        expected: String,
        actual: String,
    },

    #[error("{action} on {host}:{port} exited with status {status}: {stderr}")]
    RemoteCommand {
        host: String,
        port: u16,
        action: String,
        status: i32,
        stderr: String,
    },

    #[error("{action} on {host}:{port} failed: {reason}")]
    Other {
        host: String,
        port: u16,
        action: String,
        reason: String,
    },
}

impl SshError {
    /// The host could not be reached or went away: worth a retry later.
    pub fn is_connection_lost(&self) -> bool {
        matches!(self, SshError::Unreachable { .. } | SshError::ConnectionLost { .. })
    }
}

/// An authenticated connection to one host. `Send`: use it from one thread at a time.
pub struct Session {
    sess: ssh2::Session,
    /// A second handle on the session's socket, for poll(2).
    sock: TcpStream,
    host: String,
    port: u16,
    user: String,
    sudo: Sudo,
    /// Set once the link is known dead, so later calls fail fast instead of blocking.
    dead: AtomicBool,
}

/// Upload chunk size: memory per upload stays bounded by this.
const CHUNK: usize = 256 * 1024;
/// Cap of each collected stream in [`Session::run`] (the tail is kept).
const RUN_CAP: usize = 1024 * 1024;
/// Size of the interleaved tail returned by [`Session::run_streaming`].
const STREAM_TAIL: usize = 64 * 1024;
/// Markers the sudo wrapper prints on stderr; removed from the output.
const SUDO_PROMPT: &str = "[dlv-sudo-prompt]";
const SUDO_OK: &str = "[dlv-sudo-ok]";

/// Serialises appends to known_hosts files among the threads of this process.
static KNOWN_HOSTS_LOCK: Mutex<()> = Mutex::new(());

impl Session {
    pub fn connect(target: &Target) -> Result<Session, SshError> {
        let host = target.host.clone();
        let port = target.port;
        let other = |action: &str, reason: String| SshError::Other {
            host: host.clone(),
            port,
            action: action.to_string(),
            reason,
        };
        let tcp = tcp_connect(target)?;
        set_dead_peer_options(&tcp, target.dead_peer_timeout)
            .map_err(|e| other("setting TCP keepalive options", e.to_string()))?;
        let sock = tcp
            .try_clone()
            .map_err(|e| other("duplicating the socket", e.to_string()))?;

        let mut sess = ssh2::Session::new().map_err(|e| other("creating an SSH session", e.to_string()))?;
        sess.set_tcp_stream(tcp);
        prefer_known_key_types(&sess, target);
        // Blocking calls (handshake, auth) give up after this; TCP options cover the rest.
        sess.set_timeout(millis(target.connect_timeout.max(Duration::from_secs(1)) * 2));
        sess.handshake().map_err(|e| {
            let reason = e.to_string();
            if is_link_error(&e) {
                // TCP connected but no SSH answered in time: as good as unreachable.
                SshError::Unreachable {
                    host: host.clone(),
                    port,
                    reason: format!("no SSH handshake: {reason}"),
                }
            } else {
                other("the SSH handshake", reason)
            }
        })?;

        check_host_key(&sess, target)?;
        authenticate(&sess, target)?;
        // Blocking calls after this (opening a channel, starting a command) are short; the
        // timeout keeps them from hanging on a dead link. Long transfers run non-blocking.
        sess.set_timeout(millis((target.connect_timeout * 4).max(target.dead_peer_timeout * 2)));
        // SSH-level keepalives that want a reply keep data in flight on a silent session, so
        // TCP_USER_TIMEOUT fires on a cut link.
        sess.set_keepalive(true, keepalive_interval(target.dead_peer_timeout));

        Ok(Session {
            sess,
            sock,
            host,
            port,
            user: target.user.clone(),
            sudo: target.sudo.clone(),
            dead: AtomicBool::new(false),
        })
    }

    /// Runs `script` with `sh -s` (script fed on stdin, so secrets in it never show in a process
    /// list), as root through sudo when `privileged` and the user is not root: `sudo -n` for
    /// [`Sudo::Passwordless`]; for [`Sudo::Password`], `sudo -S` with a marker prompt on stderr,
    /// the password sent on stdin only when that prompt appears (so it can never be run as a
    /// script line when sudo does not ask), and the script only after sudo let us through; a
    /// refused password or a sudo that wants one we lack is [`SshError::SudoFailed`]. Extra env vars are
    /// exported at the top of the script. Collects output (each stream capped at 1 MiB, tail kept).
    pub fn run(&self, script: &str, env: &[(&str, &str)], privileged: bool) -> Result<Output, SshError> {
        let mut out = TailBuf::new(RUN_CAP);
        let mut err = TailBuf::new(RUN_CAP);
        let stdin = script_stdin(script, env);
        let status = self.exec(
            "sh -s",
            privileged,
            &mut io::Cursor::new(stdin.into_bytes()),
            &mut |s, data| match s {
                Stream::Stdout => out.push(data),
                Stream::Stderr => err.push(data),
            },
            &mut |_| {},
            "running a script",
        )?;
        Ok(Output {
            status,
            stdout: out.into_string(),
            stderr: err.into_string(),
        })
    }

    /// Same as [`Session::run`], but calls `on_line` for every output line as it arrives and
    /// returns the exit status and the last 64 KiB of stderr+stdout interleaved.
    pub fn run_streaming(
        &self,
        script: &str,
        env: &[(&str, &str)],
        privileged: bool,
        on_line: &mut dyn FnMut(Stream, &str),
    ) -> Result<(i32, String), SshError> {
        let mut tail = TailBuf::new(STREAM_TAIL);
        let mut out_line = Vec::new();
        let mut err_line = Vec::new();
        let stdin = script_stdin(script, env);
        let status = {
            let mut on_data = |s: Stream, data: &[u8]| {
                let pending = match s {
                    Stream::Stdout => &mut out_line,
                    Stream::Stderr => &mut err_line,
                };
                pending.extend_from_slice(data);
                while let Some(i) = pending.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=i).collect();
                    tail.push(&line);
                    let text = String::from_utf8_lossy(&line[..line.len() - 1]);
                    on_line(s, text.trim_end_matches('\r'));
                }
            };
            self.exec(
                "sh -s",
                privileged,
                &mut io::Cursor::new(stdin.into_bytes()),
                &mut on_data,
                &mut |_| {},
                "running a script",
            )?
        };
        for (s, rest) in [(Stream::Stdout, out_line), (Stream::Stderr, err_line)] {
            if !rest.is_empty() {
                tail.push(&rest);
                tail.push(b"\n");
                on_line(s, String::from_utf8_lossy(&rest).trim_end_matches('\r'));
            }
        }
        Ok((status, tail.into_string()))
    }

    /// Streams `len` bytes from `src` into `dest.partial` on the host (parent dirs created, mode
    /// 0644), computing SHA-256 locally while sending, checks it on the host with `sha256sum`,
    /// and only if equal to `expected` (lowercase hex) renames to `dest` atomically (after a
    /// sync). `progress(bytes_sent)` is called at least every 1 MiB. On a mismatch the partial
    /// file is removed.
    pub fn upload(
        &self,
        src: &mut dyn Read,
        len: u64,
        dest: &str,
        expected: &str,
        privileged: bool,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), SshError> {
        let action = format!("uploading {dest}");
        if !is_sha256_hex(expected) {
            return Err(self.other(
                &action,
                format!("expected digest {expected:?} is not 64 lowercase hex digits"),
            ));
        }
        let mut hashing = HashingReader::new(src.take(len));
        let mut out = TailBuf::new(64 * 1024);
        let mut err = TailBuf::new(64 * 1024);
        let status = self.exec(
            &upload_command(dest, expected),
            privileged,
            &mut hashing,
            &mut |s, data| match s {
                Stream::Stdout => out.push(data),
                Stream::Stderr => err.push(data),
            },
            progress,
            &action,
        )?;
        let sent = hashing.len();
        let local = hashing.finish().hex();
        let remote = out.into_string().trim().to_string();
        if status == UPLOAD_MISMATCH {
            return Err(SshError::DigestMismatch {
                host: self.host.clone(),
                port: self.port,
                path: dest.to_string(),
                expected: expected.to_string(),
                actual: remote,
            });
        }
        if status != 0 {
            return Err(SshError::RemoteCommand {
                host: self.host.clone(),
                port: self.port,
                action,
                status,
                stderr: err.into_string().trim().to_string(),
            });
        }
        if sent != len {
            // The host got fewer bytes, so its digest cannot have matched; keep the message clear.
            return Err(self.other(&action, format!("the source ended after {sent} of {len} bytes")));
        }
        if local != expected {
            // The host stored what we sent and it matched `expected`, so this cannot happen
            // short of a SHA-256 collision; refuse anyway.
            return Err(SshError::DigestMismatch {
                host: self.host.clone(),
                port: self.port,
                path: dest.to_string(),
                expected: expected.to_string(),
                actual: local,
            });
        }
        Ok(())
    }

    /// SHA-256 hex of a file on the host, `None` when it does not exist.
    pub fn remote_sha256(&self, path: &str, privileged: bool) -> Result<Option<String>, SshError> {
        let q = shell_quote(path);
        let script = format!("if [ -e {q} ]; then sha256sum -- {q} | cut -d' ' -f1; else echo missing; fi\n");
        let out = self.run(&script, &[], privileged)?;
        let action = format!("hashing {path}");
        if out.status != 0 {
            return Err(SshError::RemoteCommand {
                host: self.host.clone(),
                port: self.port,
                action,
                status: out.status,
                stderr: out.stderr.trim().to_string(),
            });
        }
        match out.stdout.trim() {
            "missing" => Ok(None),
            d if is_sha256_hex(d) => Ok(Some(d.to_string())),
            d => Err(self.other(&action, format!("unexpected sha256sum output {d:?}"))),
        }
    }

    fn other(&self, action: &str, reason: String) -> SshError {
        SshError::Other {
            host: self.host.clone(),
            port: self.port,
            action: action.to_string(),
            reason,
        }
    }

    fn lost(&self, action: &str, reason: String) -> SshError {
        SshError::ConnectionLost {
            host: self.host.clone(),
            port: self.port,
            action: action.to_string(),
            reason,
        }
    }

    /// Turns a libssh2 failure into ConnectionLost when the link is the cause.
    fn classify(&self, action: &str, reason: String) -> SshError {
        let link = ssh2::Error::last_session_error(&self.sess)
            .map(|e| is_link_error(&e))
            .unwrap_or(false)
            || socket_failed(&self.sock);
        if link {
            self.lost(action, reason)
        } else {
            self.other(action, reason)
        }
    }

    fn needs_sudo(&self, privileged: bool) -> bool {
        privileged && self.user != "root"
    }

    /// Runs POSIX shell `inner` on the host (through sudo when needed), feeding `stdin` while
    /// handing out stdout and stderr as they arrive. Returns the exit status.
    fn exec(
        &self,
        inner: &str,
        privileged: bool,
        stdin: &mut dyn Read,
        on_data: &mut dyn FnMut(Stream, &[u8]),
        on_sent: &mut dyn FnMut(u64),
        action: &str,
    ) -> Result<i32, SshError> {
        match self.exec_until(inner, privileged, stdin, on_data, on_sent, action, None)? {
            Ended::Exited(status) => Ok(status),
            Ended::Held(_) => unreachable!("only a command run `until` something is held"),
        }
    }

    /// [`Session::exec`], or with `until`: stdin is left open after the input (a `sh -s` then
    /// waits for more) and the channel is handed back still open as soon as `until()` holds.
    #[allow(clippy::too_many_arguments)]
    fn exec_until(
        &self,
        inner: &str,
        privileged: bool,
        stdin: &mut dyn Read,
        on_data: &mut dyn FnMut(Stream, &[u8]),
        on_sent: &mut dyn FnMut(u64),
        action: &str,
        until: Option<&dyn Fn() -> bool>,
    ) -> Result<Ended, SshError> {
        let (command, mut gate) = if self.needs_sudo(privileged) {
            match &self.sudo {
                Sudo::No => {
                    return Err(SshError::SudoFailed {
                        host: self.host.clone(),
                        port: self.port,
                        user: self.user.clone(),
                        reason: "this step needs root and the target has no sudo setting".into(),
                    })
                }
                Sudo::Passwordless => (sudo_command(inner, false), Some(SudoGate::new(None))),
                Sudo::Password(p) => (sudo_command(inner, true), Some(SudoGate::new(Some(p.clone())))),
            }
        } else {
            (format!("sh -c {}", shell_quote(inner)), None)
        };

        if self.dead.load(Ordering::Relaxed) {
            return Err(self.lost(action, "the connection was lost earlier; connect again".into()));
        }
        self.sess.set_blocking(true);
        let mut channel = self
            .sess
            .channel_session()
            .map_err(|e| self.classify(action, e.to_string()))?;
        channel
            .exec(&command)
            .map_err(|e| self.classify(action, e.to_string()))?;
        self.sess.set_blocking(false);
        let result = self.pump(&mut channel, &mut gate, stdin, on_data, on_sent, action, until);
        let sudo_refused = gate.as_ref().is_some_and(|g| g.failed);
        let status = match result {
            // sudo still waits for a password we do not have: just close, no exit status comes.
            Ok(_) if sudo_refused => Ok(-1),
            Ok(Pumped::Until) => {
                self.sess.set_blocking(true);
                return Ok(Ended::Held(channel));
            }
            Ok(Pumped::Ended) => self.finish(&mut channel, action),
            Err(e) => Err(e),
        };
        if sudo_refused {
            let _ = channel.close();
            drop(channel);
            self.sess.set_blocking(true);
            return Err(SshError::SudoFailed {
                host: self.host.clone(),
                port: self.port,
                user: self.user.clone(),
                reason: gate.map(|g| g.failure_reason()).unwrap_or_default(),
            });
        }
        if let Err(e) = &status {
            if e.is_connection_lost() {
                self.dead.store(true, Ordering::Relaxed);
            }
            // Free the channel while non-blocking: in blocking mode libssh2_channel_free spins
            // forever on a dead socket (seen with a cut link).
            let _ = channel.close();
            drop(channel);
        }
        self.sess.set_blocking(true);
        let status = status?;
        if let Some(g) = gate {
            if !g.open {
                return Err(SshError::SudoFailed {
                    host: self.host.clone(),
                    port: self.port,
                    user: self.user.clone(),
                    reason: g.failure_reason(),
                });
            }
        }
        Ok(Ended::Exited(status))
    }

    /// The non-blocking loop: write stdin, read both streams, wait on the socket when idle.
    /// Ends when the command has closed both streams, or (stdin left open) when `until()` holds.
    #[allow(clippy::too_many_arguments)]
    fn pump(
        &self,
        channel: &mut ssh2::Channel,
        gate: &mut Option<SudoGate>,
        stdin: &mut dyn Read,
        on_data: &mut dyn FnMut(Stream, &[u8]),
        on_sent: &mut dyn FnMut(u64),
        action: &str,
        until: Option<&dyn Fn() -> bool>,
    ) -> Result<Pumped, SshError> {
        let mut pending: Vec<u8> = Vec::with_capacity(CHUNK);
        let mut pos = 0usize;
        let mut input_done = false;
        let mut eof_sent = false;
        let mut sent: u64 = 0;
        let mut last_report: u64 = 0;
        let mut buf = vec![0u8; 32 * 1024];
        let mut out_eof = false;
        let mut err_eof = false;
        loop {
            let mut progressed = false;

            // sudo with a password: answer the prompt, hold the script until sudo is through.
            let stdin_open = match gate {
                Some(g) => {
                    if let Some(answer) = g.take_answer() {
                        write_all_nb(self, channel, answer.as_bytes(), action)?;
                        progressed = true;
                    }
                    if g.failed {
                        return Ok(Pumped::Ended);
                    }
                    g.open
                }
                None => true,
            };

            if stdin_open && !eof_sent {
                if pos == pending.len() && !input_done {
                    pending.resize(CHUNK, 0);
                    let n = read_full(stdin, &mut pending)
                        .map_err(|e| self.other(action, format!("reading the local source: {e}")))?;
                    pending.truncate(n);
                    pos = 0;
                    if n == 0 {
                        input_done = true;
                    }
                }
                if pos < pending.len() {
                    match channel.write(&pending[pos..]) {
                        Ok(n) => {
                            pos += n;
                            sent += n as u64;
                            progressed |= n > 0;
                            if sent - last_report >= 1024 * 1024 || (input_done && pos == pending.len()) {
                                on_sent(sent);
                                last_report = sent;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => {
                            if channel.eof() {
                                // The command ended without reading all input: drop the rest.
                                pending.clear();
                                pos = 0;
                                input_done = true;
                            } else {
                                return Err(self.classify(action, e.to_string()));
                            }
                        }
                    }
                }
                if input_done && pos == pending.len() && until.is_none() {
                    match channel.send_eof() {
                        Ok(()) => {
                            eof_sent = true;
                            on_sent(sent);
                            progressed = true;
                        }
                        Err(e) if is_eagain(&e) => {}
                        Err(_) if channel.eof() => eof_sent = true,
                        Err(e) => return Err(self.classify(action, e.to_string())),
                    }
                }
            }

            for (stream, done) in [(Stream::Stdout, &mut out_eof), (Stream::Stderr, &mut err_eof)] {
                if *done {
                    continue;
                }
                let r = match stream {
                    Stream::Stdout => channel.read(&mut buf),
                    Stream::Stderr => channel.stderr().read(&mut buf),
                };
                match r {
                    Ok(0) => {
                        if channel.eof() {
                            *done = true;
                        }
                    }
                    Ok(n) => {
                        progressed = true;
                        match (stream, gate.as_mut()) {
                            (Stream::Stderr, Some(g)) if !g.open => {
                                let passed = g.feed(&buf[..n]);
                                if !passed.is_empty() {
                                    on_data(Stream::Stderr, &passed);
                                }
                            }
                            _ => on_data(stream, &buf[..n]),
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(self.classify(action, e.to_string())),
                }
            }
            if out_eof && err_eof {
                if let Some(g) = gate.as_mut() {
                    let rest = g.flush();
                    if !rest.is_empty() {
                        on_data(Stream::Stderr, &rest);
                    }
                }
                return Ok(Pumped::Ended);
            }
            if until.is_some_and(|until| until()) {
                return Ok(Pumped::Until);
            }
            if !progressed {
                match self.sess.keepalive_send() {
                    Ok(_) => {}
                    Err(e) if is_eagain(&e) => {}
                    Err(e) => return Err(self.classify(action, e.to_string())),
                }
                self.wait_socket(action)?;
            }
        }
    }

    /// Closes the channel after both streams ended and returns the exit status.
    fn finish(&self, channel: &mut ssh2::Channel, action: &str) -> Result<i32, SshError> {
        loop {
            match channel.close() {
                Ok(()) => break,
                Err(e) if is_eagain(&e) => self.wait_socket(action)?,
                Err(e) => return Err(self.classify(action, e.to_string())),
            }
        }
        loop {
            match channel.wait_close() {
                Ok(()) => break,
                Err(e) if is_eagain(&e) => self.wait_socket(action)?,
                Err(e) => return Err(self.classify(action, e.to_string())),
            }
        }
        let status = channel
            .exit_status()
            .map_err(|e| self.classify(action, e.to_string()))?;
        if let Ok(sig) = channel.exit_signal() {
            if sig.exit_signal.is_some() {
                // Killed by a signal: no exit status was sent.
                return Ok(-1);
            }
        }
        Ok(status)
    }

    /// Waits until libssh2 can make progress, or a second passes (to send keepalives).
    fn wait_socket(&self, action: &str) -> Result<(), SshError> {
        let dirs = self.sess.block_directions();
        let mut events = 0;
        if matches!(dirs, ssh2::BlockDirections::Inbound | ssh2::BlockDirections::Both) {
            events |= libc::POLLIN;
        }
        if matches!(dirs, ssh2::BlockDirections::Outbound | ssh2::BlockDirections::Both) {
            events |= libc::POLLOUT;
        }
        if events == 0 {
            events = libc::POLLIN;
        }
        let mut pfd = libc::pollfd {
            fd: self.sock.as_raw_fd(),
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let rc = unsafe { libc::poll(&mut pfd, 1, 1000) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(self.other(action, format!("poll: {e}")));
            }
        }
        if pfd.revents & (libc::POLLERR | libc::POLLHUP) != 0 {
            if let Ok(Some(e)) = self.sock.take_error() {
                return Err(self.lost(action, e.to_string()));
            }
            // The kernel gave up on the connection (TCP_USER_TIMEOUT, keepalive, reset) and its
            // error was already taken: without this, a dead socket would spin here.
            return Err(self.lost(action, "the connection was reset or timed out".into()));
        }
        Ok(())
    }
}

/// How [`Session::pump`] ended.
enum Pumped {
    /// Both output streams closed: the command is over.
    Ended,
    /// The `until` condition held while the command still runs.
    Until,
}

/// How [`Session::exec_until`] ended.
enum Ended {
    Exited(i32),
    /// Still running, its stdin open: the command lives as long as this channel.
    Held(ssh2::Channel),
}

/// Exit status of the upload script when the host computed another digest.
const UPLOAD_MISMATCH: i32 = 86;

/// The shell snippet that receives an upload on stdin, checks it and renames it into place.
fn upload_command(dest: &str, expected: &str) -> String {
    let partial = format!("{dest}.partial");
    let dir = match dest.rfind('/') {
        Some(0) => "/".to_string(),
        Some(i) => dest[..i].to_string(),
        None => ".".to_string(),
    };
    let (d, p, f) = (shell_quote(&dir), shell_quote(&partial), shell_quote(dest));
    format!(
        "umask 022 && mkdir -p -- {d} && cat > {p} && chmod 0644 {p} && \
         actual=$(sha256sum -- {p} | cut -d' ' -f1) && echo \"$actual\" && \
         if [ \"$actual\" != {expected} ]; then rm -f -- {p}; exit {UPLOAD_MISMATCH}; fi && \
         (sync -- {p} 2>/dev/null || sync) && mv -f -- {p} {f} && (sync -- {d} 2>/dev/null || true) \
         || {{ rc=$?; rm -f -- {p}; exit $rc; }}"
    )
}

/// `sudo` around `inner`: a marker prompt (answered from stdin, never shown) and a marker line
/// once sudo let us through, so the script is only sent to a root shell and the password only
/// when sudo asks for it (never executed as a script line when sudo did not ask).
fn sudo_command(inner: &str, with_password: bool) -> String {
    let body = shell_quote(&format!("echo '{SUDO_OK}' >&2; {inner}"));
    if with_password {
        format!("sudo -S -p '{SUDO_PROMPT}' -- sh -c {body}")
    } else {
        format!("sudo -n -- sh -c {body}")
    }
}

/// Watches sudo's stderr until our marker line says the root shell runs.
struct SudoGate {
    password: Option<Secret>,
    seen: Vec<u8>,
    prompts: usize,
    answered: usize,
    open: bool,
    failed: bool,
}

impl SudoGate {
    fn new(password: Option<Secret>) -> Self {
        SudoGate {
            password,
            seen: Vec::new(),
            prompts: 0,
            answered: 0,
            open: false,
            failed: false,
        }
    }

    /// Takes stderr bytes while the gate is shut; returns what passes through (after the marker).
    fn feed(&mut self, data: &[u8]) -> Vec<u8> {
        self.seen.extend_from_slice(data);
        while let Some(i) = find(&self.seen, SUDO_PROMPT.as_bytes()) {
            self.seen.drain(i..i + SUDO_PROMPT.len());
            self.prompts += 1;
        }
        let ok = format!("{SUDO_OK}\n");
        if let Some(i) = find(&self.seen, ok.as_bytes()) {
            self.open = true;
            let mut rest = self.seen.split_off(i);
            rest.drain(..ok.len());
            // Whatever sudo printed before (a lecture) is noise once through.
            self.seen.clear();
            return rest;
        }
        if self.prompts > 1 || (self.prompts > 0 && self.password.is_none()) {
            self.failed = true;
        }
        Vec::new()
    }

    /// The password line to send, once per prompt (the first prompt only).
    fn take_answer(&mut self) -> Option<String> {
        if self.prompts > self.answered && !self.failed {
            self.answered = self.prompts;
            if self.prompts == 1 {
                return self.password.as_ref().map(|p| format!("{}\n", p.expose()));
            }
        }
        None
    }

    fn flush(&mut self) -> Vec<u8> {
        if self.open {
            Vec::new()
        } else {
            self.seen.clone()
        }
    }

    fn failure_reason(&self) -> String {
        let text = String::from_utf8_lossy(&self.seen).trim().replace('\n', "; ");
        if self.prompts > 1 {
            "the sudo password was refused".into()
        } else if text.is_empty() {
            "sudo did not run the command".into()
        } else {
            text
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// What goes on stdin for `sh -s`: exports, then the script.
fn script_stdin(script: &str, env: &[(&str, &str)]) -> String {
    let mut s = String::new();
    for (k, v) in env {
        s.push_str(&export_line(k, v));
    }
    s.push_str(script);
    if !script.ends_with('\n') {
        s.push('\n');
    }
    s
}

/// `export NAME='value'\n`, the value single-quoted for POSIX sh.
fn export_line(name: &str, value: &str) -> String {
    assert!(
        !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !name.as_bytes()[0].is_ascii_digit(),
        "environment variable names are set by code, not input: {name:?}"
    );
    format!("export {name}={}\n", shell_quote(value))
}

/// Single-quotes `s` for POSIX sh: `'` becomes `'\''`.
pub(crate) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Keeps the last `cap` bytes pushed (amortised: trims when twice the cap).
struct TailBuf {
    cap: usize,
    buf: Vec<u8>,
}

impl TailBuf {
    fn new(cap: usize) -> Self {
        TailBuf { cap, buf: Vec::new() }
    }

    fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
        if self.buf.len() > 2 * self.cap {
            let cut = self.buf.len() - self.cap;
            self.buf.drain(..cut);
        }
    }

    fn into_string(mut self) -> String {
        if self.buf.len() > self.cap {
            let cut = self.buf.len() - self.cap;
            self.buf.drain(..cut);
        }
        String::from_utf8_lossy(&self.buf).into_owned()
    }
}

/// Writes all of `data` on a non-blocking channel.
fn write_all_nb(s: &Session, channel: &mut ssh2::Channel, mut data: &[u8], action: &str) -> Result<(), SshError> {
    while !data.is_empty() {
        match channel.write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => s.wait_socket(action)?,
            Err(e) => return Err(s.classify(action, e.to_string())),
        }
    }
    Ok(())
}

fn is_eagain(e: &ssh2::Error) -> bool {
    e.code() == ssh2::ErrorCode::Session(-37)
}

/// libssh2 errors that mean the transport is gone.
fn is_link_error(e: &ssh2::Error) -> bool {
    // SOCKET_NONE -1, BANNER_RECV -2, BANNER_SEND -3, SOCKET_SEND -7, TIMEOUT -9,
    // SOCKET_DISCONNECT -13, SOCKET_TIMEOUT -30, SOCKET_RECV -43
    matches!(
        e.code(),
        ssh2::ErrorCode::Session(-1 | -2 | -3 | -7 | -9 | -13 | -30 | -43)
    )
}

fn socket_failed(sock: &TcpStream) -> bool {
    matches!(sock.take_error(), Ok(Some(_)) | Err(_))
}

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

fn keepalive_interval(dead_peer: Duration) -> u32 {
    (dead_peer.as_secs() / 3).clamp(1, 60) as u32
}

fn tcp_connect(target: &Target) -> Result<TcpStream, SshError> {
    let unreachable = |reason: String| SshError::Unreachable {
        host: target.host.clone(),
        port: target.port,
        reason,
    };
    let addrs: Vec<_> = (target.host.as_str(), target.port)
        .to_socket_addrs()
        .map_err(|e| unreachable(format!("cannot resolve the name: {e}")))?
        .collect();
    let mut last = String::from("the name resolved to no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, target.connect_timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    Err(unreachable(last))
}

/// SO_KEEPALIVE with probes from a third of `dead_peer` on, and TCP_USER_TIMEOUT = `dead_peer`,
/// so unacknowledged data or unanswered probes end the connection in about that time.
fn set_dead_peer_options(sock: &TcpStream, dead_peer: Duration) -> io::Result<()> {
    let secs = dead_peer.as_secs().max(3) as libc::c_int;
    let idle = (secs / 3).max(1);
    let intvl = (secs / 3).max(1);
    let cnt: libc::c_int = 3;
    let user_timeout = libc::c_uint::try_from(dead_peer.as_millis())
        .unwrap_or(libc::c_uint::MAX)
        .max(1000);
    let fd = sock.as_raw_fd();
    let set = |level, opt, val: libc::c_int| -> io::Result<()> {
        // SAFETY: setsockopt on a valid socket with a pointer to a c_int of the given size.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                level,
                opt,
                &val as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    set(libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1)?;
    set(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, idle)?;
    set(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, intvl)?;
    set(libc::IPPROTO_TCP, libc::TCP_KEEPCNT, cnt)?;
    set(libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, user_timeout as libc::c_int)?;
    set(libc::IPPROTO_TCP, libc::TCP_NODELAY, 1)?;
    Ok(())
}

// --- host keys -----------------------------------------------------------------------------

/// The host field of a known_hosts line: `host` on port 22, `[host]:port` otherwise.
fn known_hosts_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

fn key_type_name(t: HostKeyType) -> Option<&'static str> {
    Some(match t {
        HostKeyType::Rsa => "ssh-rsa",
        HostKeyType::Dss => "ssh-dss",
        HostKeyType::Ecdsa256 => "ecdsa-sha2-nistp256",
        HostKeyType::Ecdsa384 => "ecdsa-sha2-nistp384",
        HostKeyType::Ecdsa521 => "ecdsa-sha2-nistp521",
        HostKeyType::Ed25519 => "ssh-ed25519",
        HostKeyType::Unknown => return None,
    })
}

/// The host argument of `ssh-keygen -R` as typed on a shell line (`host` or `'[host]:port'`).
fn keygen_host_arg(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("'[{host}]:{port}'")
    }
}

/// One OpenSSH known_hosts line (with newline) for a key.
fn known_hosts_line(host: &str, port: u16, key_type: &str, key: &[u8]) -> String {
    format!(
        "{} {} {}\n",
        known_hosts_name(host, port),
        key_type,
        STANDARD.encode(key)
    )
}

/// `SHA256:...` as ssh-keygen -l prints it.
fn fingerprint(key: &[u8]) -> String {
    format!("SHA256:{}", STANDARD_NO_PAD.encode(Digest::of(key).0))
}

/// The result of checking a host key against a known_hosts file.
#[derive(Debug, PartialEq, Eq)]
enum KeyCheck {
    Match,
    NotFound,
    /// 1-based line and the fingerprint of the key stored there.
    Mismatch {
        line: usize,
        old_fingerprint: String,
    },
}

/// Checks `key` for `host:port` against known_hosts `text`, line by line so one line libssh2
/// cannot parse (a certificate authority, an unsupported key type) does not hide the rest.
fn check_known_hosts(
    sess: &ssh2::Session,
    text: &str,
    host: &str,
    port: u16,
    key: &[u8],
) -> Result<KeyCheck, ssh2::Error> {
    let mut found = KeyCheck::NotFound;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let mut kh = sess.known_hosts()?;
        if kh.read_str(trimmed, KnownHostFileKind::OpenSSH).is_err() {
            continue;
        }
        match kh.check_port(host, port, key) {
            CheckResult::Match => return Ok(KeyCheck::Match),
            CheckResult::Mismatch => {
                if found == KeyCheck::NotFound {
                    let old = trimmed
                        .split_whitespace()
                        .nth(if trimmed.starts_with('@') { 3 } else { 2 })
                        .and_then(|b| STANDARD.decode(b).ok())
                        .map(|k| fingerprint(&k))
                        .unwrap_or_else(|| "an unreadable key".into());
                    found = KeyCheck::Mismatch {
                        line: i + 1,
                        old_fingerprint: old,
                    };
                }
            }
            CheckResult::NotFound | CheckResult::Failure => {}
        }
    }
    // OpenSSH semantics: any matching line accepts (a host may have several key types listed);
    // otherwise a line for this host with another key of the same type is a change.
    Ok(found)
}

/// Puts the host key algorithms of the keys known_hosts lists for this host first, as OpenSSH
/// does: a host with RSA and Ed25519 keys whose RSA key alone is known then offers the RSA key
/// instead of looking changed. Best effort: any failure leaves libssh2's default order.
fn prefer_known_key_types(sess: &ssh2::Session, target: &Target) {
    let Ok(text) = fs::read_to_string(&target.known_hosts) else {
        return;
    };
    let mut known: Vec<&str> = Vec::new();
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let Ok(mut kh) = sess.known_hosts() else { return };
        if kh.read_str(line, KnownHostFileKind::OpenSSH).is_err() {
            continue;
        }
        // With a key that cannot match, a line for this host answers Mismatch, others NotFound.
        if matches!(
            kh.check_port(&target.host, target.port, b"no such key"),
            CheckResult::Mismatch
        ) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if let Some(t) = fields.get(if line.starts_with('@') { 2 } else { 1 }) {
                known.push(t);
            }
        }
    }
    if known.is_empty() {
        return;
    }
    let Ok(supported) = sess.supported_algs(ssh2::MethodType::HostKey) else {
        return;
    };
    let mut prefs: Vec<&str> = Vec::new();
    for t in known {
        let algs: &[&str] = if t == "ssh-rsa" {
            &["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]
        } else {
            &[t][..]
        };
        prefs.extend(algs.iter().filter(|a| supported.contains(a)));
    }
    prefs.extend(supported.iter().copied());
    let mut seen = std::collections::BTreeSet::new();
    prefs.retain(|a| seen.insert(*a));
    let _ = sess.method_pref(ssh2::MethodType::HostKey, &prefs.join(","));
}

fn check_host_key(sess: &ssh2::Session, target: &Target) -> Result<(), SshError> {
    let (host, port) = (target.host.as_str(), target.port);
    let other = |action: &str, reason: String| SshError::Other {
        host: host.to_string(),
        port,
        action: action.to_string(),
        reason,
    };
    let (key, ktype) = sess
        .host_key()
        .ok_or_else(|| other("reading the host key", "the server sent none".into()))?;
    let key = key.to_vec();
    let new_fp = fingerprint(&key);
    let read = |path: &Path| -> Result<String, SshError> {
        match fs::read_to_string(path) {
            Ok(t) => Ok(t),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(other("reading known_hosts", format!("{}: {e}", path.display()))),
        }
    };
    let check = |text: &str| {
        check_known_hosts(sess, text, host, port, &key).map_err(|e| other("checking the host key", e.to_string()))
    };
    let changed = |line: usize, old_fingerprint: String| SshError::HostKeyChanged {
        host: host.to_string(),
        port,
        old_fingerprint,
        new_fingerprint: new_fp.clone(),
        known_hosts: target.known_hosts.clone(),
        line,
    };
    match check(&read(&target.known_hosts)?)? {
        KeyCheck::Match => return Ok(()),
        KeyCheck::Mismatch { line, old_fingerprint } => return Err(changed(line, old_fingerprint)),
        KeyCheck::NotFound => {}
    }
    if target.host_key_policy == HostKeyPolicy::Strict {
        return Err(SshError::HostKeyUnknown {
            host: host.to_string(),
            port,
            fingerprint: new_fp,
            known_hosts: target.known_hosts.clone(),
        });
    }
    let type_name = key_type_name(ktype).ok_or_else(|| other("reading the host key", "unknown key type".into()))?;
    let _guard = KNOWN_HOSTS_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    // Another thread may have added this host meanwhile: check again under the lock.
    let text = read(&target.known_hosts)?;
    match check(&text)? {
        KeyCheck::Match => return Ok(()),
        KeyCheck::Mismatch { line, old_fingerprint } => return Err(changed(line, old_fingerprint)),
        KeyCheck::NotFound => {}
    }
    let path = &target.known_hosts;
    let fail = |e: io::Error| other("adding the host key to known_hosts", format!("{}: {e}", path.display()));
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(fail)?;
        }
    }
    let mut f = fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(fail)?;
    let mut line = known_hosts_line(host, port, type_name, &key);
    if !text.is_empty() && !text.ends_with('\n') {
        line.insert(0, '\n');
    }
    f.write_all(line.as_bytes()).map_err(fail)?;
    Ok(())
}

// --- authentication ------------------------------------------------------------------------

struct PasswordPrompter<'a>(&'a Secret);

impl ssh2::KeyboardInteractivePrompt for PasswordPrompter<'_> {
    fn prompt<'b>(&mut self, _username: &str, _instructions: &str, prompts: &[ssh2::Prompt<'b>]) -> Vec<String> {
        prompts.iter().map(|_| self.0.expose().to_string()).collect()
    }
}

fn authenticate(sess: &ssh2::Session, target: &Target) -> Result<(), SshError> {
    let (host, port, user) = (target.host.as_str(), target.port, target.user.as_str());
    let lost_or_other = |action: &str, e: ssh2::Error| {
        if is_link_error(&e) {
            SshError::ConnectionLost {
                host: host.into(),
                port,
                action: action.into(),
                reason: e.to_string(),
            }
        } else {
            SshError::Other {
                host: host.into(),
                port,
                action: action.into(),
                reason: e.to_string(),
            }
        }
    };
    let failed = |method| SshError::AuthFailed {
        host: host.into(),
        port,
        user: user.into(),
        method,
    };
    match &target.login {
        Login::Key(path) => {
            if let Err(e) = fs::metadata(path) {
                return Err(SshError::Other {
                    host: host.into(),
                    port,
                    action: "reading the private key".into(),
                    reason: format!("{}: {e}", path.display()),
                });
            }
            match sess.userauth_pubkey_file(user, None, path, None) {
                Ok(()) => {}
                Err(e) if is_link_error(&e) => return Err(lost_or_other("public key authentication", e)),
                Err(_) => return Err(failed("publickey")),
            }
            if !sess.authenticated() {
                return Err(failed("publickey"));
            }
        }
        Login::Password(secret) => {
            let methods = sess
                .auth_methods(user)
                .map_err(|e| lost_or_other("asking for auth methods", e))?
                .to_string();
            if sess.authenticated() {
                return Ok(()); // "none" authentication was accepted
            }
            if methods.split(',').any(|m| m == "password") {
                match sess.userauth_password(user, secret.expose()) {
                    Ok(()) if sess.authenticated() => return Ok(()),
                    Err(e) if is_link_error(&e) => return Err(lost_or_other("password authentication", e)),
                    _ => {}
                }
            }
            if methods.split(',').any(|m| m == "keyboard-interactive") {
                match sess.userauth_keyboard_interactive(user, &mut PasswordPrompter(secret)) {
                    Ok(()) if sess.authenticated() => return Ok(()),
                    Err(e) if is_link_error(&e) => return Err(lost_or_other("keyboard-interactive authentication", e)),
                    _ => return Err(failed("password/keyboard-interactive")),
                }
            }
            return Err(failed("password"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("hunter2".into());
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{s}"), "***");
        let login = Login::Password(s.clone());
        assert!(!format!("{login:?}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn export_values_are_single_quoted() {
        assert_eq!(export_line("A", "plain"), "export A='plain'\n");
        assert_eq!(
            export_line("B", "it's $HOME `x` \"q\""),
            "export B='it'\\''s $HOME `x` \"q\"'\n"
        );
        assert_eq!(export_line("C_1", ""), "export C_1=''\n");
        assert_eq!(export_line("D", "a\nb"), "export D='a\nb'\n");
    }

    #[test]
    #[should_panic]
    fn export_rejects_bad_names() {
        export_line("A;rm", "x");
    }

    #[test]
    fn exported_values_survive_a_real_shell() {
        let v = "it's \"x\" $y `z` \\ \n end";
        let script = script_stdin("printf '%s' \"$V\"", &[("V", v)]);
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .output()
            .expect("sh runs");
        assert_eq!(String::from_utf8_lossy(&out.stdout), v);
    }

    #[test]
    fn known_hosts_line_formats() {
        let key = [0u8, 0, 0, 11, b's', b's', b'h'];
        assert_eq!(
            known_hosts_line("10.0.0.1", 22, "ssh-ed25519", &key),
            "10.0.0.1 ssh-ed25519 AAAAC3NzaA==\n"
        );
        assert_eq!(
            known_hosts_line("node1.example", 2222, "ssh-ed25519", &key),
            "[node1.example]:2222 ssh-ed25519 AAAAC3NzaA==\n"
        );
    }

    /// An ed25519 public key blob (type string + 32 bytes), as a server would send it.
    fn fake_key(seed: u8) -> Vec<u8> {
        let mut k = vec![0, 0, 0, 11];
        k.extend_from_slice(b"ssh-ed25519");
        k.extend_from_slice(&[0, 0, 0, 32]);
        k.extend((0..32).map(|i| seed.wrapping_add(i)));
        k
    }

    #[test]
    fn known_hosts_check_finds_match_change_and_port_form() {
        let sess = ssh2::Session::new().expect("libssh2 initialises");
        let (a, b) = (fake_key(1), fake_key(2));
        let text = format!(
            "# comment\n@cert-authority *.example ssh-ed25519 {}\n{}{}",
            STANDARD.encode(&b),
            known_hosts_line("10.0.0.1", 22, "ssh-ed25519", &a),
            known_hosts_line("10.0.0.2", 2222, "ssh-ed25519", &a),
        );
        let check = |host, port, key: &[u8]| check_known_hosts(&sess, &text, host, port, key).expect("check runs");
        assert_eq!(check("10.0.0.1", 22, &a), KeyCheck::Match);
        assert_eq!(
            check("10.0.0.1", 22, &b),
            KeyCheck::Mismatch {
                line: 3,
                old_fingerprint: fingerprint(&a)
            }
        );
        assert_eq!(check("10.0.0.9", 22, &a), KeyCheck::NotFound);
        assert_eq!(check("10.0.0.2", 2222, &a), KeyCheck::Match);
        assert_eq!(
            check("10.0.0.2", 22, &a),
            KeyCheck::NotFound,
            "the [host]:port line is not for port 22"
        );
    }

    #[test]
    fn fingerprint_matches_ssh_keygen() {
        // ssh-keygen -lf of this public key printed the fingerprint below.
        let key = STANDARD
            .decode("AAAAC3NzaC1lZDI1NTE5AAAAIBIElvDNBz7jf1YYUHtCkUX3Qqu30O85n0CuaN6WANyo")
            .expect("base64");
        assert_eq!(fingerprint(&key), "SHA256:i7ZQcf4zE8raBS5S0Dq6NkHUSSU8KE6X520ZkQLwPYQ");
    }

    #[test]
    fn host_key_changed_says_how_to_fix() {
        let e = SshError::HostKeyChanged {
            host: "h".into(),
            port: 2222,
            old_fingerprint: "SHA256:old".into(),
            new_fingerprint: "SHA256:new".into(),
            known_hosts: PathBuf::from("/k/known_hosts"),
            line: 7,
        };
        let msg = e.to_string();
        assert!(msg.contains("/k/known_hosts:7") && msg.contains("SHA256:old") && msg.contains("SHA256:new"));
        assert!(msg.contains("ssh-keygen -R '[h]:2222' -f /k/known_hosts"), "{msg}");
    }

    #[test]
    fn tail_buf_keeps_the_tail() {
        let mut t = TailBuf::new(4);
        for chunk in [&b"abc"[..], b"defgh", b"ij"] {
            t.push(chunk);
        }
        assert_eq!(t.into_string(), "ghij");
    }

    #[test]
    fn sudo_gate_answers_once_and_opens_on_marker() {
        let mut g = SudoGate::new(Some(Secret::new("pw".into())));
        assert!(g.feed(SUDO_PROMPT.as_bytes()).is_empty());
        assert_eq!(g.take_answer().as_deref(), Some("pw\n"));
        assert_eq!(g.take_answer(), None);
        let rest = g.feed(format!("{SUDO_OK}\nscript says hi\n").as_bytes());
        assert!(g.open);
        assert_eq!(rest, b"script says hi\n");
    }

    #[test]
    fn sudo_gate_fails_on_second_prompt_or_unwanted_prompt() {
        let mut g = SudoGate::new(Some(Secret::new("pw".into())));
        g.feed(SUDO_PROMPT.as_bytes());
        g.take_answer();
        g.feed(format!("Sorry, try again.\n{SUDO_PROMPT}").as_bytes());
        assert!(g.failed && !g.open);
        assert_eq!(g.take_answer(), None);
        assert!(!g.failure_reason().contains("pw"));

        let mut g = SudoGate::new(None);
        g.feed(SUDO_PROMPT.as_bytes());
        assert!(g.failed);
    }

    #[test]
    fn sudo_command_keeps_secrets_off_the_command_line() {
        let c = sudo_command("sh -s", true);
        assert_eq!(
            c,
            format!("sudo -S -p '{SUDO_PROMPT}' -- sh -c 'echo '\\''{SUDO_OK}'\\'' >&2; sh -s'")
        );
        assert!(sudo_command("sh -s", false).starts_with("sudo -n -- sh -c "));
    }

    #[test]
    fn upload_command_checks_before_rename() {
        let c = upload_command("/opt/x y/f'1", &"a".repeat(64));
        assert!(c.contains("mkdir -p -- '/opt/x y'"));
        assert!(c.contains("cat > '/opt/x y/f'\\''1.partial'"));
        assert!(c.find("sha256sum").unwrap() < c.find("mv -f").unwrap());
    }

    #[test]
    fn sha256_hex_is_strict() {
        assert!(is_sha256_hex(&"0f".repeat(32)));
        assert!(!is_sha256_hex(&"0F".repeat(32)));
        assert!(!is_sha256_hex("sha256:00"));
    }

    #[test]
    fn unreachable_and_lost_are_retryable() {
        let u = SshError::Unreachable {
            host: "h".into(),
            port: 22,
            reason: "refused".into(),
        };
        assert!(u.is_connection_lost());
        assert!(u.to_string().contains("h:22"));
        let a = SshError::AuthFailed {
            host: "h".into(),
            port: 22,
            user: "u".into(),
            method: "password",
        };
        assert!(!a.is_connection_lost());
    }

    #[test]
    fn session_is_send() {
        fn is_send<T: Send>() {}
        is_send::<Session>();
    }
}
