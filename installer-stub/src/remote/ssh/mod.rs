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
//!
//! The parts: [`Session::connect`] here (TCP and its dead-peer options in `link`, the host key
//! check in `known_hosts`, logging in in `auth`); the non-blocking channel loop every command
//! runs through in `exec`, with sudo's prompt handled in `sudo`; running scripts in `script`;
//! uploads and remote digests in `upload`; a lock on a host directory in `host_lock`.

use std::fmt;
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

mod auth;
mod error;
mod exec;
mod host_lock;
mod known_hosts;
mod link;
mod script;
mod sudo;
mod upload;

pub use error::SshError;
pub use host_lock::HostLock;
pub(crate) use script::shell_quote;

use auth::authenticate;
use exec::Ended;
use known_hosts::{check_host_key, prefer_known_key_types};
use link::{is_link_error, keepalive_interval, millis, set_dead_peer_options, socket_failed, tcp_connect};
use script::script_stdin;

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
    fn session_is_send() {
        fn is_send<T: Send>() {}
        is_send::<Session>();
    }
}
