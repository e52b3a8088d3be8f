//! Execution of a plan: preflight on every host at once, the master's own work (verify,
//! unpack, payload tars), then the phases of [`super::plan`] over SSH, each step recorded in
//! the journal. A host that fails is dropped from later phases of this run (its remaining steps
//! are recorded `blocked`) and the others go on; the summary names every failure.
//!
//! The engine is one type, [`Engine`], whose methods are spread by what they do:
//! [`preflight_run`] (the read-only checks), [`master`] (the master's own work: verify, unpack,
//! payload tars), [`steps`] (registry, copy, launch, check on a host), [`hook_run`] (rendering
//! and running the bundle's hooks, published values), [`summary`] (the last check and the
//! table). This file holds the state, the step machinery (journal, resume, a failed host
//! blocked) and the order of the phases.

mod hook_run;
mod master;
mod preflight_run;
mod reset;
mod steps;
mod summary;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::{Context, Result};
use bundle_format::manifest::Manifest;

use super::journal::{Journal, StepState};
use super::log::Log;
use super::payload::Built;
use super::plan::Plan;
use super::preflight::Facts;
use crate::clusterfile::{Clusterfile, Host};
use crate::kinds::BundleKind;
use crate::remote::{Connector, Remote};

pub struct Setup<'a> {
    pub plan: &'a Plan,
    pub cluster: &'a Clusterfile,
    /// In the order of `plan.hosts`.
    pub targets: &'a [&'a Host],
    pub manifest: &'a Manifest,
    /// The bundle's kind: its steps, its work on the master, its hook variables.
    pub kind: &'a dyn BundleKind,
    pub connector: &'a dyn Connector,
    pub journal: Journal,
    pub journal_path: PathBuf,
    pub state_dir: PathBuf,
    pub bundle_path: PathBuf,
    /// The signer's fingerprint: the registry service on the registry host checks it.
    pub signer: String,
    pub log: &'a Log,
    pub parallel: usize,
}

pub struct Engine<'a> {
    s: Setup<'a>,
    journal: Mutex<Journal>,
    sessions: Vec<Mutex<Option<Box<dyn Remote + 'a>>>>,
    facts: Mutex<Vec<Option<Facts>>>,
    /// Hosts failed in this run: index -> (step, error).
    failed: Mutex<BTreeMap<usize, (String, String)>>,
    built: Mutex<BTreeMap<String, Built>>,
    hook_sources: Mutex<BTreeMap<String, String>>,
    installer_id: String,
    /// Why join hooks cannot run (init failed), if so.
    blocked: Mutex<Option<String>>,
    /// The stub alone, copied to every host as `<root>/bin/delivery`.
    stub: Mutex<Option<Built>>,
}

