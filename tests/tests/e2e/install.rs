//! `install`, `status`, `check` and `add-node` on the SSH test bed, from a master that is one of
//! the hosts (the installer runs inside node1's namespaces): a bundle whose rootfs carries
//! containerd, its shim and runc from Debian's packages and whose hooks start them with the
//! generated mirror configuration; every host pulls busybox by its original name from node1's
//! registry and runs it. Then the faults: a dead host at preflight, SIGKILL during the copy, a
//! link cut mid-install, a changed host key, a wrong password. Needs root.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::support::*;
use crate::testbed::Testbed;

const CLUSTER: &str = "e2e";

/// The fixture bundle (tests/fixtures/cluster-bundle), built once per test process, with the
/// public key that verifies it.
fn cluster_bundle() -> &'static (PathBuf, PathBuf) {
    static BUNDLE: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    BUNDLE.get_or_init(|| {
        let work = workspace().join(format!("target/e2e-install/{}/bundle", std::process::id()));
        let _ = fs::remove_dir_all(&work);
        fs::create_dir_all(&work).unwrap();
        let ctx = work.join("context");
        ok(Command::new("cp")
            .arg("-r")
            .arg(workspace().join("tests/fixtures/cluster-bundle"))
            .arg(&ctx));
        ok(Command::new(ctx.join("fetch-runtime.sh")).arg(&ctx));
        build_with_busybox(&ctx.join("Kubefile"), &ctx, &work, "cluster.run")
    })
}

/// A directory for one test's Clusterfile, key and known_hosts, visible from inside the hosts
/// (the bed's own directory is hidden from them).
fn scratch(name: &str) -> PathBuf {
    let d = workspace().join(format!("target/e2e-install/{}/{name}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

struct Setup {
    dir: PathBuf,
    config: PathBuf,
    known_hosts: PathBuf,
}

/// A Clusterfile in `dir` for the bed with `hosts` (TOML `[[hosts]]` tables).
fn setup(bed: &Testbed, dir: &Path, hosts: &str) -> Setup {
    let (config, known_hosts) = bed.clusterfile(dir, CLUSTER, &format!("[env]\nGREETING = \"hello\"\n{hosts}"));
    Setup {
        dir: dir.to_path_buf(),
        config,
        known_hosts,
    }
}

fn three_hosts(bed: &Testbed) -> String {
    format!(
        "[[hosts]]\naddresses = [\"{}\"]\nroles = [\"master\", \"registry\"]\n\
         [[hosts]]\naddresses = [\"{}\"]\nroles = [\"master\"]\nssh = {{ user = \"ops\", sudo = true }}\n\
         [[hosts]]\naddresses = [\"{}\"]\nroles = [\"node\"]\nssh = {{ user = \"ops2\", sudo = true, sudo_password_env = \"E2E_SUDO_PASSWORD\" }}\n",
        bed.ip(1),
        bed.ip(2),
        bed.ip(3)
    )
}

/// `delivery.run <args>` on node1, the master.
fn on_master(bed: &Testbed, args: &[&str], config: &Path) -> Command {
    let (bundle, public) = cluster_bundle();
    let mut cmd = bed.on(1, bundle);
    cmd.args(args)
        .arg("--config")
        .arg(config)
        .env("DELIVERY_TRUSTED_KEY", public)
        .env("E2E_SUDO_PASSWORD", bed.password("ops2"))
        .stdin(Stdio::null());
    cmd
}

fn master_state(bed: &Testbed) -> PathBuf {
    bed.upper(1).join(format!("var/lib/delivery/{CLUSTER}"))
}

fn install_log(bed: &Testbed) -> String {
    fs::read_to_string(master_state(bed).join("install.log")).unwrap_or_default()
}

fn explain(out: &Output, bed: &Testbed) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}\ninstall.log:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        stderr(out),
        install_log(bed)
    )
}

