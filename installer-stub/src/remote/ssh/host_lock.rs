//! An exclusive lock on a directory of a host, held for as long as a connection wants it: one
//! install at a time writes a host's install root, whichever master it runs from.
//!
//! A `sh -s` on the host takes `flock` on a file under `/run/lock/delivery` named after the
//! directory (outside it: taking the lock changes nothing in the tree, and a reboot clears it)
//! and then waits for more script on
//! its stdin, which is never sent. The lock ends with that shell: when the [`HostLock`] is
//! dropped (the channel closes, the shell reads end-of-file) or when the connection dies (sshd
//! closes the shell's stdin). A killed master therefore never leaves a host locked.

use std::cell::RefCell;
use std::io;

use super::{shell_quote, Ended, Session, SshError};

/// Exit status of the lock script when another process holds the lock.
const BUSY: i32 = 75;
/// The line the lock script prints once it holds the lock.
const LOCKED: &str = "DELIVERY_HOST_LOCKED";

/// The lock file of directory `dir` on the host: `/var/lib/delivery/x` ->
/// `/run/lock/delivery/var-lib-delivery-x.lock`.
fn lock_path(dir: &str) -> String {
    format!("/run/lock/delivery/{}.lock", dir.trim_matches('/').replace('/', "-"))
}

/// The lock script. `$HOLDER` (who, for a refused run's message) and `$RUN` (the id of the
/// master's state directory) are recorded in the lock file with the shell's pid. A lock held by
/// the same `$RUN` is stale: that master holds its own state lock while it runs, so the earlier
/// run is gone and its shell only waits on a connection that died without telling the host (a
/// cut link). That shell is stopped and the lock taken over.
fn script(dir: &str) -> String {
    let lock = shell_quote(&lock_path(dir));
    format!(
        "set -u\n\
         command -v flock >/dev/null 2>&1 || {{ echo 'flock is not installed (it is in util-linux): install it on this host' >&2; exit 1; }}\n\
         mkdir -p /run/lock/delivery || exit 1\n\
         exec 9>>{lock} || exit 1\n\
         if ! flock -n 9; then\n\
           held=$(head -c 300 {lock})\n\
           case \"$held\" in\n\
             *\" run=$RUN shell=\"*)\n\
               old=${{held##*shell=}}; old=${{old%%[!0-9]*}}\n\
               [ -n \"$old\" ] && kill \"$old\" 2>/dev/null\n\
               flock -w 10 9 || {{ printf '%s\\n' \"$held\" >&2; exit {BUSY}; }} ;;\n\
             *) printf '%s\\n' \"$held\" >&2; exit {BUSY} ;;\n\
           esac\n\
         fi\n\
         printf '%s run=%s shell=%s\\n' \"$HOLDER\" \"$RUN\" \"$$\" > {lock}\n\
         echo {LOCKED}\n"
    )
}

/// A held lock: dropping it releases the lock on the host.
pub struct HostLock {
    channel: Option<ssh2::Channel>,
    sess: ssh2::Session,
}

impl Drop for HostLock {
    fn drop(&mut self) {
        // Non-blocking: freeing a channel in blocking mode spins forever on a dead socket.
        self.sess.set_blocking(false);
        if let Some(mut channel) = self.channel.take() {
            let _ = channel.send_eof();
            let _ = channel.close();
        }
        self.sess.set_blocking(true);
    }
}

/// Why a lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum HostLockError {
    #[error(
        "{host}:{port}: {dir} is being written by another install, add-node or check \
         ({holder}); wait for it to finish, then run again if it failed (it resumes)"
    )]
    Busy {
        host: String,
        port: u16,
        dir: String,
        holder: String,
    },
    #[error(transparent)]
    Ssh(#[from] SshError),
}

impl Session {
    /// Takes the exclusive lock on `dir` on the host (created if missing), recording `holder`
    /// (who and where, for the message of a refused run), and holds it until the returned
    /// value is dropped. Refused at once, never waited for, when another process holds it,
    /// unless that is a dead earlier connection of the same `run` (see [`script`]).
    pub fn lock_dir(&self, dir: &str, holder: &str, run: &str, privileged: bool) -> Result<HostLock, HostLockError> {
        let action = format!("locking {dir}");
        let seen = RefCell::new(Vec::new());
        let mut input =
            io::Cursor::new(super::script_stdin(&script(dir), &[("HOLDER", holder), ("RUN", run)]).into_bytes());
        let marker = format!("{LOCKED}\n");
        let until = || seen.borrow().windows(marker.len()).any(|w| w == marker.as_bytes());
        let ended = self.exec_until(
            "sh -s",
            privileged,
            &mut input,
            &mut |_, data| {
                let mut seen = seen.borrow_mut();
                if seen.len() < 64 * 1024 {
                    seen.extend_from_slice(data);
                }
            },
            &mut |_| {},
            &action,
            Some(&until),
        )?;
        match ended {
            Ended::Held(channel) => Ok(HostLock {
                channel: Some(channel),
                sess: self.sess.clone(),
            }),
            Ended::Exited(BUSY) => {
                let text = String::from_utf8_lossy(&seen.borrow()).into_owned();
                let holder = text
                    .lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty() && !l.chars().any(char::is_control))
                    .unwrap_or("holder unknown")
                    .to_string();
                Err(HostLockError::Busy {
                    host: self.host.clone(),
                    port: self.port,
                    dir: dir.to_string(),
                    holder,
                })
            }
            Ended::Exited(status) => Err(SshError::RemoteCommand {
                host: self.host.clone(),
                port: self.port,
                action,
                status,
                stderr: String::from_utf8_lossy(&seen.borrow()).trim().to_string(),
            }
            .into()),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_lock_of_an_install_root_lives_outside_it_on_run() {
        assert_eq!(
            super::lock_path("/var/lib/delivery/prod-eu"),
            "/run/lock/delivery/var-lib-delivery-prod-eu.lock"
        );
    }
}
