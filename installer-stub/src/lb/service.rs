//! The `lb` commands: [`crate::cli::LbArgs`] to [`kubernetes::lb::Config`], then
//! [`kubernetes::lb::service`], and one line on stdout about the outcome.

use std::time::Duration;

use anyhow::Result;
use kubernetes::lb::service::{self as lb, Started, UNIT};
use kubernetes::lb::Config;

use crate::cli::{LbArgs, LbStartArgs, StopArgs};
use crate::kinds::kubernetes::StubOs;
use crate::own_bundle::own_path;

fn config(args: &LbArgs) -> Config {
    Config {
        listen: args.listen,
        backends: args.backends.clone(),
        health_interval: Duration::from_millis(args.health_interval_ms),
        connect_timeout: Duration::from_millis(args.connect_timeout_ms),
        probe: args.probe.clone(),
        ..Config::default()
    }
}

/// `lb serve`: in the foreground until killed.
pub fn serve(args: &LbArgs) -> Result<()> {
    Ok(lb::serve(config(args))?)
}

/// `lb start`: as a service; idempotent.
pub fn start(args: &LbStartArgs) -> Result<()> {
    let program = own_path()?;
    let listen = args.lb.listen;
    match lb::start(&StubOs, &program, &config(&args.lb), &args.state_dir, args.no_systemd)? {
        Started::Systemd => println!("balancer running as systemd unit {UNIT} on {listen}"),
        Started::AlreadyRunning { pid } => println!("balancer already running (pid {pid}) on {listen}"),
        Started::Spawned { pid, log } => println!(
            "balancer started (pid {pid}) on {listen} for {}; log {}",
            args.lb.backends.join(", "),
            log.display()
        ),
    }
    Ok(())
}

/// `lb stop`.
pub fn stop(args: &StopArgs) -> Result<()> {
    match lb::stop(&StubOs, &args.state_dir) {
        Some(pid) => println!("balancer stopped (pid {pid})"),
        None => println!("no balancer running from {}", args.state_dir.display()),
    }
    Ok(())
}