fn journal(bed: &Testbed) -> serde_json::Value {
    let text = fs::read_to_string(master_state(bed).join("journal.json")).expect("install writes the journal");
    serde_json::from_str(&text).unwrap()
}

/// Every file whose name ends in `suffix` under host `i`'s /var/lib/delivery.
fn leftovers(bed: &Testbed, i: usize, suffix: &str) -> Vec<String> {
    let root = bed.upper(i).join("var/lib/delivery");
    if !root.exists() {
        return Vec::new();
    }
    walk(&root).into_iter().filter(|p| p.ends_with(suffix)).collect()
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        out.push(p.display().to_string());
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(walk(&p));
        }
    }
    out
}

/// Runs ctr on host `i` to list its images (what containerd pulled during install).
fn images_on(bed: &Testbed, i: usize) -> String {
    let o = bed.ssh(
        i,
        "root",
        "/usr/local/bin/ctr --address /run/containerd/containerd.sock images ls -q",
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn install_three_hosts_then_add_a_fourth_root() {
    let mut bed = Testbed::up(4);
    let dir = scratch("main");
    let s = setup(&bed, &dir, &three_hosts(&bed));

    // The plan, and nothing else: no journal, nothing on any host.
    let plan = ok(&mut on_master(&bed, &["install", "--dry-run"], &s.config));
    let text = String::from_utf8_lossy(&plan.stdout);
    for want in [
        "registry     on 10.213.7.11",
        "init         on 10.213.7.11 (first master)",
        "join-master  on 10.213.7.12 (one at a time)",
        "join-node    on 10.213.7.13 (in parallel)",
        "node.tar",
    ] {
        assert!(text.contains(want), "plan lacks `{want}`:\n{text}");
    }
    assert!(!master_state(&bed).join("journal.json").exists());
    let json = ok(&mut on_master(&bed, &["install", "--dry-run", "--json"], &s.config));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["type"], "plan");
    assert_eq!(v["data"]["hosts"].as_array().unwrap().len(), 3);

    // Install on three hosts: root, ops (passwordless sudo), ops2 (sudo with a password).
    let started = Instant::now();
    let out = run(&mut on_master(&bed, &["install", "--yes"], &s.config));
    assert!(out.status.success(), "install failed: {}", explain(&out, &bed));
    eprintln!("install on 3 hosts took {:.1}s", started.elapsed().as_secs_f64());
    let log = install_log(&bed);
    for i in 1..=3 {
        assert!(
            log.contains(&format!("hello-from-node{i}")),
            "node{i}'s check hook did not print its name through ctr run:\n{log}"
        );
        assert!(
            images_on(&bed, i).contains("docker.io/library/busybox:1.36"),
            "node{i} did not pull busybox by its original name"
        );
    }
    // A value published by init reached join-node, and never the log.
    let j = journal(&bed);
    let token = j["published"]["JOIN_TOKEN"]
        .as_str()
        .expect("init published JOIN_TOKEN")
        .to_string();
    let joined = bed.ssh(3, "root", &format!("cat /var/lib/delivery/{CLUSTER}/state/join-token"));
    assert_eq!(String::from_utf8_lossy(&joined.stdout).trim(), token);
    assert!(!log.contains(&token), "the published token leaked into install.log");
    // CMD ran on the first master only.
    assert!(bed.upper(1).join("var/tmp/delivery-cluster-bundle.cmd").exists());
    assert!(!bed.upper(2).join("var/tmp/delivery-cluster-bundle.cmd").exists());
    // The registry outlives the installer, supervised, on node1.
    assert!(master_state(&bed).join("registry/registry.pid").exists());
    // Node payloads carry rootfs only; masters everything but hooks.
    assert!(bed
        .upper(3)
        .join(format!("var/lib/delivery/{CLUSTER}/files/rootfs/bin/containerd"))
        .exists());
    assert!(!bed
        .upper(3)
        .join(format!("var/lib/delivery/{CLUSTER}/files/etc"))
        .exists());
    assert!(bed
        .upper(2)
        .join(format!("var/lib/delivery/{CLUSTER}/files/etc/imageList"))
        .exists());

    let status = ok(&mut on_master(&bed, &["status"], &s.config));
    let text = String::from_utf8_lossy(&status.stdout);
    assert_eq!(text.matches(" installed ").count(), 3, "{text}");
    let status = ok(&mut on_master(&bed, &["status", "--json"], &s.config));
    let hosts: Vec<serde_json::Value> = String::from_utf8_lossy(&status.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(hosts.len(), 3);
    assert!(
        hosts
            .iter()
            .all(|h| h["type"] == "host" && h["data"]["installed"] == true),
        "{hosts:?}"
    );
    let check = run(&mut on_master(&bed, &["check"], &s.config));
    assert!(check.status.success(), "check failed: {}", explain(&check, &bed));

    // A second install converges without redoing hooks; --json ends with the summary.
    let again = run(&mut on_master(&bed, &["install", "--yes", "--json"], &s.config));
    assert!(again.status.success(), "re-install failed: {}", explain(&again, &bed));
    let stdout = String::from_utf8_lossy(&again.stdout);
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["type"], "summary", "{stdout}");
    assert_eq!(last["data"]["hosts"].as_array().unwrap().len(), 3);
    assert!(
        last["data"]["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["ok"] == true),
        "{stdout}"
    );
    assert!(stdout.lines().any(|l| l.contains("\"type\":\"preflight\"")), "{stdout}");
    let log = install_log(&bed);
    assert!(
        log.contains("hook:init/10-token.sh: already done (journal): skipped"),
        "{log}"
    );
    assert_eq!(journal(&bed)["published"]["JOIN_TOKEN"].as_str(), Some(token.as_str()));

    // add-node: node4 joins; the first three are not touched.
    let before = journal(&bed)["hosts"].clone();
    let stamp = |i: usize| {
        fs::metadata(bed.upper(i).join(format!("var/lib/delivery/{CLUSTER}/files/.payload")))
            .unwrap()
            .modified()
            .unwrap()
    };
    let stamps: Vec<_> = (1..=3).map(stamp).collect();
    let four = format!(
        "{}[[hosts]]\naddresses = [\"{}\"]\nroles = [\"node\"]\n",
        three_hosts(&bed),
        bed.ip(4)
    );
    let s4 = setup(&bed, &scratch("main-add"), &four);
    let out = run(&mut on_master(
        &bed,
        &["add-node", "--yes", "--host", bed.ip(4)],
        &s4.config,
    ));
    assert!(out.status.success(), "add-node failed: {}", explain(&out, &bed));
    let refused = run(&mut on_master(
        &bed,
        &["add-node", "--yes", "--host", bed.ip(2)],
        &s4.config,
    ));
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("already part of the cluster"),
        "{}",
        stderr(&refused)
    );
    let after = journal(&bed)["hosts"].clone();
    for i in 1..=3 {
        let a = bed.ip(i);
        assert_eq!(before[a], after[a], "add-node changed the journal of {a}");
    }
    assert_eq!(
        stamps,
        (1..=3).map(stamp).collect::<Vec<_>>(),
        "add-node rewrote files on old hosts"
    );
    assert!(images_on(&bed, 4).contains("docker.io/library/busybox:1.36"));
    let joined = bed.ssh(4, "root", &format!("cat /var/lib/delivery/{CLUSTER}/state/join-token"));
    assert_eq!(String::from_utf8_lossy(&joined.stdout).trim(), token);
    let log = fs::read_to_string(master_state(&bed).join("add-node.log")).unwrap();
    assert!(log.contains("hello-from-node4"), "{log}");
    // Nothing left to add.
    let none = ok(&mut on_master(&bed, &["add-node", "--yes"], &s4.config));
    assert!(String::from_utf8_lossy(&none.stdout).contains("nothing to add"));
    // With --json, stdout stays JSON lines (here: none) and the words go to stderr.
    let none = ok(&mut on_master(&bed, &["add-node", "--yes", "--json"], &s4.config));
    assert!(none.stdout.is_empty(), "{}", String::from_utf8_lossy(&none.stdout));
    assert!(String::from_utf8_lossy(&none.stderr).contains("nothing to add"));

    // A node reboots: its containerd is gone, `check` says so (exit 4), and `install` again
    // brings it back: registry, copy, prepare hooks and check run every time (idempotent),
    // init and join hooks once.
    bed.kill(3);
    bed.start(3);
    let check = run(&mut on_master(&bed, &["check"], &s4.config));
    assert_eq!(
        check.status.code(),
        Some(4),
        "check after a reboot: {}",
        explain(&check, &bed)
    );
    assert!(stderr(&check).contains("10.213.7.13"), "{}", stderr(&check));
    let out = run(&mut on_master(&bed, &["install", "--yes"], &s4.config));
    assert!(out.status.success(), "install after a reboot: {}", explain(&out, &bed));
    let check = run(&mut on_master(&bed, &["check"], &s4.config));
    assert!(
        check.status.success(),
        "check after re-install: {}",
        explain(&check, &bed)
    );
    let _ = s.dir;
    bed.down();
}

#[test]
fn preflight_with_an_unreachable_host_changes_nothing_root() {
    let mut bed = Testbed::up(3);
    let s = setup(&bed, &scratch("unreachable"), &three_hosts(&bed));
    bed.kill(3);
    let out = run(&mut on_master(&bed, &["install", "--yes"], &s.config));
    assert_eq!(out.status.code(), Some(4), "{}", explain(&out, &bed));
    let err = stderr(&out);
    assert!(err.contains("10.213.7.13") && err.contains("FAILED"), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    for i in 1..=2 {
        assert!(
            !bed.upper(i).join(format!("var/lib/delivery/{CLUSTER}/files")).exists(),
            "node{i} got files although preflight failed"
        );
    }
    assert!(!bed.upper(2).join("var/lib/delivery").exists());
    assert!(
        !master_state(&bed).join("registry").exists(),
        "the registry was started"
    );
    bed.down();
}

#[test]
fn changed_host_key_and_wrong_password_are_refused_root() {
    let mut bed = Testbed::up(3);
    let s = setup(&bed, &scratch("hostkey"), &three_hosts(&bed));
    // node2's entry now carries node3's key: a man in the middle, as far as we can tell.
    let kh = fs::read_to_string(&s.known_hosts).unwrap();
    let key3 = kh.lines().find(|l| l.starts_with(&format!("{} ", bed.ip(3)))).unwrap();
    let forged: String = kh
        .lines()
        .map(|l| {
            if l.starts_with(&format!("{} ", bed.ip(2))) {
                key3.replacen(bed.ip(3), bed.ip(2), 1)
            } else {
                l.to_string()
            }
        })
        .map(|l| l + "\n")
        .collect();
    fs::write(&s.known_hosts, forged).unwrap();
    let out = run(&mut on_master(&bed, &["install", "--yes"], &s.config));
    assert_eq!(out.status.code(), Some(4), "{}", explain(&out, &bed));
    let err = stderr(&out).to_lowercase();
    assert!(
        err.contains("10.213.7.12") && err.contains("host key") && err.contains("changed"),
        "{err}"
    );
    assert!(!bed.upper(1).join(format!("var/lib/delivery/{CLUSTER}/files")).exists());

    // A wrong password: a clear authentication error naming the host and user.
    let hosts = format!(
        "[[hosts]]\naddresses = [\"{}\"]\nroles = [\"master\", \"registry\"]\nssh = {{ password_env = \"E2E_PW\" }}\n",
        bed.ip(1)
    );
    let s = setup(&bed, &scratch("password"), &hosts);
    let out = run(on_master(&bed, &["install", "--yes"], &s.config).env("E2E_PW", "not-the-password"));
    assert_eq!(out.status.code(), Some(4), "{}", explain(&out, &bed));
    let err = stderr(&out).to_lowercase();
    assert!(err.contains("authentication") && err.contains("root"), "{err}");
    assert!(!err.contains("not-the-password"), "the password was printed");
    bed.down();
}

fn spawn(cmd: &mut Command) -> Child {
    retry_busy(|| cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn())
}

/// Waits until `cond` holds, panicking after `secs`.
fn wait_for(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out after {secs}s waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn shape(i: usize, rate: &str) {
    ok(Command::new(workspace().join("tests/testbed/testbed.sh")).args(["shape", &i.to_string(), rate]));
}

#[test]
fn sigkill_during_the_copy_then_rerun_converges_root() {
    let mut bed = Testbed::up(3);
    let s = setup(&bed, &scratch("sigkill"), &three_hosts(&bed));
    // Slow links so that the copy is surely under way when the installer dies.
    for i in 2..=3 {
        shape(i, "40mbit");
    }
    let mut child = spawn(&mut on_master(&bed, &["install", "--yes"], &s.config));
    wait_for("a partial upload on node2 or node3", 120, || {
        (2..=3).any(|i| !leftovers(&bed, i, ".partial").is_empty())
    });
    std::thread::sleep(Duration::from_millis(500));
    // nsenter execs the installer: its pid is the child's.
    child.kill().unwrap();
    let _ = child.wait();
    for i in 2..=3 {
        shape(i, "off");
    }
    // sshd does not stop a command whose client died: a hook of the killed run may still be
    // running somewhere. Make sure one is on node2 (holding its hook lock until released): the
    // re-run must wait for it, not race it.
    let state = format!("/var/lib/delivery/{CLUSTER}/state");
    let hold = format!("while [ ! -e {state}/release ]; do sleep 0.1; done");
    bed.ssh(
        2,
        "root",
        &format!("mkdir -p {state} && (setsid flock {state}/hooks.lock sh -c '{hold}' </dev/null >/dev/null 2>&1 &)"),
    );
    let child = spawn(&mut on_master(&bed, &["install", "--yes"], &s.config));
    let waiting = "10.213.7.12 hook:prepare/10-containerd.sh: waiting for an earlier delivery hook";
    wait_for("node2's hook to wait for the earlier one", 120, || {
        install_log(&bed).contains(waiting)
    });
    assert!(
        !install_log(&bed).contains("10.213.7.12 hook:prepare/10-containerd.sh: node2: containerd"),
        "node2's hook ran while the earlier one held the lock"
    );
    bed.ssh(2, "root", &format!("touch {state}/release"));
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "re-run after SIGKILL failed: {}",
        explain(&out, &bed)
    );
    for i in 1..=3 {
        for suffix in [".partial", ".tmp", ".files.new", ".files.old"] {
            let left = leftovers(&bed, i, suffix);
            assert!(left.is_empty(), "node{i} keeps {left:?}");
        }
        assert!(images_on(&bed, i).contains("docker.io/library/busybox:1.36"));
    }
    bed.down();
}

#[test]
fn a_link_cut_mid_install_fails_that_host_only_then_rerun_completes_root() {
    let mut bed = Testbed::up(3);
    let s = setup(&bed, &scratch("cut"), &three_hosts(&bed));
    shape(3, "20mbit");
    let child = spawn(&mut on_master(&bed, &["install", "--yes"], &s.config));
    wait_for("node3's copy to start", 120, || {
        !leftovers(&bed, 3, ".partial").is_empty()
    });
    bed.cut(3);
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    eprintln!("installer ended {:.1}s after the cut", started.elapsed().as_secs_f64());
    assert_eq!(out.status.code(), Some(4), "{}", explain(&out, &bed));
    let err = stderr(&out);
    // The summary table comes last (the preflight table has rows for the same hosts).
    let row = err
        .lines()
        .rev()
        .find(|l| l.starts_with("10.213.7.13 "))
        .unwrap_or_else(|| panic!("no summary row for node3:\n{err}"));
    assert!(row.contains("FAILED") && row.contains("copy"), "{row}");
    for i in 1..=2 {
        let row = err
            .lines()
            .rev()
            .find(|l| l.starts_with(&format!("{} ", bed.ip(i))))
            .unwrap();
        assert!(row.contains(" ok "), "node{i} should have finished: {row}");
    }
    let log = install_log(&bed);
    assert!(
        log.contains("10.213.7.13 copy: FAILED"),
        "the log names host and step:\n{log}"
    );
    bed.restore(3);
    shape(3, "off");
    let out = run(&mut on_master(&bed, &["install", "--yes"], &s.config));
    assert!(
        out.status.success(),
        "re-run after the link came back failed: {}",
        explain(&out, &bed)
    );
    assert!(images_on(&bed, 3).contains("docker.io/library/busybox:1.36"));
    bed.down();
}

#[test]
fn a_malformed_clusterfile_is_reported_at_line_and_column() {
    let dir = scratch("malformed");
    let config = dir.join("cluster.toml");
    fs::write(
        &config,
        "name = \"x\"\n[[hosts]]\naddresses = [\"10.0.0.1\"]\nroles = [\"mastr\"]\n",
    )
    .unwrap();
    let keys = keygen(&dir, "vendor");
    let bundle = dir.join("demo.run");
    build_demo(&keys.private, &bundle);
    let out = run(Command::new(&bundle)
        .args(["install", "--yes", "--config"])
        .arg(&config)
        .env("DELIVERY_TRUSTED_KEY", &keys.public));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{}:4:", config.display())) && err.contains("mastr"),
        "{err}"
    );
}

/// Starts, in the background on host `i`, a shell that takes `flock` on `lock`, writes `record`
/// into it (with `$$`, the shell's pid, in place of `SHELL_PID`) and holds it until `release`
/// exists. Returns once the lock is held.
fn hold_lock(bed: &Testbed, i: usize, lock: &str, record: Option<&str>, release: &str) {
    let write = record.map_or(String::new(), |r| {
        format!("printf \"%s\\n\" \"{}\" > {lock}; ", r.replace("SHELL_PID", "$$"))
    });
    let body =
        format!("exec 9>>{lock}; flock 9; {write}touch {lock}.held; while [ ! -e {release} ]; do sleep 0.1; done");
    let dir = lock.rsplit_once('/').map_or(".", |(d, _)| d);
    bed.ssh(
        i,
        "root",
        &format!(
            "mkdir -p {dir} && rm -f {lock}.held {release} && (setsid sh -c '{body}' </dev/null >/dev/null 2>&1 &)"
        ),
    );
    wait_for("the test's lock holder", 30, || {
        bed.ssh(i, "root", &format!("test -e {lock}.held")).status.success()
    });
}

/// No process on host `i` has `word` in its command line.
fn gone(bed: &Testbed, i: usize, word: &str) -> bool {
    // `[x]` keeps the pattern from matching the command line of the shell that runs pgrep.
    let (head, last) = word.split_at(word.len() - 1);
    let out = bed.ssh(i, "root", &format!("pgrep -f '{head}[{last}]' || true"));
    String::from_utf8_lossy(&out.stdout).trim().is_empty()
}

#[test]
fn racing_installs_one_runs_the_others_are_told_who_holds_the_lock_root() {
    // Where a host keeps the lock of its install root (outside it, on /run's tmpfs).
    const HOST_LOCK: &str = "/run/lock/delivery/var-lib-delivery-e2e.lock";
    let mut bed = Testbed::up(3);
    let s = setup(&bed, &scratch("race"), &three_hosts(&bed));
    let root = format!("/var/lib/delivery/{CLUSTER}");
    let busy = "another install, add-node or check of cluster `e2e` is running on this machine";

    // Three installs started together on the same master: each either installs or is refused
    // at once by the state directory's lock; never a run that reports success on a torn tree.
    let children: Vec<Child> = (0..3)
        .map(|_| spawn(&mut on_master(&bed, &["install", "--yes"], &s.config)))
        .collect();
    let outs: Vec<Output> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    let won = outs.iter().filter(|o| o.status.success()).count();
    assert!(won >= 1, "no install succeeded: {}", explain(&outs[0], &bed));
    for o in outs.iter().filter(|o| !o.status.success()) {
        assert_eq!(o.status.code(), Some(1), "{}", explain(o, &bed));
        assert!(stderr(o).contains(busy), "{}", explain(o, &bed));
    }
    let out = run(&mut on_master(&bed, &["install", "--yes"], &s.config));
    assert!(out.status.success(), "{}", explain(&out, &bed));
    for i in 1..=3 {
        assert!(images_on(&bed, i).contains("docker.io/library/busybox:1.36"));
        let torn = leftovers(&bed, i, ".files.new");
        assert!(torn.is_empty(), "node{i} keeps a half-unpacked tree: {torn:?}");
    }

    // The state directory's lock held (another run on this master): refused, naming the lock.
    let release = format!("{root}/release-master");
    hold_lock(&bed, 1, &format!("{root}/.lock"), Some("install (pid 4242)"), &release);
    let out = run(&mut on_master(&bed, &["install", "--yes"], &s.config));
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out, &bed));
    assert!(
        stderr(&out).contains(busy) && stderr(&out).contains("install (pid 4242)"),
        "{}",
        explain(&out, &bed)
    );
    bed.ssh(1, "root", &format!("touch {release}"));

    // node2's install root locked by a run from another master: node2 fails preflight with the
    // holder's record, nothing changes anywhere; once released, the install goes through.
    let release = format!("{root}/release-host");
    let foreign = "pid 77 on other-master run=0123456789abcdef0123456789abcdef shell=SHELL_PID";
    hold_lock(&bed, 2, HOST_LOCK, Some(foreign), &release);
    let out = run(&mut on_master(&bed, &["install", "--yes"], &s.config));
    assert_eq!(out.status.code(), Some(4), "{}", explain(&out, &bed));
    let err = stderr(&out);
    assert!(err.contains("nothing was changed"), "{err}");
    let log = install_log(&bed);
    assert!(
        log.contains("10.213.7.12")
            && log.contains("being written by another install")
            && log.contains("pid 77 on other-master"),
        "{log}"
    );
    bed.ssh(2, "root", &format!("touch {release}"));
    wait_for("the foreign holder to let go", 30, || gone(&bed, 2, "release-host"));
    let out = run(&mut on_master(&bed, &["install", "--yes"], &s.config));
    assert!(out.status.success(), "{}", explain(&out, &bed));

    // A lock left on node3 by an earlier run of this same master whose connection died without
    // the host noticing (a cut link): stale, so the holder is stopped and the install goes on.
    let id = fs::read_to_string(master_state(&bed).join(".installer-id")).unwrap();
    let stale = format!("pid 1 on node1 run={} shell=SHELL_PID", id.trim());
    let never = format!("{root}/release-never");
    hold_lock(&bed, 3, HOST_LOCK, Some(&stale), &never);
    let out = run(&mut on_master(&bed, &["install", "--yes"], &s.config));
    assert!(
        out.status.success(),
        "a stale lock of this master blocked it: {}",
        explain(&out, &bed)
    );
    assert!(gone(&bed, 3, "release-never"), "the stale holder still runs");
    bed.down();
}

