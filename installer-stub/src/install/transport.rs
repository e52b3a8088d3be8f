//! How the installer reaches hosts over SSH: [`SshConnector`], the [`Remote`] and
//! [`Connector`] of [`crate::remote`] implemented over [`crate::remote::ssh`], with the
//! credentials it needs, gathered once before any host is contacted.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::clusterfile::{self, Auth, Host};
use crate::remote::ssh::{self, HostLock, Login, Secret, Session, Sudo, Target};
use crate::remote::{Connector, Remote};

/// Connects over SSH with the Clusterfile's settings and secrets gathered beforehand.
pub struct SshConnector {
    /// Passwords by environment variable name (read once), or by `prompt:USER@HOST` key.
    secrets: BTreeMap<String, String>,
}

impl SshConnector {
    /// Reads every password the Clusterfile's hosts need: from their environment variables,
    /// or from the terminal (once per user). Fails before any host is contacted when one is
    /// missing, naming the host and the variable.
    pub fn new(hosts: &[&Host]) -> Result<SshConnector> {
        let mut secrets = BTreeMap::new();
        for host in hosts {
            let mut wanted = Vec::new();
            if let Auth::PasswordEnv(var) = &host.ssh.auth {
                wanted.push(var.clone());
            }
            if let Some(var) = &host.ssh.sudo_password_env {
                wanted.push(var.clone());
            }
            for var in wanted {
                if secrets.contains_key(&var) {
                    continue;
                }
                match std::env::var(&var) {
                    Ok(v) if !v.is_empty() => {
                        secrets.insert(var, v);
                    }
                    _ => bail!(
                        "{}: host {} needs the password in the environment variable {var}, which is not set; \
                         export it (e.g. `read -rs {var} && export {var}`) and run again",
                        host.origin,
                        host.address
                    ),
                }
            }
            if host.ssh.auth == Auth::PasswordPrompt {
                let key = format!("prompt:{}", host.ssh.user);
                if let std::collections::btree_map::Entry::Vacant(slot) = secrets.entry(key) {
                    let password = prompt_password(&format!(
                        "SSH password for {} (used for every host with password_prompt and this user): ",
                        host.ssh.user
                    ))
                    .with_context(|| format!("{}: host {} asks for a password", host.origin, host.address))?;
                    slot.insert(password);
                }
            }
        }
        Ok(SshConnector { secrets })
    }

    fn target(&self, host: &Host) -> Result<Target> {
        let s = &host.ssh;
        let login = match &s.auth {
            Auth::Key(path) => Login::Key(path.clone()),
            Auth::PasswordEnv(var) => Login::Password(Secret::new(self.secrets[var].clone())),
            Auth::PasswordPrompt => Login::Password(Secret::new(self.secrets[&format!("prompt:{}", s.user)].clone())),
        };
        let sudo = if s.user == "root" {
            Sudo::No
        } else if !s.sudo {
            bail!(
                "{}: host {} logs in as `{}`, which is not root, and sudo is off; set `sudo = true` for it (the installer needs root)",
                host.origin,
                host.address,
                s.user
            );
        } else if let Some(var) = &s.sudo_password_env {
            Sudo::Password(Secret::new(self.secrets[var].clone()))
        } else {
            Sudo::Passwordless
        };
        Ok(Target {
            host: host.address.to_string(),
            port: s.port,
            user: s.user.clone(),
            login,
            sudo,
            host_key_policy: match s.host_key_policy {
                clusterfile::HostKeyPolicy::Strict => ssh::HostKeyPolicy::Strict,
                clusterfile::HostKeyPolicy::AcceptNew => ssh::HostKeyPolicy::AcceptNew,
            },
            known_hosts: s.known_hosts.clone().unwrap_or_else(default_known_hosts),
            connect_timeout: s.connect_timeout,
            dead_peer_timeout: dead_peer_timeout(s.connect_timeout),
        })
    }
}

/// How long a silent, unanswering peer is tolerated before its host is failed: twice the
/// connect timeout, at least 10 s.
pub fn dead_peer_timeout(connect_timeout: Duration) -> Duration {
    (connect_timeout * 2).max(Duration::from_secs(10))
}

fn default_known_hosts() -> PathBuf {
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    home.join(".ssh/known_hosts")
}

impl Connector for SshConnector {
    fn connect(&self, host: &Host) -> Result<Box<dyn Remote>> {
        let target = self.target(host)?;
        let session = Session::connect(&target)?;
        Ok(Box::new(SshRemote { lock: None, session }))
    }

    fn registry_answers(&self, endpoint: &str, images: &[String]) -> Result<usize> {
        crate::registry::probe::registry(endpoint, images)
    }
}

struct SshRemote {
    /// Dropped first: the lock's channel closes while the session is still up.
    lock: Option<HostLock>,
    session: Session,
}

impl Remote for SshRemote {
    fn run(&mut self, script: &str, env: &[(&str, &str)], on_line: &mut dyn FnMut(&str)) -> Result<(i32, String)> {
        Ok(self
            .session
            .run_streaming(script, env, true, &mut |_, line| on_line(line))?)
    }

    fn upload(
        &mut self,
        src: &mut dyn Read,
        len: u64,
        dest: &str,
        sha256_hex: &str,
        progress: &mut dyn FnMut(u64),
    ) -> Result<()> {
        Ok(self.session.upload(src, len, dest, sha256_hex, true, progress)?)
    }

    fn sha256(&mut self, path: &str) -> Result<Option<String>> {
        Ok(self.session.remote_sha256(path, true)?)
    }

    fn lock(&mut self, dir: &str, holder: &str, run: &str) -> Result<()> {
        if self.lock.is_none() {
            self.lock = Some(self.session.lock_dir(dir, holder, run, true)?);
        }
        Ok(())
    }
}

/// Reads a password from the controlling terminal with echo off.
fn prompt_password(prompt: &str) -> Result<String> {
    use std::io::{BufRead, Write};
    use std::os::fd::AsRawFd;
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .context("no terminal to ask for the password on; use password_env instead of password_prompt")?;
    let fd = tty.as_raw_fd();
    // SAFETY: termios is plain data; tcgetattr fills it for a valid fd.
    let mut old: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: fd is an open terminal for the duration of this function.
    if unsafe { libc::tcgetattr(fd, &mut old) } != 0 {
        bail!("/dev/tty is not a terminal; use password_env instead of password_prompt");
    }
    let mut quiet = old;
    quiet.c_lflag &= !libc::ECHO;
    quiet.c_lflag |= libc::ECHONL;
    // SAFETY: as above.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    let mut writer = &tty;
    let _ = writer.write_all(prompt.as_bytes());
    let _ = writer.flush();
    let mut line = String::new();
    let read = std::io::BufReader::new(&tty).read_line(&mut line);
    // SAFETY: restores the settings read above.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &old) };
    read.context("failed to read the password from the terminal")?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        bail!("no password given");
    }
    Ok(password)
}