impl<'a> Engine<'a> {
    pub fn new(mut setup: Setup<'a>) -> Result<Engine<'a>> {
        let placeholder = Journal::new("", setup.journal.bundle.clone());
        let journal = std::mem::replace(&mut setup.journal, placeholder);
        let n = setup.targets.len();
        let installer_id = installer_id(&setup.state_dir)?;
        Ok(Engine {
            sessions: (0..n).map(|_| Mutex::new(None)).collect(),
            facts: Mutex::new(vec![None; n]),
            failed: Mutex::new(BTreeMap::new()),
            built: Mutex::new(BTreeMap::new()),
            hook_sources: Mutex::new(BTreeMap::new()),
            blocked: Mutex::new(None),
            stub: Mutex::new(None),
            journal: Mutex::new(journal),
            installer_id,
            s: setup,
        })
    }

    fn address(&self, i: usize) -> &str {
        &self.s.plan.hosts[i].address
    }

    fn plan_has(&self, i: usize, step: &str) -> bool {
        self.s.plan.hosts[i].steps.iter().any(|s| s == step)
    }

    fn save_journal(&self, journal: &Journal) {
        if let Err(e) = journal.save(&self.s.journal_path) {
            self.s.log.say("", "journal", &format!("{e:#}"));
        }
    }

    fn record(&self, i: usize, step: &str, state: StepState, detail: String) {
        let mut j = self.journal.lock().expect("no panics while locked");
        let address = self.address(i).to_string();
        if state == StepState::Blocked && j.is_done(&address, step) {
            return;
        }
        let roles = self.s.plan.hosts[i].roles.clone();
        j.host(&address).roles = roles;
        j.record(&address, step, state, detail);
        self.save_journal(&j);
    }

    /// Runs `f` over `items` on at most `parallel` threads.
    fn par(&self, items: &[usize], f: impl Fn(usize) + Sync) {
        let next = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..self.s.parallel.min(items.len()) {
                s.spawn(|| loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&i) = items.get(k) else { break };
                    f(i);
                });
            }
        });
    }

    fn connect(&self, i: usize) -> Result<()> {
        let mut guard = self.sessions[i].lock().expect("no panics while locked");
        if guard.is_none() {
            let mut remote = self.s.connector.connect(self.s.targets[i])?;
            // One run at a time writes a host's install root, whichever master it runs from.
            let holder = format!("pid {} on {}", std::process::id(), master_hostname());
            remote.lock(&self.s.plan.root, &holder, &self.installer_id)?;
            *guard = Some(remote);
        }
        Ok(())
    }

    fn fail(&self, i: usize, step: &str, error: String) {
        self.s.log.say(self.address(i), step, &format!("FAILED: {error}"));
        self.record(i, step, StepState::Failed, error.clone());
        self.failed
            .lock()
            .expect("no panics while locked")
            .entry(i)
            .or_insert((step.to_string(), error));
    }

    /// One step on one host: skipped when the journal has it done (unless `always`), blocked
    /// when the host already failed in this run, else run and recorded.
    fn step(&self, i: usize, step: &str, always: bool, f: impl FnOnce(&mut dyn Remote) -> Result<String>) -> bool {
        let address = self.address(i).to_string();
        if let Some((failed_step, _)) = self.failed.lock().expect("no panics while locked").get(&i).cloned() {
            self.record(
                i,
                step,
                StepState::Blocked,
                format!("not run: {failed_step} failed on this host"),
            );
            return false;
        }
        if !always
            && self
                .journal
                .lock()
                .expect("no panics while locked")
                .is_done(&address, step)
        {
            self.s.log.write(&address, step, "already done (journal): skipped");
            return true;
        }
        if let Err(e) = self.connect(i) {
            self.fail(i, step, format!("{e:#}"));
            return false;
        }
        self.s.log.write(&address, step, "started");
        let mut guard = self.sessions[i].lock().expect("no panics while locked");
        let remote = guard.as_mut().expect("connected above");
        match f(remote.as_mut()) {
            Ok(detail) => {
                drop(guard);
                self.s
                    .log
                    .say(&address, step, if detail.is_empty() { "done" } else { &detail });
                self.record(i, step, StepState::Done, detail);
                true
            }
            Err(e) => {
                drop(guard);
                self.fail(i, step, format!("{e:#}"));
                false
            }
        }
    }

    /// Every phase after preflight; the summary; an error (exit 4) if any host failed.
    pub fn execute(&self) -> Result<()> {
        let plan = self.s.plan;
        let n = plan.hosts.len();
        if let Some(i) = (0..n).find(|&i| self.plan_has(i, "registry")) {
            self.step(i, "registry", true, |r| self.registry(r, i));
        }
        let copy: Vec<usize> = (0..n).filter(|&i| self.plan_has(i, "copy")).collect();
        self.par(&copy, |i| {
            let mut ready = self.step(i, "copy", true, |r| self.copy(r, i));
            for step in self.s.kind.steps(self.s.targets[i]) {
                ready = ready
                    && (!self.plan_has(i, step)
                        || self.step(i, step, true, |r| self.s.kind.run_step(step, &self.kind_context(), r)));
            }
            if ready {
                for hook in plan.hooks_of("prepare") {
                    if !self.hook(i, hook) {
                        break;
                    }
                }
            }
        });
        self.first_master_phase("init");
        // Fresh join credentials, when some host still has to join.
        let pending_join = (0..n).any(|i| {
            let j = self.journal.lock().expect("no panics while locked");
            plan.hosts[i].steps.iter().any(|s| {
                (s.starts_with("hook:join-master/") || s.starts_with("hook:join-node/"))
                    && !j.is_done(self.address(i), s)
            })
        });
        if pending_join && self.blocked.lock().expect("no panics while locked").is_none() {
            self.first_master_phase("pre-join");
        }
        for i in (0..n).filter(|&i| plan.hosts[i].steps.iter().any(|s| s.starts_with("hook:join-master/"))) {
            for hook in plan.hooks_of("join-master") {
                if !self.hook(i, hook) {
                    break;
                }
            }
        }
        let nodes: Vec<usize> = (0..n)
            .filter(|&i| plan.hosts[i].steps.iter().any(|s| s.starts_with("hook:join-node/")))
            .collect();
        self.par(&nodes, |i| {
            for hook in plan.hooks_of("join-node") {
                if !self.hook(i, hook) {
                    break;
                }
            }
        });
        if let Some(i) = (0..n).find(|&i| self.plan_has(i, "launch")) {
            self.step(i, "launch", false, |r| self.launch(r, i));
        }
        self.check_all()
    }

    /// The hooks of `phase` (`init`, `pre-join`) on the host that has them, the first master; a
    /// failure blocks every join of this run.
    fn first_master_phase(&self, phase: &str) {
        let plan = self.s.plan;
        let prefix = format!("hook:{phase}/");
        for i in (0..plan.hosts.len()).filter(|&i| plan.hosts[i].steps.iter().any(|s| s.starts_with(&prefix))) {
            for hook in plan.hooks_of(phase) {
                if !self.hook(i, hook) {
                    *self.blocked.lock().expect("no panics while locked") = Some(format!(
                        "not run: {} failed on the first master {}",
                        hook.path,
                        self.address(i)
                    ));
                    break;
                }
            }
        }
    }

    /// `check` without installing: hooks come from the bundle unpacked at install.
    pub fn check_only(&self, tree: &Path) -> Result<()> {
        self.load_hooks(tree)
            .with_context(|| format!("the bundle unpacked at install is missing under {}", tree.display()))?;
        self.check_all()
    }
}

/// This machine's name, for the record of who holds a host's lock.
fn master_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map_or_else(|_| "the master".into(), |h| h.trim().to_string())
}

/// A random id in the master's state directory: a host whose install root holds the same id
/// is the master itself (its files need no copy over SSH).
fn installer_id(state: &Path) -> Result<String> {
    let path = state.join(".installer-id");
    if let Ok(id) = fs::read_to_string(&path) {
        if id.trim().len() == 32 {
            return Ok(id.trim().to_string());
        }
    }
    fs::create_dir_all(state).with_context(|| format!("failed to create {}", state.display()))?;
    let mut bytes = [0u8; 16];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("failed to read /dev/urandom")?;
    let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    bundle_format::io::write_atomic(&path, format!("{id}\n").as_bytes())
        .with_context(|| format!("failed to write {}", path.display()))?;
    Ok(id)
}