/// Every path under host `i`'s own layer (what it changed of the machine's tree: the bed's
/// hosts are overlays over `/`), skipping what the host's own sshd and shells write, and the
/// directories that exist below it (copied up when a file in them changed, not made).
fn tree_of(bed: &Testbed, i: usize) -> BTreeSet<String> {
    let up = bed.upper(i);
    let mut paths = BTreeSet::new();
    let mut stack = vec![up.clone()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let path = e.path();
            let rel = path.strip_prefix(&up).unwrap().to_string_lossy().to_string();
            if rel.starts_with("var/log") || rel.starts_with("root/.") || rel.starts_with("home/") {
                continue;
            }
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
                if !Path::new("/").join(&rel).is_dir() {
                    paths.insert(format!("{rel}/"));
                }
            } else {
                paths.insert(rel);
            }
        }
    }
    paths
}

/// Processes of host `i` (its mount namespace) whose command line names this cluster or the
/// fixture's containerd.
fn processes_of(bed: &Testbed, i: usize) -> Vec<String> {
    let out = bed.ssh(i, "root", "for d in /proc/[0-9]*; do [ \"$(readlink $d/ns/mnt)\" = \"$(readlink /proc/self/ns/mnt)\" ] && tr '\\0' ' ' < $d/cmdline && echo; done");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(&format!("/var/lib/delivery/{CLUSTER}")) || l.contains("delivery-config.toml"))
        .map(str::to_string)
        .collect()
}

