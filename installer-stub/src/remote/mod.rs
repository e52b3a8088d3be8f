//! How the installer reaches a host: the [`Remote`] trait (run a script as root, upload a file
//! checked by digest, hash a file, lock the install root) and the [`Connector`] that opens one
//! per host of the Clusterfile. [`ssh`] is the transport; `install/transport.rs` puts the two
//! together. The engine knows hosts only through these traits, so it can be driven without
//! sshd.

use std::io::Read;

use anyhow::{bail, Result};

use crate::clusterfile::Host;

pub mod ssh;

/// One host, reached. Every operation runs as root on the host (through sudo for other users).
pub trait Remote: Send {
    /// Runs a shell script (fed on stdin, never on a command line) with these variables
    /// exported; `on_line` sees every output line as it arrives. Returns the exit status and
    /// the tail of the output.
    fn run(&mut self, script: &str, env: &[(&str, &str)], on_line: &mut dyn FnMut(&str)) -> Result<(i32, String)>;
    /// Streams `len` bytes to `dest` (through `dest.partial`, renamed once its SHA-256 on the
    /// host equals `sha256_hex`).
    fn upload(
        &mut self,
        src: &mut dyn Read,
        len: u64,
        dest: &str,
        sha256_hex: &str,
        progress: &mut dyn FnMut(u64),
    ) -> Result<()>;
    /// SHA-256 (hex) of a file on the host, `None` when it does not exist.
    fn sha256(&mut self, path: &str) -> Result<Option<String>>;
    /// Takes the exclusive lock on the directory `dir` of the host (recording `holder`) and
    /// holds it for as long as this connection lives; refused at once if another run holds
    /// it. `run` names the master's state directory: a lock left by the same `run` is stale.
    fn lock(&mut self, dir: &str, holder: &str, run: &str) -> Result<()>;
}

/// How the master reaches the cluster: a [`Remote`] to each host of the Clusterfile, and the
/// cluster's registry.
pub trait Connector: Sync {
    fn connect(&self, host: &Host) -> Result<Box<dyn Remote>>;
    /// Asks the registry at `endpoint`, from the master, for every image of `images`; how many
    /// answered.
    fn registry_answers(&self, endpoint: &str, images: &[String]) -> Result<usize>;
}

impl dyn Remote + '_ {
    /// Runs a script and fails with its output when it exits non-zero.
    pub fn run_ok(&mut self, what: &str, script: &str, env: &[(&str, &str)]) -> Result<String> {
        let mut out = String::new();
        let (status, tail) = self.run(script, env, &mut |line| {
            out.push_str(line);
            out.push('\n');
        })?;
        if status != 0 {
            bail!("{what} failed (exit status {status}): {}", last_lines(&tail, 8));
        }
        Ok(out)
    }
}

/// The last `n` lines of some output, joined with ` | `, for an error message.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(n);
    let tail = lines[start..].join(" | ");
    if tail.is_empty() {
        "(no output)".to_string()
    } else {
        tail
    }
}
