//! The multi-host SSH test bed (`tests/testbed/testbed.sh`) as a guard, and the tests that
//! prove it behaves like separate machines: own hostname, own files, sudo users, link faults,
//! reboots, pinned host keys, and a teardown that leaves nothing behind. Needs root.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::support::*;

/// The bed has fixed names (bridge, namespaces, veths), so only one may exist per machine and
/// cargo's parallel test threads take turns through this lock, held for a guard's lifetime.
static BED: Mutex<()> = Mutex::new(());

/// A running bed of hosts node1..nodeN; dropping it runs `testbed.sh down`.
pub struct Testbed {
    dir: PathBuf,
    env: BTreeMap<String, String>,
    is_down: bool,
    // Last field: released only after `drop` has taken the bed down.
    _turn: MutexGuard<'static, ()>,
}

fn script() -> PathBuf {
    workspace().join("tests/testbed/testbed.sh")
}

/// `KEY=VALUE` lines of hosts.env; comments and blank lines skipped.
fn parse_env(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Testbed {
    /// Bring up `n` hosts (1..=9); panics with the script's stderr if that fails.
    pub fn up(n: usize) -> Testbed {
        // A test that panicked with the bed up poisons the lock; its Drop still ran `down`.
        let turn = BED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let dir = PathBuf::from("/var/tmp/delivery-testbed");
        let out = run(Command::new(script())
            .arg("up")
            .arg(n.to_string())
            .arg("--dir")
            .arg(&dir));
        assert!(
            out.status.success(),
            "testbed.sh up {n} failed with {}:\n{}",
            out.status,
            stderr(&out)
        );
        let env = parse_env(&fs::read_to_string(dir.join("hosts.env")).expect("up writes hosts.env"));
        Testbed {
            dir,
            env,
            is_down: false,
            _turn: turn,
        }
    }

    fn var(&self, key: &str) -> &str {
        self.env.get(key).unwrap_or_else(|| panic!("hosts.env has no {key}"))
    }

    /// Host `i`'s address (node1 is 10.213.7.11).
    pub fn ip(&self, i: usize) -> &str {
        self.var(&format!("NODE{i}_IP"))
    }

    pub fn root_password(&self, i: usize) -> &str {
        self.var(&format!("NODE{i}_ROOT_PASSWORD"))
    }

    /// The password of `ops` (passwordless sudo) or `ops2` (sudo asks for it), same on every host.
    pub fn password(&self, user: &str) -> &str {
        self.var(&format!("{}_PASSWORD", user.to_uppercase()))
    }

    /// The client private key every host's root, ops and ops2 accept.
    pub fn key_path(&self) -> PathBuf {
        self.dir.join("id_ed25519")
    }

    /// `IP ssh-ed25519 KEY` per host.
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.join("known_hosts")
    }

    /// Writes `<dir>/cluster.toml` for cluster `name`: root over SSH with copies of the bed's
    /// client key and known_hosts (strict host keys, 3 s connect timeout) and the registry on
    /// node1:5000, then `rest` (further tables and the `[[hosts]]`). Returns the Clusterfile and
    /// the known_hosts copy.
    pub fn clusterfile(&self, dir: &Path, name: &str, rest: &str) -> (PathBuf, PathBuf) {
        let key = dir.join("id_ed25519");
        fs::copy(self.key_path(), &key).unwrap();
        let known_hosts = dir.join("known_hosts");
        fs::copy(self.known_hosts(), &known_hosts).unwrap();
        let config = dir.join("cluster.toml");
        fs::write(
            &config,
            format!(
                "name = \"{name}\"\n[ssh]\nuser = \"root\"\nprivate_key = \"{}\"\nhost_key_policy = \"strict\"\n\
                 known_hosts = \"{}\"\nconnect_timeout_secs = 3\n[registry]\nhost = \"{}\"\nport = 5000\n{rest}",
                key.display(),
                known_hosts.display(),
                self.ip(1)
            ),
        )
        .unwrap();
        (config, known_hosts)
    }

    fn script(&self, args: &[&str]) -> Output {
        ok(Command::new(script()).args(args).arg("--dir").arg(&self.dir))
    }

    /// Link fault: the host's root-side veth goes down.
    pub fn cut(&self, i: usize) {
        self.script(&["cut", &i.to_string()]);
    }

    pub fn restore(&self, i: usize) {
        self.script(&["restore", &i.to_string()]);
    }

    /// Kill every process of host `i` (its overlay files stay).
    pub fn kill(&self, i: usize) {
        self.script(&["kill", &i.to_string()]);
    }

    /// Start host `i` again and wait for its sshd.
    pub fn start(&self, i: usize) {
        self.script(&["start", &i.to_string()]);
    }

    /// Run `cmd` as `user` on host `i` with the system ssh client, pinned to the bed's host keys.
    pub fn ssh(&self, i: usize, user: &str, cmd: &str) -> Output {
        self.ssh_with(&self.known_hosts(), i, user, cmd)
    }

    fn ssh_with(&self, known_hosts: &Path, i: usize, user: &str, cmd: &str) -> Output {
        run(Command::new("ssh")
            .arg("-F")
            .arg("/dev/null")
            .arg("-i")
            .arg(self.key_path())
            .arg("-o")
            .arg("IdentitiesOnly=yes")
            .arg("-o")
            .arg("StrictHostKeyChecking=yes")
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
            .arg("-o")
            .arg("GlobalKnownHostsFile=/dev/null")
            .arg("-o")
            .arg("ConnectTimeout=3")
            .arg("-o")
            .arg("BatchMode=yes")
            .arg("-o")
            .arg("LogLevel=ERROR")
            .arg(format!("{user}@{}", self.ip(i)))
            .arg(cmd))
    }

    /// The PID of host `i`'s sshd listener: entering its namespaces (`nsenter -t PID -n -m -u`)
    /// is being on that host.
    pub fn pid(&self, i: usize) -> u32 {
        let out = ok(Command::new("ip").args(["netns", "pids", &format!("dlv-node{i}")]));
        let pids: Vec<u32> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        let comm = |p: u32| fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
        let parent = |p: u32| -> u32 {
            let stat = fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
            rest.split_whitespace().nth(1).and_then(|x| x.parse().ok()).unwrap_or(0)
        };
        pids.iter()
            .copied()
            .find(|&p| comm(p).trim() == "sshd" && comm(parent(p)).trim() != "sshd")
            .unwrap_or_else(|| panic!("node{i} has no sshd listener among {pids:?}"))
    }

    /// A command that runs `program` on host `i` (in its network, mount and UTS namespaces).
    pub fn on(&self, i: usize, program: &Path) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg("-t")
            .arg(self.pid(i).to_string())
            .args(["-n", "-m", "-u", "--"])
            .arg(program);
        cmd
    }

    /// Where host `i`'s writes under `/var`, `/etc`, ... land, seen from the machine.
    pub fn upper(&self, i: usize) -> PathBuf {
        self.dir.join(format!("node{i}/up"))
    }

    /// Take the bed down now (Drop then does nothing); the turn is kept until the guard drops.
    pub fn down(&mut self) -> Output {
        self.is_down = true;
        run(Command::new(script()).arg("down").arg("--dir").arg(&self.dir))
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        if !self.is_down {
            let out = self.down();
            if !out.status.success() && !std::thread::panicking() {
                panic!("testbed.sh down failed: {}", stderr(&out));
            }
        }
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn ssh_ok(bed: &Testbed, i: usize, user: &str, cmd: &str) -> String {
    let out = bed.ssh(i, user, cmd);
    assert!(
        out.status.success(),
        "ssh {user}@node{i} {cmd:?} failed with {}: {}",
        out.status,
        stderr(&out)
    );
    stdout(&out)
}

#[test]
fn three_hosts_each_report_their_own_hostname_root() {
    let bed = Testbed::up(3);
    for i in 1..=3 {
        assert_eq!(ssh_ok(&bed, i, "root", "hostname"), format!("node{i}"));
        assert_eq!(bed.ip(i), format!("10.213.7.1{i}"));
    }
}

#[test]
fn a_file_written_on_one_host_stays_on_it_root() {
    let bed = Testbed::up(2);
    let marker = format!("/opt/dlv-testbed-{}", std::process::id());
    ssh_ok(&bed, 1, "root", &format!("echo node1 > {marker}"));
    assert_eq!(ssh_ok(&bed, 1, "root", &format!("cat {marker}")), "node1");
    assert!(!bed.ssh(2, "root", &format!("test -e {marker}")).status.success());
    assert!(!Path::new(&marker).exists(), "{marker} leaked onto the machine");
}

#[test]
fn ops_has_passwordless_sudo_and_ops2_needs_a_password_root() {
    let bed = Testbed::up(1);
    assert_eq!(ssh_ok(&bed, 1, "ops", "sudo -n id -u"), "0");
    assert!(!bed.ssh(1, "ops2", "sudo -n true").status.success());
    // With its password, ops2 gets root too.
    let cmd = format!("echo {} | sudo -S -p '' id -u", bed.password("ops2"));
    assert_eq!(ssh_ok(&bed, 1, "ops2", &cmd), "0");
}

#[test]
fn hosts_have_no_route_beyond_the_bed_root() {
    let bed = Testbed::up(1);
    let routes = ssh_ok(&bed, 1, "root", "ip route; ip -6 route");
    assert!(!routes.contains("default"), "a host has a default route: {routes}");
    // Only the bed's /24 is reachable: anything else fails at once, no packet leaves.
    let out = bed.ssh(1, "root", "exec 3<>/dev/tcp/192.0.2.1/22");
    assert!(stderr(&out).contains("unreachable"), "{}", stderr(&out));
}

#[test]
fn a_cut_link_fails_fast_and_restore_brings_it_back_root() {
    let bed = Testbed::up(2);
    ssh_ok(&bed, 2, "root", "true");
    bed.cut(2);
    let start = Instant::now();
    assert!(!bed.ssh(2, "root", "true").status.success());
    let took = start.elapsed();
    assert!(took < Duration::from_secs(5), "ssh to a cut host took {took:?}");
    assert_eq!(ssh_ok(&bed, 1, "root", "hostname"), "node1", "the cut hit another host");
    bed.restore(2);
    assert_eq!(ssh_ok(&bed, 2, "root", "hostname"), "node2");
}

#[test]
fn kill_and_start_keep_opt_and_clear_tmp_root() {
    let bed = Testbed::up(1);
    ssh_ok(
        &bed,
        1,
        "root",
        "echo kept > /opt/dlv-reboot; echo gone > /tmp/dlv-reboot",
    );
    bed.kill(1);
    let out = bed.ssh(1, "root", "true");
    assert!(!out.status.success(), "node1 still answers after kill");
    bed.start(1);
    assert_eq!(ssh_ok(&bed, 1, "root", "cat /opt/dlv-reboot"), "kept");
    assert!(!bed.ssh(1, "root", "test -e /tmp/dlv-reboot").status.success());
}

#[test]
fn a_changed_host_key_is_refused_root() {
    let bed = Testbed::up(2);
    // Pin node1's address to node2's key: what a swapped or spoofed host looks like.
    let pinned = fs::read_to_string(bed.known_hosts()).expect("known_hosts");
    let node2_key = pinned
        .lines()
        .find(|l| l.starts_with(&format!("{} ", bed.ip(2))))
        .and_then(|l| l.split_once(' '))
        .map(|(_, key)| key.to_string())
        .expect("known_hosts has node2");
    let forged = pinned
        .lines()
        .map(|l| {
            if l.starts_with(&format!("{} ", bed.ip(1))) {
                format!("{} {node2_key}", bed.ip(1))
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let tmp = tempfile::tempdir().expect("temp dir");
    let path = tmp.path().join("known_hosts");
    fs::write(&path, forged + "\n").expect("write known_hosts");

    let out = bed.ssh_with(&path, 1, "root", "true");
    assert!(!out.status.success(), "ssh accepted a changed host key");
    assert!(
        stderr(&out).contains("HOST IDENTIFICATION HAS CHANGED"),
        "{}",
        stderr(&out)
    );
    ssh_ok(&bed, 1, "root", "true"); // the real key still works
}

#[test]
fn down_leaves_nothing_behind_root() {
    let mut bed = Testbed::up(3);
    ssh_ok(&bed, 1, "root", "sleep 600 </dev/null >/dev/null 2>&1 &"); // a straggler to kill
    let out = bed.down();
    assert!(out.status.success(), "down failed: {}", stderr(&out));

    let netns = stdout(&ok(Command::new("ip").args(["netns", "list"])));
    assert!(!netns.contains("dlv-node"), "namespaces left: {netns}");
    let links = stdout(&ok(Command::new("ip").args(["-o", "link"])));
    assert!(
        !links.contains("dlv-veth") && !links.contains("dlvbr0"),
        "links left: {links}"
    );
    let mounts = fs::read_to_string("/proc/mounts").expect("/proc/mounts");
    assert!(
        !mounts.contains("delivery-testbed") && !mounts.contains("dlv-node"),
        "mounts left: {mounts}"
    );
    // Idempotent: a second down (as after a crash) succeeds too.
    ok(Command::new(script()).arg("down"));
}

#[test]
fn root_logs_in_with_its_password_and_a_wrong_one_fails_fast_root() {
    let bed = Testbed::up(1);
    let tmp = tempfile::tempdir().expect("temp dir");
    let askpass = tmp.path().join("askpass");
    write(&askpass, b"#!/bin/sh\nprintf '%s\\n' \"$TESTBED_PASSWORD\"\n", 0o755);
    let login = |password: &str| {
        run(Command::new("ssh")
            .args(["-F", "/dev/null", "-o", "PubkeyAuthentication=no"])
            .args([
                "-o",
                "PreferredAuthentications=password",
                "-o",
                "NumberOfPasswordPrompts=1",
            ])
            .args(["-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=3"])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", bed.known_hosts().display()))
            .arg(format!("root@{}", bed.ip(1)))
            .arg("hostname")
            .env("SSH_ASKPASS", &askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("TESTBED_PASSWORD", password)
            .stdin(std::process::Stdio::null()))
    };
    let right = login(bed.root_password(1));
    assert!(right.status.success(), "password login failed: {}", stderr(&right));
    assert_eq!(stdout(&right), "node1");
    // pam_unix nodelay: a wrong password is refused in well under pam's usual ~3.7 s.
    let start = Instant::now();
    assert!(!login("wrong").status.success());
    assert!(start.elapsed() < Duration::from_secs(2), "took {:?}", start.elapsed());
}
