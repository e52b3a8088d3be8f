//! `registry start` / `registry stop`: the registry as a service that outlives the installer.
//! Where systemd runs, a unit (`delivery-registry-<port>.service`) is written and enabled.
//! Elsewhere (containers, minimal hosts, these test beds) `start` verifies the bundle, then
//! detaches a supervisor (`registry supervise`, its own session) that runs `registry serve`,
//! restarts it when it exits (1 s, doubling up to 30 s), and records its pid in
//! `<state-dir>/registry.pid`; output goes to `<state-dir>/registry.log`. `start` returns once
//! the registry answers `GET /v2/`, and does nothing when the supervisor already runs.

use std::fs::{self, OpenOptions};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bundle_format::io::write_atomic;

use super::probe;
use crate::cli::{ServiceArgs, StopArgs};
use crate::own_bundle::{open_verified, own_path};
use crate::process::{catch_termination, live_pid, log_tail, spawn_detached, terminating, wait_until};

const SYSTEMD_DIR: &str = "/etc/systemd/system";

fn pid_file(state: &Path) -> PathBuf {
    state.join("registry.pid")
}

/// The supervisor's pid, if one is alive for this state directory.
fn running(state: &Path) -> Option<i32> {
    live_pid(&pid_file(state), |cmdline| {
        cmdline.contains("registry supervise") && cmdline.contains(&*state.to_string_lossy())
    })
}

fn trust_args(args: &ServiceArgs) -> Vec<String> {
    let mut v = Vec::new();
    if let Some(k) = &args.trust.key {
        v.extend(["--key".to_string(), k.display().to_string()]);
    }
    if let Some(f) = &args.trust.fingerprint {
        v.extend(["--fingerprint".to_string(), f.clone()]);
    }
    v
}

