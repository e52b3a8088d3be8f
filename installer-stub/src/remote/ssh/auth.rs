//! Logging in: a private key file, or a password (the `password` method, then
//! keyboard-interactive answered with the same password). A refusal is
//! [`SshError::AuthFailed`]; a link that dies meanwhile is [`SshError::ConnectionLost`].

use std::fs;

use super::link::is_link_error;
use super::{Login, Secret, SshError, Target};

struct PasswordPrompter<'a>(&'a Secret);

impl ssh2::KeyboardInteractivePrompt for PasswordPrompter<'_> {
    fn prompt<'b>(&mut self, _username: &str, _instructions: &str, prompts: &[ssh2::Prompt<'b>]) -> Vec<String> {
        prompts.iter().map(|_| self.0.expose().to_string()).collect()
    }
}

pub(super) fn authenticate(sess: &ssh2::Session, target: &Target) -> Result<(), SshError> {
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
