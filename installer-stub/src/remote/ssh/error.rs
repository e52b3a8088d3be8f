//! [`SshError`]: everything that can go wrong talking to one host, each variant naming
//! `host:port` and, where there is one, what to do next; and which of them are worth a retry.

use std::path::PathBuf;

use super::known_hosts::keygen_host_arg;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
