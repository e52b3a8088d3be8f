//! `install`, `add-node`, `status` and `check`: the master fans out over SSH to the hosts of a
//! Clusterfile. Plan first ([`plan`]), then preflight on every host at once ([`preflight`]),
//! then the work, step by step, each recorded in the journal ([`journal`]) so that a re-run
//! resumes. One failing host never stops the others: it is reported in the summary, the log
//! file names its step and error, and the exit code is 4.
//!
//! What runs where lives in [`engine`]; hosts are reached through [`crate::remote::Remote`].

pub(crate) mod engine;
#[cfg(test)]
mod fake_hosts;
pub(crate) mod hooks;
pub(crate) mod journal;
pub(crate) mod log;
pub(crate) mod payload;
pub(crate) mod plan;
pub(crate) mod preflight;
#[cfg(test)]
mod tests;
pub(crate) mod transport;

use std::fs::{self};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use bundle_format::lock::{self, LockFile};
use bundle_format::Verified;
use terminal::json_lines::{self, Message};

use crate::cli::{AddNodeArgs, CheckArgs, InstallArgs, ResetArgs, StatusArgs};
use crate::clusterfile::{self, Clusterfile, Host};
use crate::kinds;
use crate::own_bundle::{open_verified, own_path};
use crate::remote::Connector;
use journal::{BundleRecord, Journal, StepState};
pub use log::HostsFailed;
use log::Log;
use plan::Mode;

fn state_dir(arg: &Option<PathBuf>, cluster: &Clusterfile) -> PathBuf {
    arg.clone()
        .unwrap_or_else(|| PathBuf::from(plan::remote_root(&cluster.name)))
}

/// One install, add-node or check of a cluster at a time on this machine: they share its state
/// directory (journal, payloads, PKI). A second run is refused at once, naming the first.
fn lock_state(state: &Path, cluster: &str, what: &str) -> Result<LockFile> {
    fs::create_dir_all(state).with_context(|| format!("failed to create the state directory {}", state.display()))?;
    let path = state.join(".lock");
    match lock::lock_exclusive(&path) {
        Ok(mut lock) => {
            // Only a courtesy for the refused run's message: the flock is the lock.
            let _ = lock.record(&format!("{what} (pid {})", std::process::id()));
            Ok(lock)
        }
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            let by = lock::holder(&path).map_or_else(String::new, |h| format!(": {h}"));
            bail!(
                "another install, add-node or check of cluster `{cluster}` is running on this machine \
                 (it holds {}{by}); wait for it to finish, then run again if it failed (it resumes)",
                path.display()
            )
        }
        Err(e) => Err(e).with_context(|| format!("failed to lock {}", path.display())),
    }
}

fn load_cluster(path: &Path) -> Result<Clusterfile> {
    Ok(clusterfile::load(path)?)
}

pub fn install(args: &InstallArgs) -> Result<()> {
    run(Mode::Install, args, &[])
}

pub fn add_node(args: &AddNodeArgs) -> Result<()> {
    run(Mode::AddNode, &args.install, &args.hosts)
}

pub fn reset(args: &ResetArgs) -> Result<()> {
    run(Mode::Reset, &args.install, &args.hosts)
}

fn run(mode: Mode, args: &InstallArgs, only: &[String]) -> Result<()> {
    let cluster = load_cluster(&args.config)?;
    let verified = open_verified(&args.trust, args.json)?;
    run_with(mode, args, only, cluster, verified, &|targets| {
        Ok(Box::new(transport::SshConnector::new(targets)?))
    })
}

/// Opens the [`Connector`] that reaches these hosts (over SSH; tests give a fake).
type Connect<'c> = &'c dyn Fn(&[&Host]) -> Result<Box<dyn Connector>>;

