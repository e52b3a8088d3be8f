//! Preflight from the engine's side: what each host needs (disk, ports), the read-only script
//! on every target at once, the table, and the stop before any change when a host fails.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Result;
use terminal::json_lines::{self, Message};

use crate::clusterfile::Role;
use crate::install::log::HostsFailed;
use crate::install::plan::Mode;
use crate::install::preflight::{self, Facts, Needs, Row};

use super::Engine;

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Engine<'_> {
    /// What this bundle needs on host `i`: disk and free ports.
    pub(super) fn needs(&self, i: usize) -> Needs {
        let h = &self.s.plan.hosts[i];
        let host = self.s.targets[i];
        let j = self.journal.lock().expect("no panics while locked");
        let mut bytes = 64 << 20;
        if let Some(p) = &h.payload {
            bytes += 2 * self.s.plan.payload(p).bytes;
        }
        let mut ports = Vec::new();
        if self.plan_has(i, "registry") {
            bytes += self.s.plan.bundle.file_bytes;
            if !j.is_done(&h.address, "registry") {
                ports.push(self.s.cluster.registry.port);
            }
        }
        // A host reset may hold the bundle's ports: they are what reset takes away.
        if !j.knows(&h.address) && self.s.plan.mode != Mode::Reset {
            let labels = &self.s.manifest.bundle.labels;
            for (role, label) in [
                (Role::Master, "delivery.ports.master"),
                (Role::Node, "delivery.ports.node"),
            ] {
                if host.has_role(role) {
                    if let Some(list) = labels.get(label) {
                        ports.extend(list.split(',').filter_map(|p| p.trim().parse::<u16>().ok()));
                    }
                }
            }
        }
        ports.sort_unstable();
        ports.dedup();
        Needs { bytes, ports }
    }

    /// Preflight on every target at once; an error (exit 4) if any host fails, before any change.
    pub fn preflight(&self) -> Result<()> {
        let n = self.s.targets.len();
        let rows: Vec<Mutex<Option<Row>>> = (0..n).map(|_| Mutex::new(None)).collect();
        let all: Vec<usize> = (0..n).collect();
        self.s.log.say("", "preflight", &format!("checking {n} host(s)"));
        self.par(&all, |i| {
            let needs = self.needs(i);
            let address = self.address(i).to_string();
            let row = match self.preflight_one(i, &needs) {
                Ok(facts) => {
                    let problems = preflight::evaluate(&facts, &needs, preflight::machine_arch());
                    Row {
                        address,
                        facts: Some(facts),
                        needs,
                        problems,
                    }
                }
                Err(e) => Row {
                    address,
                    facts: None,
                    needs,
                    problems: vec![format!("{e:#}")],
                },
            };
            *rows[i].lock().expect("no panics while locked") = Some(row);
        });
        let mut rows: Vec<Row> = rows
            .into_iter()
            .map(|r| {
                r.into_inner()
                    .expect("no panics while locked")
                    .expect("every row is filled")
            })
            .collect();
        preflight::check_unique_hostnames(&mut rows);
        {
            // Hosts already in the cluster keep their names: a new host may not take one.
            let j = self.journal.lock().expect("no panics while locked");
            for r in rows.iter_mut() {
                let Some(f) = &r.facts else { continue };
                for (a, rec) in &j.hosts {
                    if *a != r.address && rec.hostname.as_deref() == Some(f.hostname.as_str()) {
                        r.problems.push(format!(
                            "hostname `{}` is already the hostname of cluster host {a}",
                            f.hostname
                        ));
                    }
                }
            }
        }
        if self.s.log.json_mode() {
            for r in &rows {
                json_lines::print_line(&Message::Preflight(r.json()))?;
            }
        } else {
            eprint!("\n{}\n", preflight::render(&rows));
        }
        for r in &rows {
            for p in &r.problems {
                self.s.log.write(&r.address, "preflight", p);
            }
        }
        let failed = rows.iter().filter(|r| !r.ok()).count();
        if failed > 0 {
            return Err(HostsFailed {
                failed,
                total: n,
                log: self.s.log.path.display().to_string(),
                changed: false,
            }
            .into());
        }
        let mut facts = self.facts.lock().expect("no panics while locked");
        let mut j = self.journal.lock().expect("no panics while locked");
        for (i, r) in rows.into_iter().enumerate() {
            if let Some(f) = &r.facts {
                j.host(&r.address).hostname = Some(f.hostname.clone());
            }
            facts[i] = r.facts;
        }
        Ok(())
    }

    pub(super) fn preflight_one(&self, i: usize, needs: &Needs) -> Result<Facts> {
        self.connect(i)?;
        let mut guard = self.sessions[i].lock().expect("no panics while locked");
        let remote = guard.as_mut().expect("connected above");
        let ports: Vec<String> = needs.ports.iter().map(u16::to_string).collect();
        let ports = ports.join(" ");
        let t0 = now_secs();
        let out = remote.run_ok(
            "the preflight script",
            preflight::SCRIPT,
            &[("ROOT", &self.s.plan.root), ("PORTS", &ports)],
        )?;
        let t1 = now_secs();
        Ok(preflight::parse(&out, (t0 + t1) / 2.0))
    }
}
