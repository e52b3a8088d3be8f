//! Execution of a plan: preflight on every host at once, the master's own work (verify,
//! unpack, payload tars), then the phases of [`super::plan`] over SSH, each step recorded in
//! the journal. A host that fails is dropped from later phases of this run (its remaining steps
//! are recorded `blocked`) and the others go on; the summary names every failure.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use bundle_format::digest::Digest;
use bundle_format::manifest::Manifest;
use bundle_format::Verified;
use terminal::json_lines::{self, Message};

use super::hooks::{self, BundleVars, ClusterVars, HookContext, HostVars, Paths, RegistryVars};
use super::journal::{Journal, StepState};
use super::payload::{self, Built};
use super::plan::{self, Hook, Mode, Plan};
use super::preflight::{self, Facts, Needs, Row};
use super::{HostsFailed, Log};
use crate::clusterfile::{Clusterfile, Host, Role};
use crate::commands::node_config::{containerd_hosts, Mirror};
use crate::kinds::{BundleKind, KindContext};
use crate::remote::{last_lines, Connector, Remote};

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

const PUBLISH: &str = "state/.publish";

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
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

    /// What this bundle needs on host `i`: disk and free ports.
    fn needs(&self, i: usize) -> Needs {
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
        if !j.knows(&h.address) {
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

    fn preflight_one(&self, i: usize, needs: &Needs) -> Result<Facts> {
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

    /// On the master: verify every byte, unpack (once per bundle), make the payload tars.
    pub fn prepare_master(&self, verified: &Verified) -> Result<()> {
        let log = self.s.log;
        let reporter = terminal::Reporter::new(log.json_mode());
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        log.say("", "verify", "checking every byte of the bundle");
        verified.verify_contents(threads, &reporter)?;
        reporter.finish();
        let tree = self.s.state_dir.join("bundle");
        let id_file = self.s.state_dir.join("bundle.id");
        let id = &self.s.plan.bundle.id;
        if fs::read_to_string(&id_file).ok().as_deref().map(str::trim) != Some(id.as_str()) || !tree.is_dir() {
            log.say("", "unpack", &format!("unpacking the bundle to {}", tree.display()));
            verified.extract(&tree, true, &reporter)?;
            reporter.finish();
            super::write_atomic(&id_file, format!("{id}\n").as_bytes())
                .with_context(|| format!("failed to write {}", id_file.display()))?;
        }
        self.load_hooks(&tree)?;
        let names: BTreeSet<&str> = self.s.plan.hosts.iter().filter_map(|h| h.payload.as_deref()).collect();
        for name in names {
            let p = self.s.plan.payload(name);
            let built = payload::build(self.s.manifest, &tree, p, &self.s.state_dir.join("payload"))?;
            log.write(
                "",
                "payload",
                &format!("{} {} sha256:{}", built.path.display(), built.size, built.sha256),
            );
            self.built
                .lock()
                .expect("no panics while locked")
                .insert(name.to_string(), built);
        }
        let stub = payload::stub(
            &self.s.bundle_path,
            &self.s.manifest.stub,
            &self.s.state_dir.join("payload"),
        )?;
        *self.stub.lock().expect("no panics while locked") = Some(stub);
        if let Some((step, said)) = self.s.kind.prepare_master(&self.kind_context(), &tree)? {
            log.say("", step, &said);
        }
        Ok(())
    }

    /// What the bundle's kind sees of this install.
    fn kind_context(&self) -> KindContext<'_> {
        let p = self.s.plan;
        let host_names = self
            .s
            .cluster
            .hosts
            .iter()
            .map(|h| {
                let a = h.address.to_string();
                let name = self.host_name(&a, p.hosts.iter().position(|x| x.address == a));
                (a, name)
            })
            .collect();
        KindContext {
            cluster: self.s.cluster,
            state_dir: &self.s.state_dir,
            host_names,
        }
    }

    fn load_hooks(&self, tree: &Path) -> Result<()> {
        let mut sources = self.hook_sources.lock().expect("no panics while locked");
        for hook in &self.s.plan.hooks {
            let path = tree.join(&hook.path);
            let text = fs::read_to_string(&path)
                .with_context(|| format!("failed to read hook {} (unpacked at {})", hook.path, path.display()))?;
            sources.insert(hook.path.clone(), text);
        }
        Ok(())
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

    fn check_all(&self) -> Result<()> {
        let n = self.s.plan.hosts.len();
        let all: Vec<usize> = (0..n).filter(|&i| self.plan_has(i, "check")).collect();
        self.par(&all, |i| {
            self.step(i, "check", true, |r| self.check(r, i));
        });
        let registry_error = match self.s.plan.mode {
            Mode::AddNode => None,
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

    fn summary(&self, registry_error: Option<String>) -> Result<()> {
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

    fn host_name(&self, address: &str, i: Option<usize>) -> String {
        if let Some(f) = i.and_then(|i| self.facts.lock().expect("no panics while locked")[i].clone()) {
            return f.hostname;
        }
        self.journal
            .lock()
            .expect("no panics while locked")
            .hosts
            .get(address)
            .and_then(|h| h.hostname.clone())
            .unwrap_or_else(|| address.to_string())
    }

    fn context(&self, i: usize) -> HookContext {
        let c = self.s.cluster;
        let p = self.s.plan;
        let index_of = |a: &str| p.hosts.iter().position(|h| h.address == a);
        let vars = |h: &Host| {
            let a = h.address.to_string();
            HostVars {
                name: self.host_name(&a, index_of(&a)),
                address: a,
                roles: plan::role_names(h),
            }
        };
        let mut env = self.s.manifest.bundle.env.clone();
        env.extend(c.env.clone());
        // Not in the literal below: a guard there would be held while `kind_context` takes the
        // journal's lock for a host this run does not target (add-node, check).
        let published = self.journal.lock().expect("no panics while locked").published.clone();
        let kinds = self.s.kind.hook_vars(&self.kind_context());
        HookContext {
            cluster: ClusterVars { name: c.name.clone() },
            host: vars(self.s.targets[i]),
            hosts: c.hosts.iter().map(vars).collect(),
            first_master: c.first_master().address.to_string(),
            masters: c.masters().map(|h| h.address.to_string()).collect(),
            nodes: c
                .nodes()
                .filter(|h| !h.has_role(Role::Master))
                .map(|h| h.address.to_string())
                .collect(),
            registry: RegistryVars {
                address: c.registry.host.to_string(),
                port: c.registry.port,
                endpoint: p.registry.endpoint.clone(),
                domains: p.registry.domains.clone(),
                images: self.s.manifest.images.iter().map(|i| i.name.clone()).collect(),
                digests: self
                    .s
                    .manifest
                    .images
                    .iter()
                    .map(|i| (i.name.clone(), i.digest.to_string()))
                    .collect(),
            },
            paths: Paths::under(&p.root),
            bundle: BundleVars {
                name: p.bundle.name.clone(),
                version: p.bundle.version.clone(),
                id: p.bundle.id.clone(),
            },
            env,
            published,
            kinds,
        }
    }

    fn hook_env(&self, ctx: &HookContext) -> Vec<(String, String)> {
        let root = &self.s.plan.root;
        let mut env: Vec<(String, String)> = ctx
            .env
            .iter()
            .filter(|(k, _)| {
                k.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        env.extend([
            ("DELIVERY_PUBLISH".to_string(), format!("{root}/{PUBLISH}")),
            ("DELIVERY_ROOT".to_string(), root.clone()),
            ("DELIVERY_FILES".to_string(), ctx.paths.files.clone()),
            ("DELIVERY_CLUSTER".to_string(), ctx.cluster.name.clone()),
            ("DELIVERY_HOST".to_string(), ctx.host.address.clone()),
            ("DELIVERY_REGISTRY".to_string(), ctx.registry.endpoint.clone()),
        ]);
        env
    }

    /// Renders and runs one hook, then collects what it published.
    fn hook(&self, i: usize, hook: &Hook) -> bool {
        let step = hook.step();
        let join = hook.phase == "join-master" || hook.phase == "join-node";
        // prepare hooks bring a host's services up (after a reboot too) and pre-join hooks make
        // fresh join credentials: they run every time; init and join hooks run once.
        let always = hook.phase == "prepare" || hook.phase == "pre-join";
        self.step(i, &step, always, |r| {
            if join {
                if let Some(reason) = self.blocked.lock().expect("no panics while locked").clone() {
                    bail!(reason);
                }
            }
            let ctx = self.context(i);
            let source = self.hook_sources.lock().expect("no panics while locked")[&hook.path].clone();
            let rendered = hooks::render(&hook.path, &source, &ctx)?;
            let env = self.hook_env(&ctx);
            self.run_logged(
                r,
                i,
                &step,
                &hooks::script(&hook.path, &rendered, &ctx.paths)?,
                &env,
                &ctx.published,
            )
            .with_context(|| format!("hook {}", hook.path))?;
            let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let out = r.run_ok(
                "reading published values",
                "cat \"$DELIVERY_PUBLISH\" 2>/dev/null || true\nrm -f \"$DELIVERY_PUBLISH\"\n",
                &env_refs,
            )?;
            let values = hooks::parse_published(&hook.path, &out)?;
            if values.is_empty() {
                return Ok(String::new());
            }
            let keys: Vec<String> = values.keys().cloned().collect();
            let mut j = self.journal.lock().expect("no panics while locked");
            j.published.extend(values);
            self.save_journal(&j);
            Ok(format!("published {}", keys.join(", ")))
        })
    }

    /// Runs a script, every output line to the log file (published values redacted); fails
    /// with the last lines of output when it exits non-zero.
    fn run_logged(
        &self,
        r: &mut dyn Remote,
        i: usize,
        step: &str,
        script: &str,
        env: &[(String, String)],
        published: &BTreeMap<String, String>,
    ) -> Result<()> {
        let address = self.address(i).to_string();
        let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (status, tail) = r.run(script, &env_refs, &mut |line| {
            self.s.log.write(&address, step, &hooks::redact(line, published));
        })?;
        if status != 0 {
            bail!(
                "exited with status {status}: {}",
                last_lines(&hooks::redact(&tail, published), 6)
            );
        }
        Ok(())
    }

    fn is_local(&self, i: usize) -> bool {
        self.facts.lock().expect("no panics while locked")[i]
            .as_ref()
            .is_some_and(|f| f.installer_id == self.installer_id)
    }

    /// The bundle file on the registry host, then its registry service started (or kept). The
    /// file `<bundle>.id` beside it, written last, says which bundle is complete there.
    fn registry(&self, r: &mut dyn Remote, i: usize) -> Result<String> {
        let plan = self.s.plan;
        let dest = &plan.registry.bundle_path;
        let id_file = format!("{dest}.id");
        let id_line = format!("{}\n", plan.bundle.id);
        let id_sha = Digest::of(id_line.as_bytes()).hex();
        let mut detail = String::new();
        if r.sha256(&id_file)?.as_deref() != Some(id_sha.as_str()) {
            if self.is_local(i) {
                place_local(&self.s.bundle_path, Path::new(dest))?;
                detail = format!("bundle placed at {dest}");
            } else {
                let sha = self.bundle_sha256()?;
                let mut file = fs::File::open(&self.s.bundle_path)
                    .with_context(|| format!("failed to open {}", self.s.bundle_path.display()))?;
                let size = plan.bundle.file_bytes;
                let bar = self.s.log.bars.add(&format!("{} bundle", self.address(i)), size);
                r.upload(&mut file, size, dest, &sha, &mut |n| bar.set(n))?;
                bar.finish();
                detail = format!("bundle copied to {dest} ({})", terminal::bytes(size));
            }
            r.upload(
                &mut id_line.as_bytes(),
                id_line.len() as u64,
                &id_file,
                &id_sha,
                &mut |_| {},
            )?;
        }
        let out = r.run_ok(
            "starting the registry service",
            "chmod 0755 \"$DEST\"\n\"$DEST\" registry start --listen \"0.0.0.0:$PORT\" --state-dir \"$R/registry\" --fingerprint \"$FP\"\n",
            &[
                ("DEST", dest),
                ("PORT", &self.s.cluster.registry.port.to_string()),
                ("R", &plan.root),
                ("FP", &self.s.signer),
            ],
        )?;
        let started = last_lines(&out, 1);
        Ok(if detail.is_empty() {
            started
        } else {
            format!("{detail}; {started}")
        })
    }

    fn bundle_sha256(&self) -> Result<String> {
        if let Some(s) = self
            .journal
            .lock()
            .expect("no panics while locked")
            .bundle
            .file_sha256
            .clone()
        {
            return Ok(s);
        }
        self.s.log.say(
            "",
            "registry",
            "hashing the bundle file for the copy to the registry host",
        );
        let sha = payload::file_sha256(&self.s.bundle_path)?;
        let mut j = self.journal.lock().expect("no panics while locked");
        j.bundle.file_sha256 = Some(sha.clone());
        self.save_journal(&j);
        Ok(sha)
    }

    /// The host's payload (uploaded unless already there, then unpacked unless already
    /// unpacked) and its containerd mirror configuration.
    fn copy(&self, r: &mut dyn Remote, i: usize) -> Result<String> {
        let plan = self.s.plan;
        let root = &plan.root;
        let name = plan.hosts[i]
            .payload
            .clone()
            .expect("copy is planned for hosts with a payload");
        let built = self.built.lock().expect("no panics while locked")[&name].clone();
        let remote_tar = format!("{root}/payload/{name}.tar");
        let mut detail = format!("{name}.tar ({})", terminal::bytes(built.size));
        if r.sha256(&remote_tar)?.as_deref() == Some(built.sha256.as_str()) {
            detail.push_str(" already there");
        } else {
            let mut file =
                fs::File::open(&built.path).with_context(|| format!("failed to open {}", built.path.display()))?;
            let bar = self
                .s
                .log
                .bars
                .add(&format!("{} {name}.tar", self.address(i)), built.size);
            r.upload(&mut file, built.size, &remote_tar, &built.sha256, &mut |n| bar.set(n))?;
            bar.finish();
            detail.push_str(" copied");
        }
        let stub = self
            .stub
            .lock()
            .expect("no panics while locked")
            .clone()
            .expect("made by prepare_master");
        let remote_stub = format!("{root}/bin/delivery");
        if r.sha256(&remote_stub)?.as_deref() != Some(stub.sha256.as_str()) {
            let mut file =
                fs::File::open(&stub.path).with_context(|| format!("failed to open {}", stub.path.display()))?;
            r.upload(&mut file, stub.size, &remote_stub, &stub.sha256, &mut |_| {})?;
            r.run_ok(
                "making bin/delivery executable",
                "chmod 0755 \"$STUB\"\n",
                &[("STUB", &remote_stub)],
            )?;
        }
        r.run_ok(
            "unpacking the payload",
            UNPACK,
            &[("R", root), ("NAME", &name), ("WANT", &built.sha256)],
        )?;
        let mirror = Mirror::new(&format!("http://{}", plan.registry.endpoint), false, None)?;
        let domains: BTreeSet<String> = plan.registry.domains.iter().cloned().collect();
        let mut script = String::from("set -eu\nD=\"$R/certs.d\"\nrm -rf \"$D.new\"\nmkdir -p \"$D.new\"\n");
        for (rel, text) in containerd_hosts(&domains, &mirror)? {
            // Registry names are checked hostnames (no quotes, no `$`); the heredoc is quoted,
            // so only its terminator line could end it early.
            if text.lines().any(|l| l == "DELIVERY_EOF")
                || !bundle_format::reference::is_registry(rel.trim_end_matches("/hosts.toml"))
            {
                bail!("refusing to write {rel}: it would break out of the configuration script");
            }
            let dir = rel.rsplit_once('/').map_or("", |(d, _)| d);
            script.push_str(&format!(
                "mkdir -p \"$D.new/{dir}\"\ncat > \"$D.new/{rel}\" <<'DELIVERY_EOF'\n{text}\nDELIVERY_EOF\n"
            ));
        }
        script.push_str("rm -rf \"$D.old\"\nif [ -d \"$D\" ]; then mv \"$D\" \"$D.old\"; fi\nmv \"$D.new\" \"$D\"\nrm -rf \"$D.old\"\n");
        r.run_ok("writing the containerd mirror configuration", &script, &[("R", root)])?;
        Ok(detail)
    }

    fn launch(&self, r: &mut dyn Remote, i: usize) -> Result<String> {
        let ctx = self.context(i);
        let env = self.hook_env(&ctx);
        for cmd in &self.s.plan.launch {
            let script = format!("set -eu\ncd '{}'\n{cmd}\n", ctx.paths.files);
            self.run_logged(r, i, "launch", &script, &env, &ctx.published)
                .with_context(|| format!("launch command `{cmd}`"))?;
        }
        Ok(format!("{} command(s)", self.s.plan.launch.len()))
    }

    fn check(&self, r: &mut dyn Remote, i: usize) -> Result<String> {
        let host = self.s.targets[i];
        let ctx = self.context(i);
        let env = self.hook_env(&ctx);
        let mut ran = 0;
        for hook in self.s.plan.hooks_of("check") {
            if !plan::hook_runs_on("check", host, false) {
                continue;
            }
            let source = self.hook_sources.lock().expect("no panics while locked")[&hook.path].clone();
            let rendered = hooks::render(&hook.path, &source, &ctx)?;
            self.run_logged(
                r,
                i,
                "check",
                &hooks::script(&hook.path, &rendered, &ctx.paths)?,
                &env,
                &ctx.published,
            )
            .with_context(|| format!("check hook {}", hook.path))?;
            ran += 1;
        }
        if ran == 0 {
            r.run_ok("reaching the host", "true\n", &[])?;
        }
        Ok(format!("{ran} check hook(s) passed"))
    }
}

/// Unpacks `$R/payload/$NAME.tar` into `$R/files` unless the payload with digest `$WANT` is
/// already there; a new tree replaces the old one only once it is complete.
const UNPACK: &str = r#"set -eu
if [ "$(cat "$R/files/.payload" 2>/dev/null || true)" = "$WANT" ]; then exit 0; fi
rm -rf "$R/.files.new" "$R/.files.old"
mkdir -p "$R/.files.new"
tar -xf "$R/payload/$NAME.tar" -C "$R/.files.new"
echo "$WANT" > "$R/.files.new/.payload"
sync
if [ -d "$R/files" ]; then mv "$R/files" "$R/.files.old"; fi
mv "$R/.files.new" "$R/files"
rm -rf "$R/.files.old"
"#;

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
    super::write_atomic(&path, format!("{id}\n").as_bytes())
        .with_context(|| format!("failed to write {}", path.display()))?;
    Ok(id)
}

/// Puts the bundle at `dest` on this machine: a hard link when on the same file system, else a
/// copy; through a temp name either way.
fn place_local(src: &Path, dest: &Path) -> Result<()> {
    if let Some(dir) = dest.parent() {
        fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    }
    if fs::canonicalize(src).ok() == fs::canonicalize(dest).ok() {
        return Ok(());
    }
    let tmp = dest.with_extension(format!("run.{}.tmp", std::process::id()));
    let _ = fs::remove_file(&tmp);
    if fs::hard_link(src, &tmp).is_err() {
        fs::copy(src, &tmp).with_context(|| format!("failed to copy {} to {}", src.display(), tmp.display()))?;
        fs::File::open(&tmp)?.sync_all()?;
    }
    fs::rename(&tmp, dest).with_context(|| format!("failed to place the bundle at {}", dest.display()))?;
    Ok(())
}