/// `install` or `add-node` of the `verified` bundle to `cluster`, reaching its hosts through
/// `connect`: everything after the inputs are read.
fn run_with(
    mode: Mode,
    args: &InstallArgs,
    only: &[String],
    cluster: Clusterfile,
    verified: Verified,
    connect: Connect<'_>,
) -> Result<()> {
    let manifest = verified.manifest().clone();
    let bundle_path = verified.path().to_path_buf();
    let file_bytes = verified.trailer().total_len;
    let state = state_dir(&args.state_dir, &cluster);
    let what = match mode {
        Mode::Install => "install",
        Mode::AddNode => "add-node",
        Mode::Reset => "reset",
    };
    // A dry run only reads: it neither waits for nor blocks a running install.
    let _lock = if args.dry_run {
        None
    } else {
        Some(lock_state(&state, &cluster.name, what)?)
    };
    let journal_path = state.join("journal.json");
    let record = BundleRecord {
        id: verified.id().to_string(),
        name: manifest.bundle.name.clone(),
        version: manifest.bundle.version.clone(),
        file_sha256: None,
    };
    if mode == Mode::Reset {
        if let Some(j) = Journal::load(&journal_path)?.filter(|j| j.bundle.id != record.id) {
            bail!(
                "the cluster was installed from bundle {} {} ({}): reset it with that bundle, whose reset hooks undo what it set up",
                j.bundle.name,
                j.bundle.version,
                j.bundle.id
            );
        }
    }
    let journal = Journal::open(&journal_path, &cluster.name, record)?;
    let targets: Vec<&Host> = match mode {
        Mode::Install => cluster.hosts.iter().collect(),
        Mode::AddNode => {
            let mut t = add_node_targets(&cluster, &journal, &journal_path, only)?;
            // New hosts join with fresh credentials from the first master's pre-join hooks.
            let pre_join = plan::hooks(&manifest).is_ok_and(|h| h.iter().any(|h| h.phase == "pre-join"));
            if pre_join && !t.is_empty() {
                t.insert(0, cluster.first_master());
            }
            t
        }
        Mode::Reset => reset_targets(&cluster, only)?,
    };
    let kind = kinds::detect(&manifest);
    let plan = plan::make(
        &*kind,
        mode,
        &cluster,
        &targets,
        &manifest,
        verified.id().to_string(),
        file_bytes,
    )
    .with_context(|| bundle_path.display().to_string())?;
    if args.dry_run {
        if args.json {
            json_lines::print_line(&Message::Plan(plan.json()))?;
        } else {
            print!("{}", plan.render());
            println!("\nDry run: nothing was contacted or changed. Run without --dry-run to install.");
        }
        return Ok(());
    }
    if targets.is_empty() {
        let said = format!(
            "every host of {} is already installed: nothing to add",
            args.config.display()
        );
        // With --json, stdout holds JSON lines only.
        if args.json {
            terminal::log(said);
        } else {
            println!("{said}");
        }
        return Ok(());
    }
    if !args.json {
        eprint!("{}", plan.render());
    }
    confirm(args.yes, &plan)?;
    let log = Log::open(&state, &format!("{what}.log"), args.json)?;
    log.say(
        "",
        "start",
        &format!(
            "{what} of {} {} to cluster `{}` ({} host(s)); log: {}",
            plan.bundle.name,
            plan.bundle.version,
            cluster.name,
            targets.len(),
            log.path.display()
        ),
    );
    let connector = connect(&targets)?;
    let engine = engine::Engine::new(engine::Setup {
        plan: &plan,
        cluster: &cluster,
        targets: &targets,
        manifest: &manifest,
        kind: &*kind,
        connector: &*connector,
        journal,
        journal_path,
        state_dir: state.clone(),
        bundle_path,
        signer: verified.signer().fingerprint().to_string(),
        log: &log,
        parallel: args.parallel.max(1),
    })?;
    engine.preflight()?;
    if mode == Mode::Reset {
        let whole = only.is_empty();
        engine.execute_reset(&verified, whole)?;
        if whole {
            forget_cluster(&state, &log)?;
        }
        return Ok(());
    }
    engine.prepare_master(&verified)?;
    drop(verified);
    engine.execute()
}

