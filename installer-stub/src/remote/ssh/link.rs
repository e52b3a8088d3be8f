//! The TCP link under a session: connecting with a timeout to every address a name resolves
//! to, the keepalive and `TCP_USER_TIMEOUT` options that turn a cut link into an error within
//! the dead-peer timeout, and telling libssh2 errors of a dead link from the others.

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::io::AsRawFd;
use std::time::Duration;

use super::{SshError, Target};

pub(super) fn is_eagain(e: &ssh2::Error) -> bool {
    e.code() == ssh2::ErrorCode::Session(-37)
}

/// libssh2 errors that mean the transport is gone.
pub(super) fn is_link_error(e: &ssh2::Error) -> bool {
    // SOCKET_NONE -1, BANNER_RECV -2, BANNER_SEND -3, SOCKET_SEND -7, TIMEOUT -9,
    // SOCKET_DISCONNECT -13, SOCKET_TIMEOUT -30, SOCKET_RECV -43
    matches!(
        e.code(),
        ssh2::ErrorCode::Session(-1 | -2 | -3 | -7 | -9 | -13 | -30 | -43)
    )
}

pub(super) fn socket_failed(sock: &TcpStream) -> bool {
    matches!(sock.take_error(), Ok(Some(_)) | Err(_))
}

pub(super) fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

pub(super) fn keepalive_interval(dead_peer: Duration) -> u32 {
    (dead_peer.as_secs() / 3).clamp(1, 60) as u32
}

pub(super) fn tcp_connect(target: &Target) -> Result<TcpStream, SshError> {
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
pub(super) fn set_dead_peer_options(sock: &TcpStream, dead_peer: Duration) -> io::Result<()> {
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
