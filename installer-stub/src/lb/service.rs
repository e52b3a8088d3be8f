//! `lb serve|start|stop`: the node-local API server balancer as a service. Where systemd runs,
//! `start` writes and (re)starts the unit `delivery-apiserver-lb.service` (Restart=always).
//! Elsewhere it starts `lb serve` in its own session with its pid in `<state-dir>/lb.pid` and
//! its output in `<state-dir>/lb.log`. `start` is idempotent: a balancer already running with
//! the same arguments is kept, one with other arguments (a master added) is replaced. It
//! returns once the listener accepts connections.

use std::fs::{self, OpenOptions};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{Balancer, Config};
use crate::cli::{LbArgs, LbStartArgs, StopArgs};
use crate::own_bundle::own_path;
use crate::process::{live_pid, spawn_detached};

const UNIT: &str = "delivery-apiserver-lb.service";

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
    let balancer = Balancer::bind(config(args))?;
    terminal::log(format_args!(
        "lb: listening on {}, backends {}, probe {}",
        balancer.local_addr(),
        args.backends.join(", "),
        args.probe
    ));
    // SIGTERM (`lb stop`, systemd) ends it cleanly, with a last word on every backend.
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGTERM, on_term as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_term as *const () as libc::sighandler_t);
    }
    let handle = balancer.handle();
    std::thread::spawn(move || {
        while !STOP.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(200));
        }
        for b in handle.status() {
            terminal::log(format_args!(
                "lb: stopping; backend {} {} with {} open and {} total connection(s)",
                b.backend,
                if b.healthy { "up" } else { "down" },
                b.active,
                b.total
            ));
        }
        handle.stop();
    });
    balancer.run()?;
    Ok(())
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// The arguments of `lb serve` for these settings.
fn serve_args(args: &LbArgs) -> Vec<String> {
    let mut v = vec![
        "lb".to_string(),
        "serve".into(),
        "--listen".into(),
        args.listen.to_string(),
    ];
    for b in &args.backends {
        v.extend(["--backend".to_string(), b.clone()]);
    }
    v.extend([
        "--health-interval-ms".to_string(),
        args.health_interval_ms.to_string(),
        "--connect-timeout-ms".into(),
        args.connect_timeout_ms.to_string(),
        "--probe".into(),
        args.probe.to_string(),
    ]);
    v
}

pub(crate) fn systemd_unit(program: &Path, args: &LbArgs) -> String {
    format!(
        "# Written by `delivery lb start`.\n[Unit]\nDescription=delivery node-local API server balancer\nAfter=network-online.target\nWants=network-online.target\nBefore=kubelet.service\n\n\
         [Service]\nExecStart={} {}\nRestart=always\nRestartSec=1\n\n[Install]\nWantedBy=multi-user.target\n",
        program.display(),
        serve_args(args).join(" ")
    )
}

fn pid_file(state: &Path) -> PathBuf {
    state.join("lb.pid")
}

/// The pid of a running `lb serve` started from this state directory.
fn running(state: &Path) -> Option<i32> {
    live_pid(&pid_file(state), |cmdline| cmdline.contains(" lb serve "))
}

pub fn start(args: &LbStartArgs) -> Result<()> {
    let state = &args.state_dir;
    fs::create_dir_all(state).with_context(|| format!("failed to create {}", state.display()))?;
    let program = own_path()?;
    let want = serve_args(&args.lb).join(" ");
    if Path::new("/run/systemd/system").is_dir() && !args.no_systemd {
        let unit = Path::new("/etc/systemd/system").join(UNIT);
        let text = systemd_unit(&program, &args.lb);
        let changed = fs::read_to_string(&unit).ok().as_deref() != Some(text.as_str());
        if changed {
            crate::install::write_atomic(&unit, text.as_bytes())
                .with_context(|| format!("failed to write {}", unit.display()))?;
        }
        let ok = |a: &[&str]| Command::new("systemctl").args(a).status().is_ok_and(|s| s.success());
        let started = ok(&["daemon-reload"]) && ok(&["enable", "--now", UNIT]) && (!changed || ok(&["restart", UNIT]));
        if !started {
            bail!("systemctl could not start {UNIT}; see `journalctl -u {UNIT}`");
        }
        wait_listening(args.lb.listen, state)?;
        println!("balancer running as systemd unit {UNIT} on {}", args.lb.listen);
        return Ok(());
    }
    let args_file = state.join("lb.args");
    if let Some(pid) = running(state) {
        if fs::read_to_string(&args_file).ok().as_deref() == Some(want.as_str()) {
            wait_listening(args.lb.listen, state)?;
            println!("balancer already running (pid {pid}) on {}", args.lb.listen);
            return Ok(());
        }
        stop_pid(pid)?;
    }
    let log_path = state.join("lb.log");
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("failed to open {}", log_path.display()))?;
    let mut cmd = Command::new(&program);
    cmd.args(serve_args(&args.lb));
    let pid = spawn_detached(cmd, log).with_context(|| format!("failed to start {}", program.display()))?;
    crate::install::write_atomic(&pid_file(state), format!("{pid}\n").as_bytes())?;
    crate::install::write_atomic(&args_file, want.as_bytes())?;
    wait_listening(args.lb.listen, state)?;
    println!(
        "balancer started (pid {pid}) on {} for {}; log {}",
        args.lb.listen,
        args.lb.backends.join(", "),
        log_path.display()
    );
    Ok(())
}

pub fn stop(args: &StopArgs) -> Result<()> {
    match running(&args.state_dir) {
        Some(pid) => {
            stop_pid(pid)?;
            let _ = fs::remove_file(pid_file(&args.state_dir));
            println!("balancer stopped (pid {pid})");
        }
        None => println!("no balancer running from {}", args.state_dir.display()),
    }
    Ok(())
}

fn stop_pid(pid: i32) -> Result<()> {
    // SAFETY: plain kill(2) on a pid read from our own pid file and checked in /proc.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
        // Reaped or a zombie of another parent: either way it has let go of the port.
        if fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z ")) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn wait_listening(addr: SocketAddr, state: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = fs::read_to_string(state.join("lb.log")).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(5).collect();
    bail!(
        "the balancer does not accept connections on {addr} after 10 s; last lines of {}: {}",
        state.join("lb.log").display(),
        tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_runs_serve_with_every_backend() {
        let args = LbArgs {
            listen: "127.0.0.1:6443".parse().unwrap(),
            backends: vec!["10.0.0.11:6443".into(), "10.0.0.12:6443".into()],
            health_interval_ms: 1000,
            connect_timeout_ms: 2000,
            probe: "https:/readyz".parse().unwrap(),
        };
        let unit = systemd_unit(Path::new("/var/lib/delivery/c/bin/delivery"), &args);
        assert!(unit.contains("ExecStart=/var/lib/delivery/c/bin/delivery lb serve --listen 127.0.0.1:6443 --backend 10.0.0.11:6443 --backend 10.0.0.12:6443 "), "{unit}");
        assert!(unit.contains(" --probe https:/readyz\n"), "{unit}");
        assert!(unit.contains("Restart=always"));
    }
}