/// Where a local client reaches the listener.
fn probe_addr(listen: SocketAddr) -> SocketAddr {
    let mut a = listen;
    if a.ip().is_unspecified() {
        a.set_ip(if a.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    a
}

fn answers(addr: SocketAddr) -> bool {
    probe::status(&addr.to_string(), "GET", "/v2/").is_ok_and(|code| code == 200)
}

/// The systemd unit that serves this bundle.
pub(crate) fn systemd_unit(bundle: &Path, args: &ServiceArgs) -> String {
    let mut exec = vec![
        bundle.display().to_string(),
        "registry".into(),
        "serve".into(),
        "--listen".into(),
        args.listen.to_string(),
    ];
    exec.extend(trust_args(args));
    format!(
        "# Written by `delivery.run registry start`.\n[Unit]\nDescription=delivery registry mirror ({})\nAfter=network-online.target\nWants=network-online.target\n\n\
         [Service]\nExecStart={}\nRestart=always\nRestartSec=2\n\n[Install]\nWantedBy=multi-user.target\n",
        bundle.display(),
        exec.join(" ")
    )
}

pub fn start(args: &ServiceArgs) -> Result<()> {
    let state = &args.state_dir;
    fs::create_dir_all(state).with_context(|| format!("failed to create {}", state.display()))?;
    let addr = probe_addr(args.listen);
    let bundle = own_path()?;
    if Path::new("/run/systemd/system").is_dir() && !args.no_systemd {
        let verified = open_verified(&args.trust, true)?;
        drop(verified);
        let name = format!("delivery-registry-{}.service", args.listen.port());
        let unit = Path::new(SYSTEMD_DIR).join(&name);
        write_atomic(&unit, systemd_unit(&bundle, args).as_bytes())
            .with_context(|| format!("failed to write {}", unit.display()))?;
        let ok = Command::new("systemctl")
            .arg("daemon-reload")
            .status()
            .is_ok_and(|s| s.success())
            && Command::new("systemctl")
                .args(["enable", "--now", &name])
                .status()
                .is_ok_and(|s| s.success())
            && Command::new("systemctl")
                .args(["restart", &name])
                .status()
                .is_ok_and(|s| s.success());
        if !ok {
            bail!("systemctl could not start {name}; see `journalctl -u {name}`");
        }
        wait_answering(addr, state, &name)?;
        println!("registry running as systemd unit {name} on {}", args.listen);
        return Ok(());
    }
    if let Some(pid) = running(state) {
        wait_answering(addr, state, "the registry")?;
        println!("registry already running (supervisor pid {pid}) on {}", args.listen);
        return Ok(());
    }
    // Verify every byte once here, where an error reaches the installer.
    let verified = open_verified(&args.trust, true)?;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    verified.verify_contents(threads, &bundle_format::Quiet)?;
    drop(verified);
    let log_path = state.join("registry.log");
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("failed to open {}", log_path.display()))?;
    let mut cmd = Command::new(&bundle);
    cmd.args([
        "registry",
        "supervise",
        "--listen",
        &args.listen.to_string(),
        "--state-dir",
    ])
    .arg(state)
    .args(trust_args(args));
    spawn_detached(cmd, log)
        .with_context(|| format!("failed to start the registry supervisor from {}", bundle.display()))?;
    wait_answering(addr, state, "the registry")?;
    let pid = running(state).map_or("?".to_string(), |p| p.to_string());
    println!(
        "registry started (supervisor pid {pid}) on {}; log {}",
        args.listen,
        log_path.display()
    );
    Ok(())
}

fn wait_answering(addr: SocketAddr, state: &Path, what: &str) -> Result<()> {
    if wait_until(Duration::from_secs(60), Duration::from_millis(200), || answers(addr)) {
        return Ok(());
    }
    bail!(
        "{what} does not answer on {addr} after 60 s; last log lines: {}",
        log_tail(&state.join("registry.log"), 5)
    )
}

/// The supervisor: keeps `registry serve` running until SIGTERM.
pub fn supervise(args: &ServiceArgs) -> Result<()> {
    let state = &args.state_dir;
    if let Some(pid) = running(state).filter(|p| *p != std::process::id() as i32) {
        bail!("another supervisor (pid {pid}) already serves {}", state.display());
    }
    write_atomic(&pid_file(state), format!("{}\n", std::process::id()).as_bytes())
        .with_context(|| format!("failed to write {}", pid_file(state).display()))?;
    catch_termination();
    let bundle = own_path()?;
    let mut backoff = Duration::from_secs(1);
    while !terminating() {
        let started = Instant::now();
        let mut child = Command::new(&bundle)
            .args([
                "registry",
                "serve",
                "--no-verify-contents",
                "--listen",
                &args.listen.to_string(),
            ])
            .args(trust_args(args))
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("failed to run {}", bundle.display()))?;
        let status = loop {
            if terminating() {
                let _ = child.kill();
                let _ = child.wait();
                let _ = fs::remove_file(pid_file(state));
                terminal::log("registry supervisor: stopped");
                return Ok(());
            }
            if let Some(s) = child.try_wait()? {
                break s;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        if started.elapsed() > Duration::from_secs(60) {
            backoff = Duration::from_secs(1);
        }
        terminal::log(format_args!(
            "registry supervisor: registry exited ({status}); restarting in {}s",
            backoff.as_secs()
        ));
        wait_until(backoff, Duration::from_millis(100), terminating);
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
    let _ = fs::remove_file(pid_file(state));
    Ok(())
}

pub fn stop(args: &StopArgs) -> Result<()> {
    let Some(pid) = running(&args.state_dir) else {
        println!("no registry supervisor runs for {}", args.state_dir.display());
        return Ok(());
    };
    // SAFETY: plain kill(2) on a pid we just checked is our supervisor.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    if wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
        running(&args.state_dir).is_none()
    }) {
        println!("registry stopped (supervisor pid {pid})");
        return Ok(());
    }
    bail!("the registry supervisor (pid {pid}) did not stop within 10 s")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::TrustArgs;

    #[test]
    fn systemd_unit_runs_the_bundle_with_its_trust_root() {
        let args = ServiceArgs {
            trust: TrustArgs {
                key: None,
                fingerprint: Some("SHA256:abc".into()),
            },
            listen: "0.0.0.0:5000".parse().unwrap(),
            state_dir: "/var/lib/delivery/prod/registry".into(),
            no_systemd: false,
        };
        let unit = systemd_unit(Path::new("/var/lib/delivery/prod/bundle.run"), &args);
        assert!(unit.contains(
            "ExecStart=/var/lib/delivery/prod/bundle.run registry serve --listen 0.0.0.0:5000 --fingerprint SHA256:abc\n"
        ));
        assert!(unit.contains("Restart=always"));
        assert!(unit.contains("WantedBy=multi-user.target"));
    }
}