#[test]
fn reset_leaves_nothing_behind_and_the_same_clusterfile_installs_again_root() {
    let bed = Testbed::up(2);
    let dir = scratch("reset");
    let hosts = format!(
        "[[hosts]]\naddresses = [\"{}\"]\nroles = [\"master\", \"registry\"]\n\
         [[hosts]]\naddresses = [\"{}\"]\nroles = [\"node\"]\n",
        bed.ip(1),
        bed.ip(2)
    );
    let s = setup(&bed, &dir, &hosts);
    let before: Vec<BTreeSet<String>> = (1..=2).map(|i| tree_of(&bed, i)).collect();
    ok(&mut on_master(&bed, &["install", "--yes"], &s.config));
    assert!(
        !processes_of(&bed, 1).is_empty(),
        "no registry or containerd ran after install"
    );

    // A node alone: it is forgotten, the master keeps everything.
    ok(&mut on_master(
        &bed,
        &["reset", "--yes", "--host", bed.ip(2)],
        &s.config,
    ));
    assert_eq!(tree_of(&bed, 2), before[1], "reset --host left files on the node");
    assert!(processes_of(&bed, 2).is_empty(), "{:?}", processes_of(&bed, 2));
    let status = ok(&mut on_master(&bed, &["status"], &s.config));
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("new"),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );
    ok(&mut on_master(&bed, &["add-node", "--yes"], &s.config));

    // The whole cluster, from the master that is one of its hosts.
    let out = ok(&mut on_master(&bed, &["reset", "--yes"], &s.config));
    let said = String::from_utf8_lossy(&out.stderr);
    let kept = format!("var/lib/delivery/{CLUSTER}-reset.log");
    assert!(said.contains(&format!("/{kept}")), "{said}");
    for i in 1..=2 {
        let mut after = tree_of(&bed, i);
        if i == 1 {
            // What the master keeps on purpose: the log of the reset, beside the state.
            assert!(after.remove(&kept), "the reset log is not kept at /{kept}");
            after.remove("var/lib/delivery/");
        }
        let added: Vec<_> = after.difference(&before[i - 1]).collect();
        let removed: Vec<_> = before[i - 1].difference(&after).collect();
        assert!(
            added.is_empty() && removed.is_empty(),
            "host {i} after reset: added {added:?}, removed {removed:?}"
        );
        assert!(
            processes_of(&bed, i).is_empty(),
            "host {i}: {:?}",
            processes_of(&bed, i)
        );
    }
    // And it installs again from the start.
    ok(&mut on_master(&bed, &["install", "--yes"], &s.config));
}
