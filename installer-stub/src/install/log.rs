//! What a run of `install`, `add-node` or `check` leaves behind and reports: the log file on the
//! master (every step, every hook line, published values redacted) and [`HostsFailed`], the
//! error behind exit code 4.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result};
use terminal::json_lines::{self, Message};

/// Some hosts failed: exit code 4.
#[derive(Debug, thiserror::Error)]
#[error("{failed} of {total} host(s) failed{}; details in {log}", if *.changed { "" } else { " preflight; nothing was changed on any host" })]
pub struct HostsFailed {
    pub failed: usize,
    pub total: usize,
    pub log: String,
    pub changed: bool,
}

/// The install log on the master: every step, every hook output line (published values
/// redacted), every error, with host and step. Appended, mode 0600.
pub(crate) struct Log {
    file: Mutex<fs::File>,
    pub path: PathBuf,
    pub bars: terminal::Bars,
    json: bool,
}

impl Log {
    pub fn open(dir: &Path, name: &str, json: bool) -> Result<Log> {
        fs::create_dir_all(dir).with_context(|| format!("failed to create the state directory {}", dir.display()))?;
        let path = dir.join(name);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("failed to open the log file {}", path.display()))?;
        Ok(Log {
            file: Mutex::new(file),
            path,
            bars: terminal::Bars::new(json),
            json,
        })
    }

    pub fn json_mode(&self) -> bool {
        self.json
    }

    /// To the log file only.
    pub fn write(&self, host: &str, step: &str, message: &str) {
        let mut f = self.file.lock().expect("no panics while locked");
        let _ = writeln!(f, "{} {host} {step}: {message}", terminal::now());
    }

    /// To the log file and to the person (stderr), or as a JSON event on stdout with --json.
    pub fn say(&self, host: &str, step: &str, message: &str) {
        self.write(host, step, message);
        if self.json {
            // The log file has it: a closed stdout does not stop the install.
            let _ = json_lines::print_line(&Message::Event(json_lines::Event { host, step, message }));
        } else if host.is_empty() {
            self.bars.log(message);
        } else {
            self.bars.log(format_args!("{host} {step}: {message}"));
        }
    }
}
