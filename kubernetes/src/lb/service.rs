//! `lb serve|start|stop`: the node-local API server balancer as a service. Where systemd runs,
//! `start` writes and (re)starts the unit `delivery-apiserver-lb.service` (Restart=always).
//! Elsewhere it starts `lb serve` in its own session with its pid in `<state-dir>/lb.pid` and
//! its output in `<state-dir>/lb.log`. `start` is idempotent: a balancer already running with
//! the same arguments is kept, one with other arguments (a master added) is replaced. It
//! returns once the listener accepts connections. The stub's `lb` commands print what these
//! return.

use std::fs::{self, OpenOptions};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{Balancer, Config};
use crate::os::Os;

/// The systemd unit `start` writes where systemd runs.
pub const UNIT: &str = "delivery-apiserver-lb.service";

#[derive(Debug, thiserror::Error)]
pub enum LbError {
    /// Binding or running the balancer (the message names the address).
    #[error(transparent)]
    Balancer(#[from] std::io::Error),
    #[error("failed to create {}", path.display())]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error("failed to write {}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("failed to open {}", path.display())]
    OpenLog { path: PathBuf, source: std::io::Error },
    #[error("failed to start {}", program.display())]
    Spawn { program: PathBuf, source: std::io::Error },
    #[error("systemctl could not start {UNIT}; see `journalctl -u {UNIT}`")]
    Systemctl,
    #[error("the balancer does not accept connections on {addr} after 10 s; last lines of {}: {tail}", log.display())]
    NotListening {
        addr: SocketAddr,
        log: PathBuf,
        tail: String,
    },
}

/// What [`start`] found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// The systemd unit [`UNIT`] runs it.
    Systemd,
    /// A balancer with the same arguments was running already.
    AlreadyRunning { pid: i32 },
    /// Started now, detached, logging to `log`.
    Spawned { pid: u32, log: PathBuf },
}

