//! The end of a run: the check step on every host, the registry asked for every image from
//! the master, and the summary (a table, or one JSON line) naming every failed host.

use anyhow::Result;
use terminal::json_lines::{self, Message};

use crate::install::log::HostsFailed;
use crate::install::plan::Mode;

use super::Engine;

impl Engine<'_> {
    pub(super) fn check_all(&self) -> Result<()> {
        let n = self.s.plan.hosts.len();
        let all: Vec<usize> = (0..n).filter(|&i| self.plan_has(i, "check")).collect();
        self.par(&all, |i| {
            self.step(i, "check", true, |r| self.check(r, i));
        });
        let registry_error = match self.s.plan.mode {
            Mode::AddNode | Mode::Reset => None,
            Mode::Install => {
                let images: Vec<String> = self.s.manifest.images.iter().map(|i| i.name.clone()).collect();
                match self
                    .s
                    .connector
                    .registry_answers(&self.s.plan.registry.endpoint, &images)
                {
                    Ok(k) => {
                        self.s.log.say(
                            &self.s.plan.registry.host,
                            "check",
                            &format!(
                                "registry {} answers for all {k} image(s)",
                                self.s.plan.registry.endpoint
                            ),
                        );
                        None
                    }
                    Err(e) => {
                        let e = format!("{e:#}");
                        self.s
                            .log
                            .say(&self.s.plan.registry.host, "check", &format!("FAILED: {e}"));
                        Some(e)
                    }
                }
            }
        };
        self.summary(registry_error)
    }

    pub(super) fn summary(&self, registry_error: Option<String>) -> Result<()> {
        let failed = self.failed.lock().expect("no panics while locked").clone();
        let n = self.s.plan.hosts.len();
        let mut table = format!("\n{:<16} {:<8} {:<28} ERROR\n", "HOST", "RESULT", "FAILED STEP");
        for i in 0..n {
            let (result, step, error) = match failed.get(&i) {
                Some((s, e)) => ("FAILED", s.as_str(), e.as_str()),
                None => ("ok", "", ""),
            };
            let error = error.lines().next().unwrap_or("");
            table.push_str(&format!("{:<16} {result:<8} {step:<28} {error}\n", self.address(i)));
        }
        if let Some(e) = &registry_error {
            table.push_str(&format!("{:<16} {:<8} {:<28} {e}\n", "registry", "FAILED", "check"));
        }
        if self.s.log.json_mode() {
            let hosts = (0..n)
                .map(|i| {
                    let f = failed.get(&i);
                    json_lines::SummaryHost {
                        host: self.address(i),
                        ok: f.is_none(),
                        step: f.map(|x| x.0.as_str()),
                        error: f.map(|x| x.1.as_str()),
                    }
                })
                .collect();
            json_lines::print_line(&Message::Summary(json_lines::Summary {
                hosts,
                registry_error: registry_error.as_deref(),
                log: &self.s.log.path,
            }))?;
        } else {
            eprint!("{table}");
        }
        self.s.log.write("", "summary", &table);
        let count = failed.len() + usize::from(registry_error.is_some() && failed.is_empty());
        if count > 0 {
            return Err(HostsFailed {
                failed: count,
                total: n,
                log: self.s.log.path.display().to_string(),
                changed: true,
            }
            .into());
        }
        // With --json the summary stays the last line.
        let done = format!("all {n} host(s) ok");
        if self.s.log.json_mode() {
            self.s.log.write("", "done", &done);
        } else {
            self.s.log.say("", "done", &done);
        }
        Ok(())
    }
}
