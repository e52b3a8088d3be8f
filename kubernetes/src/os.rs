//! What this crate needs from the machine that the stub already provides once: atomic file
//! writes and process supervision. The stub passes its implementation in, so that there is one
//! home for each helper and no copy here (issue 13: `write_atomic` and `live_pid` /
//! `spawn_detached` are moving to shared homes; this trait is the seam until then).

use std::fs::File;
use std::io;
use std::path::Path;
use std::process::Command;

/// The machine as the PKI and the balancer's service touch it.
pub trait Os: Sync {
    /// Writes `bytes` to `path` with file mode `mode`: temp name, fsync, rename. The parent
    /// directory exists.
    fn write_atomic(&self, path: &Path, bytes: &[u8], mode: u32) -> io::Result<()>;
    /// The pid written in `pid_file`, if that process is alive and its command line (arguments
    /// joined by spaces) is one `ours` recognises.
    fn live_pid(&self, pid_file: &Path, ours: &dyn Fn(&str) -> bool) -> Option<i32>;
    /// Starts `cmd` in its own session, stdin from /dev/null, stdout and stderr to `log`.
    /// Returns its pid.
    fn spawn_detached(&self, cmd: Command, log: File) -> io::Result<u32>;
}

/// A plain implementation for this crate's tests: writes in place with the mode, no supervision.
#[cfg(test)]
pub(crate) struct TestOs;

#[cfg(test)]
impl Os for TestOs {
    fn write_atomic(&self, path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(path)?;
        f.write_all(bytes)
    }

    fn live_pid(&self, _: &Path, _: &dyn Fn(&str) -> bool) -> Option<i32> {
        None
    }

    fn spawn_detached(&self, _: Command, _: File) -> io::Result<u32> {
        Err(io::Error::other("tests spawn nothing"))
    }
}
