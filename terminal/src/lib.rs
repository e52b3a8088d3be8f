//! How both binaries talk to a person and to a program. To a person, about long work: an
//! indicatif bar when stderr is a terminal, plain timestamped lines (at most one every few
//! seconds per phase) when it is a log file, nothing with `--json` on; all of it on stderr. To a
//! program: [`json_lines`], the schema of every line `--json` prints on stdout.

pub mod json_lines;

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use indicatif::{ProgressBar, ProgressStyle};

/// Print a log line on stderr: `2026-11-23T12:00:00Z message`.
pub fn log(message: impl std::fmt::Display) {
    eprintln!("{} {message}", now());
}

/// An error and its causes on one line, `a: b: c`, as `{:#}` prints them, but leaving out a
/// cause whose text is already there: many errors embed their source in their own message, and
/// printing both doubled it (`Not a directory (os error 20): Not a directory (os error 20)`).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

/// Now, as RFC 3339 UTC (`2026-11-23T12:00:00Z`): the time stamp of every log line.
pub fn now() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    bundle_format::manifest::rfc3339(secs)
}

/// Human-readable byte count (binary units).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

enum Sink {
    Bar(Mutex<Option<ProgressBar>>),
    Lines(Mutex<LineState>),
    Silent,
}

struct LineState {
    phase: String,
    total: u64,
    started: Instant,
    last: Instant,
}

/// Implements [`bundle_format::Progress`] for a terminal or a log.
pub struct Reporter {
    sink: Sink,
    done: AtomicU64,
}

impl Reporter {
    /// Bars if stderr is a terminal, lines otherwise; nothing when `quiet` (for `--json`).
    pub fn new(quiet: bool) -> Self {
        let sink = if quiet {
            Sink::Silent
        } else if std::io::stderr().is_terminal() {
            Sink::Bar(Mutex::new(None))
        } else {
            let t = Instant::now();
            Sink::Lines(Mutex::new(LineState {
                phase: String::new(),
                total: 0,
                started: t,
                last: t,
            }))
        };
        Reporter {
            sink,
            done: AtomicU64::new(0),
        }
    }

    /// Close the current phase (its bar, or a final log line).
    pub fn finish(&self) {
        match &self.sink {
            Sink::Bar(bar) => {
                if let Some(b) = bar.lock().expect("no panics while locked").take() {
                    b.finish_and_clear();
                }
            }
            Sink::Lines(state) => {
                let s = state.lock().expect("no panics while locked");
                if !s.phase.is_empty() && s.total > 0 {
                    let secs = s.started.elapsed().as_secs_f64().max(0.001);
                    let rate = bytes((s.total as f64 / secs) as u64);
                    log(format_args!(
                        "{}: done, {} in {secs:.1}s ({rate}/s)",
                        s.phase,
                        bytes(s.total)
                    ));
                }
            }
            Sink::Silent => {}
        }
    }
}

impl bundle_format::Progress for Reporter {
    fn phase(&self, name: &str, total: u64) {
        self.finish();
        self.done.store(0, Ordering::Relaxed);
        match &self.sink {
            Sink::Bar(bar) => {
                let b = ProgressBar::new(total);
                b.set_style(
                    ProgressStyle::with_template(
                        "{prefix:>9} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                    )
                    .expect("the template is valid")
                    .progress_chars("=> "),
                );
                b.set_prefix(name.to_string());
                *bar.lock().expect("no panics while locked") = Some(b);
            }
            Sink::Lines(state) => {
                let mut s = state.lock().expect("no panics while locked");
                let t = Instant::now();
                *s = LineState {
                    phase: name.to_string(),
                    total,
                    started: t,
                    last: t,
                };
                log(format_args!("{name}: {} to process", bytes(total)));
            }
            Sink::Silent => {}
        }
    }

    fn advance(&self, n: u64) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        match &self.sink {
            Sink::Bar(bar) => {
                if let Some(b) = bar.lock().expect("no panics while locked").as_ref() {
                    b.set_position(done);
                }
            }
            Sink::Lines(state) => {
                let mut s = state.lock().expect("no panics while locked");
                if s.last.elapsed() >= Duration::from_secs(5) && s.total > 0 {
                    s.last = Instant::now();
                    let pct = done * 100 / s.total;
                    log(format_args!(
                        "{}: {} of {} ({pct}%)",
                        s.phase,
                        bytes(done),
                        bytes(s.total)
                    ));
                }
            }
            Sink::Silent => {}
        }
    }
}

/// One bar per item of concurrent work (a host's copy): bars on a terminal, a line per item
/// every few seconds in a log, nothing when quiet.
pub struct Bars {
    multi: Option<indicatif::MultiProgress>,
    quiet: bool,
}

/// A bar of [`Bars`].
pub struct Bar {
    bar: Option<ProgressBar>,
    name: String,
    total: u64,
    started: Instant,
    last: Mutex<Instant>,
    lines: bool,
}

impl Bars {
    pub fn new(quiet: bool) -> Self {
        let multi = (!quiet && std::io::stderr().is_terminal()).then(indicatif::MultiProgress::new);
        Bars { multi, quiet }
    }

    /// A log line that does not tear the bars.
    pub fn log(&self, message: impl std::fmt::Display) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(format!("{} {message}", now()));
            }
            None if !self.quiet => log(message),
            None => {}
        }
    }

    pub fn add(&self, name: &str, total: u64) -> Bar {
        let bar = self.multi.as_ref().map(|m| {
            let b = m.add(ProgressBar::new(total));
            b.set_style(
                ProgressStyle::with_template("{prefix:>16} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                    .expect("the template is valid")
                    .progress_chars("=> "),
            );
            b.set_prefix(name.to_string());
            b
        });
        let t = Instant::now();
        Bar {
            bar,
            name: name.to_string(),
            total,
            started: t,
            last: Mutex::new(t),
            lines: self.multi.is_none() && !self.quiet,
        }
    }
}

impl Bar {
    /// `done` bytes of `total` are done.
    pub fn set(&self, done: u64) {
        if let Some(b) = &self.bar {
            b.set_position(done);
        } else if self.lines {
            let mut last = self.last.lock().expect("no panics while locked");
            if last.elapsed() >= Duration::from_secs(5) && self.total > 0 {
                *last = Instant::now();
                log(format_args!(
                    "{}: {} of {} ({}%)",
                    self.name,
                    bytes(done),
                    bytes(self.total),
                    done * 100 / self.total
                ));
            }
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        } else if self.lines && self.total > 0 {
            let secs = self.started.elapsed().as_secs_f64().max(0.001);
            log(format_args!(
                "{}: {} in {secs:.1}s ({}/s)",
                self.name,
                bytes(self.total),
                bytes((self.total as f64 / secs) as u64)
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_already_in_its_parents_text_is_not_repeated() {
        #[derive(Debug, thiserror::Error)]
        #[error("failed to write /x: {source}")]
        struct Write {
            source: std::io::Error,
        }
        let io = std::io::Error::from_raw_os_error(20);
        let text = io.to_string();
        let e = anyhow::Error::new(Write { source: io }).context("extracting");
        let shown = error_chain(e.as_ref());
        assert_eq!(shown, format!("extracting: failed to write /x: {text}"));
        assert_eq!(shown.matches(&text).count(), 1, "{shown}");
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_chain(plain.as_ref()), "outer: inner");
    }
}
