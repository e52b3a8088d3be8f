//! How response bytes leave: every send held to [`Limits::min_rate`] ([`Pace`]), file bodies
//! copied through a fixed pool of buffers ([`Buffers`]) or, while all are in use, sent with
//! sendfile(2); and how a connection closes: lingering so the response is not destroyed by a
//! reset, or reset on purpose for a client that does not read. See the module doc of
//! [`super`] for why.

use std::fs::File;
use std::io::{self, Read};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileExt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Limits;

/// The pool file bodies are copied through: at most `max` buffers, each allocated on first use
/// and kept for the next body.
pub(super) struct Buffers {
    pub(super) max: usize,
    pub(super) size: usize,
    /// Free buffers, and how many exist in all.
    pub(super) pool: Mutex<(Vec<Box<[u8]>>, usize)>,
}

impl Buffers {
    /// A free buffer, or `None` when all `max` are in use.
    pub(super) fn take(&self) -> Option<Lease<'_>> {
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
pub(super) struct Lease<'a> {
    buf: Option<Box<[u8]>>,
    owner: &'a Buffers,
}

impl Lease<'_> {
    pub(super) fn buf(&mut self) -> &mut [u8] {
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
pub(super) enum SendError {
    /// The client went away: routine.
    Peer,
    /// The client took less than [`Limits::min_rate`] over half a timeout: routine, and the
    /// connection is reset.
    Slow,
    /// The served file could not be read where the response said: worth a log line.
    File(io::Error),
}

/// How long a closing connection drains what its client still sends (see [`linger_close`]).
/// The connection waits for no request meanwhile, so a new client can take its slot.
pub(super) const LINGER: Duration = Duration::from_secs(2);

/// Close after the client had a chance to read the response: stop writing, then drain what it
/// still sends, for `linger` at most (none: only what has already arrived), so unread request
/// bytes do not turn the close into a reset that destroys the response in flight.
pub(super) fn linger_close(stream: &mut TcpStream, linger: Duration) {
    let _ = stream.shutdown(Shutdown::Write);
    let deadline = Instant::now() + linger;
    let mut sink = [0u8; 4096];
    let mut drained = 0;
    while drained < 1 << 20 {
        let left = deadline.saturating_duration_since(Instant::now());
        let set = if left.is_zero() {
            stream.set_nonblocking(true)
        } else {
            stream.set_read_timeout(Some(left))
        };
        if set.is_err() {
            break;
        }
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

/// Make the coming close of `fd` a reset: for a client that does not read, the kernel then
/// drops what is queued for it at once rather than keep trying to deliver it.
pub(super) fn reset_on_close(fd: RawFd) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    set_socket_option(fd, libc::SO_LINGER, &linger);
}

/// setsockopt(2) at SOL_SOCKET level; best effort.
pub(super) fn set_socket_option<T>(fd: RawFd, name: libc::c_int, value: &T) {
    let len = libc::socklen_t::try_from(std::mem::size_of::<T>()).expect("a small option");
    // SAFETY: the pointer and length describe a live `T`; a closed descriptor only gets EBADF.
    unsafe { libc::setsockopt(fd, libc::SOL_SOCKET, name, (value as *const T).cast(), len) };
}

/// Holds one response to [`Limits::min_rate`]. Time is cut into windows of half the timeout;
/// a send call blocks at most until the end of the current one (the socket's send timeout is set
/// to what is left of it before every call: that timeout bounds one call, and a call that moves
/// a byte would otherwise start it again). At the end of each window, the bytes the client
/// acknowledged during it are counted, and fewer than `min_rate` per second end the response.
pub(super) struct Pace<'a> {
    stream: &'a TcpStream,
    window: Duration,
    /// What each window must carry.
    min_bytes: u64,
    /// The end of the current window.
    end: Instant,
    /// Bytes given to the socket, counting those an earlier response left queued there.
    written: u64,
    /// Of those, acknowledged by the client when the current window began.
    acked: u64,
}

impl<'a> Pace<'a> {
    pub(super) fn new(stream: &'a TcpStream, limits: &Limits) -> Self {
        let window = (limits.timeout / 2).max(Duration::from_millis(1));
        let millis = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        Pace {
            stream,
            window,
            min_bytes: limits.min_rate.saturating_mul(millis) / 1000,
            end: Instant::now() + window,
            written: unacked(stream),
            acked: 0,
        }
    }

    /// Make one send call (it returns a count, or -1 with errno, as libc's do); again while it
    /// times out within a window that carried enough. Returns what it sent.
    fn send(&mut self, mut call: impl FnMut() -> isize) -> Result<usize, SendError> {
        loop {
            let now = Instant::now();
            if now >= self.end {
                let acked = self.written.saturating_sub(unacked(self.stream));
                if acked.saturating_sub(self.acked) < self.min_bytes {
                    return Err(SendError::Slow);
                }
                self.acked = acked;
                self.end = now + self.window;
            }
            let left = (self.end - now).max(Duration::from_millis(1));
            self.stream.set_write_timeout(Some(left)).map_err(|_| SendError::Peer)?;
            if let Ok(n) = usize::try_from(call()) {
                self.written += n as u64;
                return Ok(n);
            }
            match io::Error::last_os_error().kind() {
                io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {}
                // sendfile does not say which side failed; a peer is by far the likelier.
                _ => return Err(SendError::Peer),
            }
        }
    }

    /// Send all of `bytes`; `flags` as send(2) takes them.
    pub(super) fn send_all(&mut self, mut bytes: &[u8], flags: libc::c_int) -> Result<(), SendError> {
        let fd = self.stream.as_raw_fd();
        while !bytes.is_empty() {
            // SAFETY: the pointer and length describe a live slice; the descriptor is open.
            let n = self
                .send(|| unsafe { libc::send(fd, bytes.as_ptr().cast(), bytes.len(), flags | libc::MSG_NOSIGNAL) })?;
            bytes = &bytes[n..];
        }
        Ok(())
    }
}

/// Bytes written to `stream` that its peer has not acknowledged (SIOCOUTQ); 0 if unknown, which
/// counts everything written as delivered.
fn unacked(stream: &TcpStream) -> u64 {
    let mut n: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (SIOCOUTQ for a socket) writes one int through the pointer.
    let r = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    if r == 0 {
        u64::try_from(n).unwrap_or(0)
    } else {
        0
    }
}

/// Send `len` bytes of `file` from `offset` through `buf`: read a buffer's worth, write it, again.
pub(super) fn copy_file(
    pace: &mut Pace<'_>,
    file: &File,
    offset: u64,
    len: u64,
    buf: &mut [u8],
) -> Result<(), SendError> {
    let (mut at, end) = (offset, offset + len);
    while at < end {
        let want = usize::try_from(end - at).map_or(buf.len(), |left| left.min(buf.len()));
        let n = match file.read_at(&mut buf[..want], at) {
            Ok(0) => return Err(SendError::File(file_ends(offset + len))),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(SendError::File(e)),
        };
        pace.send_all(&buf[..n], 0)?;
        at += n as u64;
    }
    Ok(())
}

/// Send `len` bytes of `file` from `offset` with sendfile(2): file pages go to the socket
/// without passing through this process.
pub(super) fn send_file(pace: &mut Pace<'_>, file: &File, offset: u64, len: u64) -> Result<(), SendError> {
    let mut off =
        libc::off_t::try_from(offset).map_err(|_| SendError::File(io::Error::other("offset out of range")))?;
    let (out, from) = (pace.stream.as_raw_fd(), file.as_raw_fd());
    let mut left = len;
    while left > 0 {
        let chunk = usize::try_from(left.min(1 << 30)).expect("at most 1 GiB");
        // SAFETY: both descriptors are open for the call; `off` is a valid, exclusive pointer.
        let n = pace.send(|| unsafe { libc::sendfile(out, from, &mut off, chunk) })?;
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
    use super::*;

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
}
