//! Running one command on a channel: sudo wrapping, then a non-blocking loop that writes stdin,
//! reads stdout and stderr as they come and waits on the socket with `poll(2)` (no window
//! deadlock, keepalives while the command is silent), then the exit status. A command may also
//! be held open (`exec_until`) for as long as the caller wants, as the host lock is.

use std::io::{self, Read, Write};
use std::os::unix::io::AsRawFd;
use std::sync::atomic::Ordering;

use bundle_format::io::read_full;

use super::link::is_eagain;
use super::sudo::{sudo_command, SudoGate};
use super::{shell_quote, Session, SshError, Stream, Sudo};

/// Upload chunk size: memory per upload stays bounded by this.
const CHUNK: usize = 256 * 1024;

impl Session {
    /// Runs POSIX shell `inner` on the host (through sudo when needed), feeding `stdin` while
    /// handing out stdout and stderr as they arrive. Returns the exit status.
    pub(super) fn exec(
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
    pub(super) fn exec_until(
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
pub(super) enum Ended {
    Exited(i32),
    /// Still running, its stdin open: the command lives as long as this channel.
    Held(ssh2::Channel),
}

/// Keeps the last `cap` bytes pushed (amortised: trims when twice the cap).
pub(super) struct TailBuf {
    cap: usize,
    buf: Vec<u8>,
}

impl TailBuf {
    pub(super) fn new(cap: usize) -> Self {
        TailBuf { cap, buf: Vec::new() }
    }

    pub(super) fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
        if self.buf.len() > 2 * self.cap {
            let cut = self.buf.len() - self.cap;
            self.buf.drain(..cut);
        }
    }

    pub(super) fn into_string(mut self) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_buf_keeps_the_tail() {
        let mut t = TailBuf::new(4);
        for chunk in [&b"abc"[..], b"defgh", b"ij"] {
            t.push(chunk);
        }
        assert_eq!(t.into_string(), "ghij");
    }
}