/// The hosts `reset` takes the bundle off: every host of the Clusterfile, or those named. The
/// first master goes only with the whole cluster: the others joined through it.
fn reset_targets<'a>(cluster: &'a Clusterfile, only: &[String]) -> Result<Vec<&'a Host>> {
    if only.is_empty() {
        return Ok(cluster.hosts.iter().collect());
    }
    let mut targets = Vec::new();
    for a in only {
        let Some(h) = cluster.by_address(a) else {
            bail!("--host {a} is not a host of the Clusterfile");
        };
        if h.address == cluster.first_master().address {
            bail!("--host {a} is the first master, which the other hosts joined through: reset it only with the whole cluster (no --host)");
        }
        if !targets.iter().any(|t: &&Host| t.address == h.address) {
            targets.push(h);
        }
    }
    Ok(targets)
}

/// After a reset of the whole cluster: this master's state directory goes (journal, unpacked
/// bundle, payloads), and the reset log is kept beside it.
fn forget_cluster(state: &Path, log: &Log) -> Result<()> {
    let kept = state.with_file_name(format!(
        "{}-reset.log",
        state.file_name().map_or("delivery".into(), |n| n.to_string_lossy())
    ));
    fs::copy(&log.path, &kept).with_context(|| format!("failed to keep the reset log as {}", kept.display()))?;
    fs::remove_dir_all(state).with_context(|| format!("failed to remove the state directory {}", state.display()))?;
    terminal::log(format_args!(
        "reset done: the install state {} is removed; the log of this reset is {}",
        state.display(),
        kept.display()
    ));
    Ok(())
}

fn add_node_targets<'a>(
    cluster: &'a Clusterfile,
    journal: &Journal,
    journal_path: &Path,
    only: &[String],
) -> Result<Vec<&'a Host>> {
    if !journal.knows(&cluster.first_master().address.to_string()) {
        bail!(
            "no installed cluster here: the journal {} does not record an install on the first master {}; run `install` first",
            journal_path.display(),
            cluster.first_master().address
        );
    }
    if only.is_empty() {
        return Ok(cluster
            .hosts
            .iter()
            .filter(|h| !journal.knows(&h.address.to_string()))
            .collect());
    }
    let mut targets = Vec::new();
    for a in only {
        let Some(h) = cluster.by_address(a) else {
            bail!("--host {a} is not a host of the Clusterfile: add it under [[hosts]] first");
        };
        if journal.knows(&h.address.to_string()) {
            bail!("--host {a} is already part of the cluster (see `status`); add-node only touches new hosts");
        }
        if !targets.iter().any(|t: &&Host| t.address == h.address) {
            targets.push(h);
        }
    }
    Ok(targets)
}

fn confirm(yes: bool, plan: &plan::Plan) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "refusing to change {} host(s) without confirmation: stdin is not a terminal; add --yes",
            plan.hosts.len()
        );
    }
    eprint!("\nProceed on {} host(s)? [y/N] ", plan.hosts.len());
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .context("failed to read the answer")?;
    if !matches!(answer.trim(), "y" | "Y" | "yes") {
        bail!("cancelled: nothing was changed");
    }
    Ok(())
}

