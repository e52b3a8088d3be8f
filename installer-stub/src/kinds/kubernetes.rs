//! The Kubernetes bundle kind in the stub: the adapter between the `kubernetes` crate and the
//! stub's own helpers and engine.

use std::fs::File;
use std::io;
use std::path::Path;
use std::process::Command;

/// The stub's atomic writes and process supervision, for the `kubernetes` crate.
pub(crate) struct StubOs;

impl kubernetes::os::Os for StubOs {
    fn write_atomic(&self, path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
        crate::install::write_atomic_mode(path, bytes, mode)
    }

    fn live_pid(&self, pid_file: &Path, ours: &dyn Fn(&str) -> bool) -> Option<i32> {
        crate::registry::service::live_pid(pid_file, ours)
    }

    fn spawn_detached(&self, cmd: Command, log: File) -> io::Result<u32> {
        crate::registry::service::spawn_detached(cmd, log)
    }
}