/// `lb serve`: in the foreground until SIGTERM or SIGINT.
pub fn serve(cfg: Config) -> Result<(), LbError> {
    let backends = cfg.backends.join(", ");
    let probe = cfg.probe.to_string();
    let balancer = Balancer::bind(cfg)?;
    terminal::log(format_args!(
        "lb: listening on {}, backends {backends}, probe {probe}",
        balancer.local_addr(),
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
fn serve_args(cfg: &Config) -> Vec<String> {
    let mut v = vec![
        "lb".to_string(),
        "serve".into(),
        "--listen".into(),
        cfg.listen.to_string(),
    ];
    for b in &cfg.backends {
        v.extend(["--backend".to_string(), b.clone()]);
    }
    v.extend([
        "--health-interval-ms".to_string(),
        cfg.health_interval.as_millis().to_string(),
        "--connect-timeout-ms".into(),
        cfg.connect_timeout.as_millis().to_string(),
        "--probe".into(),
        cfg.probe.to_string(),
    ]);
    v
}

pub fn systemd_unit(program: &Path, cfg: &Config) -> String {
    format!(
        "# Written by `delivery lb start`.\n[Unit]\nDescription=delivery node-local API server balancer\nAfter=network-online.target\nWants=network-online.target\nBefore=kubelet.service\n\n\
         [Service]\nExecStart={} {}\nRestart=always\nRestartSec=1\n\n[Install]\nWantedBy=multi-user.target\n",
        program.display(),
        serve_args(cfg).join(" ")
    )
}

fn pid_file(state: &Path) -> PathBuf {
    state.join("lb.pid")
}

/// The pid of a running `lb serve` started from this state directory.
fn running(os: &dyn Os, state: &Path) -> Option<i32> {
    os.live_pid(&pid_file(state), &|cmdline| cmdline.contains(" lb serve "))
}

fn write(os: &dyn Os, path: &Path, bytes: &[u8]) -> Result<(), LbError> {
    os.write_atomic(path, bytes, 0o600).map_err(|source| LbError::Write {
        path: path.to_owned(),
        source,
    })
}

/// Runs `program lb serve` with `cfg` as a service (a systemd unit unless `no_systemd` or
/// systemd does not run), its pid file and log in `state`; returns once it accepts connections.
pub fn start(os: &dyn Os, program: &Path, cfg: &Config, state: &Path, no_systemd: bool) -> Result<Started, LbError> {
    fs::create_dir_all(state).map_err(|source| LbError::CreateDir {
        path: state.to_owned(),
        source,
    })?;
    let want = serve_args(cfg).join(" ");
    if Path::new("/run/systemd/system").is_dir() && !no_systemd {
        let unit = Path::new("/etc/systemd/system").join(UNIT);
        let text = systemd_unit(program, cfg);
        let changed = fs::read_to_string(&unit).ok().as_deref() != Some(text.as_str());
        if changed {
            write(os, &unit, text.as_bytes())?;
        }
        let ok = |a: &[&str]| Command::new("systemctl").args(a).status().is_ok_and(|s| s.success());
        let started = ok(&["daemon-reload"]) && ok(&["enable", "--now", UNIT]) && (!changed || ok(&["restart", UNIT]));
        if !started {
            return Err(LbError::Systemctl);
        }
        wait_listening(cfg.listen, state)?;
        return Ok(Started::Systemd);
    }
    let args_file = state.join("lb.args");
    if let Some(pid) = running(os, state) {
        if fs::read_to_string(&args_file).ok().as_deref() == Some(want.as_str()) {
            wait_listening(cfg.listen, state)?;
            return Ok(Started::AlreadyRunning { pid });
        }
        stop_pid(pid);
    }
    let log_path = state.join("lb.log");
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|source| LbError::OpenLog {
            path: log_path.clone(),
            source,
        })?;
    let mut cmd = Command::new(program);
    cmd.args(serve_args(cfg));
    let pid = os.spawn_detached(cmd, log).map_err(|source| LbError::Spawn {
        program: program.to_owned(),
        source,
    })?;
    write(os, &pid_file(state), format!("{pid}\n").as_bytes())?;
    write(os, &args_file, want.as_bytes())?;
    wait_listening(cfg.listen, state)?;
    Ok(Started::Spawned { pid, log: log_path })
}

/// Stops the balancer started from `state` without systemd: its pid, or `None` when none runs.
pub fn stop(os: &dyn Os, state: &Path) -> Option<i32> {
    let pid = running(os, state)?;
    stop_pid(pid);
    let _ = fs::remove_file(pid_file(state));
    Some(pid)
}

fn stop_pid(pid: i32) {
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
}

fn wait_listening(addr: SocketAddr, state: &Path) -> Result<(), LbError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = fs::read_to_string(state.join("lb.log")).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(5).collect();
    Err(LbError::NotListening {
        addr,
        log: state.join("lb.log"),
        tail: tail.into_iter().rev().collect::<Vec<_>>().join(" | "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_runs_serve_with_every_backend() {
        let cfg = Config {
            listen: "127.0.0.1:6443".parse().unwrap(),
            backends: vec!["10.0.0.11:6443".into(), "10.0.0.12:6443".into()],
            health_interval: Duration::from_millis(1000),
            connect_timeout: Duration::from_millis(2000),
            probe: "https:/readyz".parse().unwrap(),
            ..Config::default()
        };
        let unit = systemd_unit(Path::new("/var/lib/delivery/c/bin/delivery"), &cfg);
        assert!(unit.contains("ExecStart=/var/lib/delivery/c/bin/delivery lb serve --listen 127.0.0.1:6443 --backend 10.0.0.11:6443 --backend 10.0.0.12:6443 "), "{unit}");
        assert!(
            unit.contains(" --health-interval-ms 1000 --connect-timeout-ms 2000 --probe https:/readyz\n"),
            "{unit}"
        );
        assert!(unit.contains("Restart=always"));
    }
}