/// `status`: the journal as a table, per host and step.
pub fn status(args: &StatusArgs) -> Result<()> {
    let cluster = load_cluster(&args.config)?;
    let state = state_dir(&args.state_dir, &cluster);
    let path = state.join("journal.json");
    let Some(journal) = Journal::load(&path)? else {
        bail!("nothing installed yet: no journal at {}", path.display());
    };
    if args.json {
        for h in &cluster.hosts {
            let a = h.address.to_string();
            let rec = journal.hosts.get(&a);
            let steps = rec.map(|r| {
                r.steps
                    .iter()
                    .map(|(name, s)| {
                        let step = json_lines::Step {
                            state: s.state.as_str(),
                            at: &s.at,
                            detail: &s.detail,
                        };
                        (name.as_str(), step)
                    })
                    .collect()
            });
            json_lines::print_line(&Message::HostStatus(json_lines::HostStatus {
                installed: journal.knows(&a),
                host: a,
                roles: plan::role_names(h),
                hostname: rec.and_then(|r| r.hostname.as_deref()),
                steps,
            }))?;
        }
        return Ok(());
    }
    println!(
        "cluster `{}`: bundle {} {} ({}), journal {}",
        journal.cluster,
        journal.bundle.name,
        journal.bundle.version,
        plan::short(&journal.bundle.id),
        path.display()
    );
    println!(
        "{:<16} {:<14} {:<22} {:<10} STEPS",
        "HOST", "HOSTNAME", "ROLES", "STATE"
    );
    for h in &cluster.hosts {
        let a = h.address.to_string();
        let rec = journal.hosts.get(&a);
        let steps = rec.map_or(String::new(), |r| {
            r.steps
                .iter()
                .map(|(k, v)| format!("{k}={}", v.state.as_str()))
                .collect::<Vec<_>>()
                .join(" ")
        });
        let failed = rec.is_some_and(|r| r.steps.values().any(|s| s.state != StepState::Done));
        let state = if failed {
            "FAILED"
        } else if journal.knows(&a) {
            "installed"
        } else {
            "new"
        };
        println!(
            "{:<16} {:<14} {:<22} {:<10} {steps}",
            a,
            rec.and_then(|r| r.hostname.clone()).unwrap_or_else(|| "-".into()),
            plan::role_names(h).join(","),
            state
        );
        if let Some(r) = rec {
            for (k, v) in r.steps.iter().filter(|(_, v)| v.state != StepState::Done) {
                println!("    {k} {} at {}: {}", v.state.as_str(), v.at, v.detail);
            }
        }
    }
    Ok(())
}

/// `check`: the check hooks on every installed host and the registry, now.
pub fn check(args: &CheckArgs) -> Result<()> {
    let cluster = load_cluster(&args.config)?;
    let verified = open_verified(&args.trust, args.json)?;
    let manifest = verified.manifest().clone();
    let state = state_dir(&args.state_dir, &cluster);
    let _lock = lock_state(&state, &cluster.name, "check")?;
    let journal_path = state.join("journal.json");
    let Some(journal) = Journal::load(&journal_path)? else {
        bail!("nothing installed yet: no journal at {}", journal_path.display());
    };
    if journal.bundle.id != verified.id().to_string() {
        bail!(
            "the cluster was installed from bundle {} ({}); check with that bundle",
            journal.bundle.version,
            journal.bundle.id
        );
    }
    let targets: Vec<&Host> = cluster
        .hosts
        .iter()
        .filter(|h| journal.knows(&h.address.to_string()))
        .collect();
    let kind = kinds::detect(&manifest);
    let plan = plan::make(
        &*kind,
        Mode::Install,
        &cluster,
        &targets,
        &manifest,
        verified.id().to_string(),
        verified.trailer().total_len,
    )?;
    let log = Log::open(&state, "check.log", args.json)?;
    let connector = transport::SshConnector::new(&targets)?;
    let engine = engine::Engine::new(engine::Setup {
        plan: &plan,
        cluster: &cluster,
        targets: &targets,
        manifest: &manifest,
        kind: &*kind,
        connector: &connector,
        journal,
        journal_path,
        state_dir: state.clone(),
        bundle_path: own_path()?,
        signer: verified.signer().fingerprint().to_string(),
        log: &log,
        parallel: args.parallel.max(1),
    })?;
    drop(verified);
    engine.check_only(&state.join("bundle"))
}
