//! The engine driven on fake hosts ([`super::fake_hosts`]): plan order, resume after a failure
//! at every call on every host, add-node touching only new hosts, published values reaching
//! later hooks and never the log. A real, signed bundle is built and verified for every case;
//! only the hosts are fake. The same paths run against real sshd hosts in `tests/tests/e2e`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::Result;
use bundle_format::keys::SigningKey;
use bundle_format::manifest::{BundleInfo, Launch};
use bundle_format::write::{write_bundle, Contents, InputEntry, Options};
use bundle_format::{Bundle, Quiet, Trust};

use super::fake_hosts::{Answer, Call, Failure, FakeHosts};
use super::journal::{Journal, StepState};
use super::plan::Mode;
use super::{run_with, HostsFailed};
use crate::cli::{InstallArgs, TrustArgs};
use crate::clusterfile;

const M1: &str = "10.9.0.1";
const M2: &str = "10.9.0.2";
const N1: &str = "10.9.0.3";
const N2: &str = "10.9.0.4";

const TOKEN: &str = "tok-5ecret-0042";

/// Hooks by path: each names itself with `# fake:` after its step, so calls read as steps.
const HOOKS: &[(&str, &str)] = &[
    ("hooks/prepare/10-prep.sh", "echo preparing {{ host.address }}\n"),
    ("hooks/init/10-init.sh", "echo init on {{ first_master }}\n"),
    (
        "hooks/pre-join/10-token.sh",
        "echo \"JOIN_TOKEN=$(make-token)\" >> \"$DELIVERY_PUBLISH\"\n",
    ),
    (
        "hooks/join-master/10-jm.sh",
        "join-master --token {{ published.JOIN_TOKEN }}\n",
    ),
    (
        "hooks/join-node/10-jn.sh",
        "join-node --token {{ published.JOIN_TOKEN }}\n",
    ),
    ("hooks/check/10-check.sh", "echo healthy\n"),
    ("hooks/reset/10-undo.sh", "echo undoing {{ host.address }}\n"),
];

/// Steps that run again on every run; the others run once.
fn always(step: &str) -> bool {
    ["registry", "copy", "check"].contains(&step)
        || step.starts_with("hook:prepare/")
        || step.starts_with("hook:pre-join/")
}

/// The smallest file the bundle writer takes as a stub: an ELF header and one program header.
fn tiny_stub() -> Vec<u8> {
    let mut elf = vec![0u8; 120];
    elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
    elf[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
    elf[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
    elf[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
    elf[64 + 32..64 + 40].copy_from_slice(&120u64.to_le_bytes());
    elf
}

fn key() -> SigningKey {
    SigningKey::from_seed([7; 32], "engine tests")
}

/// The signed bundle every case installs (built once): the hooks above, a file for the nodes
/// under `rootfs/`, one for masters only, and a CMD.
fn bundle() -> &'static Path {
    static BUNDLE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = BUNDLE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        let mut entries = Vec::new();
        let mut dirs = std::collections::BTreeSet::new();
        let files: Vec<(String, String)> = HOOKS
            .iter()
            .map(|(path, body)| {
                let step = format!("hook:{}", path.trim_start_matches("hooks/"));
                (path.to_string(), format!("# fake: {step}\n{body}"))
            })
            .chain([
                ("rootfs/bin/tool".to_string(), "#!/bin/sh\n".to_string()),
                ("etc/app.yaml".to_string(), "kind: App\n".to_string()),
            ])
            .collect();
        for (path, text) in &files {
            let source = src.join(path);
            fs::create_dir_all(source.parent().unwrap()).unwrap();
            fs::write(&source, text).unwrap();
            let mut parent = Path::new(path).parent();
            while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
                dirs.insert(p.to_string_lossy().to_string());
                parent = p.parent();
            }
            entries.push(InputEntry::File {
                path: path.clone(),
                mode: 0o755,
                source,
                size: text.len() as u64,
                stored: false,
            });
        }
        for d in dirs.into_iter().rev() {
            entries.insert(0, InputEntry::Dir { path: d, mode: 0o755 });
        }
        entries.sort_by(|a, b| a.path().cmp(b.path()));
        let info = BundleInfo {
            name: "engine-test".into(),
            version: "1.0".into(),
            launch: Some(Launch::Cmds(vec!["# fake: launch\necho launched".into()])),
            labels: BTreeMap::from([("delivery.ports.master".to_string(), "6443".to_string())]),
            ..BundleInfo::default()
        };
        let contents = Contents {
            info: &info,
            entries: &entries,
            blobs: &[],
            images: &[],
        };
        let path = dir.path().join("engine-test.run");
        let out = fs::File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        write_bundle(&out, &tiny_stub(), &contents, &key(), &Options::default(), &Quiet).unwrap();
        (dir, path)
    });
    path
}

/// A cluster of fake hosts, a state directory and a Clusterfile naming `hosts` as
/// `(address, role)`; the first is the first master and the registry host.
struct Bed {
    dir: tempfile::TempDir,
    hosts: FakeHosts,
}

impl Bed {
    fn new(hosts: &[(&str, &str)]) -> Bed {
        let bed = Bed {
            dir: tempfile::tempdir().unwrap(),
            hosts: FakeHosts::default(),
        };
        // What the pre-join hook would publish: the join hooks need it.
        bed.hosts.answer(
            "# fake: hook:pre-join/",
            Answer {
                output: vec!["made a token".into()],
                publish: format!("JOIN_TOKEN={TOKEN}\n"),
            },
        );
        bed.set_hosts(hosts);
        bed
    }

    fn set_hosts(&self, hosts: &[(&str, &str)]) {
        let mut text = String::from("name = \"t\"\n");
        for (address, role) in hosts {
            text.push_str(&format!(
                "[[hosts]]\naddresses = [\"{address}\"]\nroles = [\"{role}\"]\n"
            ));
        }
        fs::write(self.config(), text).unwrap();
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("cluster.toml")
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn run(&self, mode: Mode, only: &[String]) -> Result<()> {
        let args = InstallArgs {
            trust: TrustArgs {
                key: None,
                fingerprint: None,
            },
            config: self.config(),
            dry_run: false,
            json: false,
            yes: true,
            parallel: 4,
            state_dir: Some(self.state()),
        };
        let cluster = clusterfile::load(&self.config())?;
        let verified = Bundle::open(bundle())?.verify_signature(&Trust::Key(key().public()))?;
        let hosts = self.hosts.clone();
        run_with(mode, &args, only, cluster, verified, &move |_| {
            Ok(Box::new(hosts.clone()))
        })
    }

    fn install(&self) -> Result<()> {
        self.run(Mode::Install, &[])
    }

    fn journal(&self) -> Journal {
        Journal::load(&self.state().join("journal.json"))
            .unwrap()
            .expect("a journal")
    }

    /// Each host's steps and their states, from the journal.
    fn steps(&self) -> BTreeMap<String, Vec<(String, StepState)>> {
        let Some(journal) = Journal::load(&self.state().join("journal.json")).unwrap() else {
            return BTreeMap::new();
        };
        journal
            .hosts
            .iter()
            .map(|(a, h)| (a.clone(), h.steps.iter().map(|(s, r)| (s.clone(), r.state)).collect()))
            .collect()
    }

    fn log(&self, name: &str) -> String {
        fs::read_to_string(self.state().join(name)).unwrap()
    }
}

/// The scripts named `# fake:` that ran on `host`, in order.
fn named_runs(hosts: &FakeHosts, host: &str) -> Vec<String> {
    hosts
        .labels(host)
        .into_iter()
        .filter_map(|l| l.strip_prefix("run ").map(str::to_string))
        .filter(|n| n != "script" && n != "preflight")
        .collect()
}

fn three_hosts() -> Bed {
    Bed::new(&[(M1, "master"), (M2, "master"), (N1, "node")])
}

fn assert_all_done(bed: &Bed) {
    for (host, steps) in bed.steps() {
        for (step, state) in steps {
            assert_eq!(state, StepState::Done, "{host} {step}");
        }
    }
}

#[test]
fn install_runs_every_step_of_the_plan_in_order() {
    let bed = three_hosts();
    bed.install().unwrap();
    assert_all_done(&bed);
    assert_eq!(
        named_runs(&bed.hosts, M1),
        [
            "hook:prepare/10-prep.sh",
            "hook:init/10-init.sh",
            "hook:pre-join/10-token.sh",
            "launch",
            "hook:check/10-check.sh"
        ]
    );
    assert_eq!(
        named_runs(&bed.hosts, M2),
        [
            "hook:prepare/10-prep.sh",
            "hook:join-master/10-jm.sh",
            "hook:check/10-check.sh"
        ]
    );
    assert_eq!(
        named_runs(&bed.hosts, N1),
        [
            "hook:prepare/10-prep.sh",
            "hook:join-node/10-jn.sh",
            "hook:check/10-check.sh"
        ]
    );
    // Across hosts: the bundle reaches the registry host before any payload moves; every
    // prepare before init, init and pre-join before any join, every join before launch.
    let calls = bed.hosts.calls();
    let at = |host: &str, what: &str| {
        calls
            .iter()
            .position(|(h, c)| h == host && format!("{c:?}").contains(what))
            .unwrap_or_else(|| panic!("no {what} on {host}: {:?}", bed.hosts.labels(host)))
    };
    assert!(at(M1, "bundle.run") < at(M2, "master.tar"));
    assert!(at(M1, "bundle.run") < at(N1, "node.tar"));
    for h in [M1, M2, N1] {
        assert!(at(h, "prepare") < at(M1, "init/"));
        assert!(at(h, "hook:check") > at(M1, "launch"));
    }
    assert!(at(M1, "pre-join") < at(M2, "join-master"));
    assert!(at(M1, "pre-join") < at(N1, "join-node"));
    assert!(at(M2, "join-master") < at(M1, "launch"));
    assert!(at(N1, "join-node") < at(M1, "launch"));
    // Masters get every file but hooks/, nodes rootfs/ only.
    assert!(bed.hosts.labels(N1).iter().all(|l| !l.contains("master.tar")));
}

#[test]
fn a_second_install_changes_nothing_that_is_done() {
    let bed = three_hosts();
    bed.install().unwrap();
    let before: Vec<usize> = [M1, M2, N1].iter().map(|h| bed.hosts.count(h)).collect();
    bed.install().unwrap();
    for (h, n) in [M1, M2, N1].iter().zip(before) {
        let again: Vec<String> = bed.hosts.labels(h)[n..].to_vec();
        assert!(
            !again.iter().any(|l| l.starts_with("upload")),
            "{h} uploaded again: {again:?}"
        );
        for once in ["init/", "join-master/", "join-node/", "launch"] {
            assert!(
                !again.iter().any(|l| l.contains(once)),
                "{h} ran {once} again: {again:?}"
            );
        }
    }
    assert_all_done(&bed);
}

/// Every call on every host fails once, as a dead link and (for scripts) as a failing
/// command: the run fails naming that host, the others go as far as they can, and a re-run
/// converges without repeating a once-only step that was done.
#[test]
fn a_failure_at_any_call_on_any_host_is_resumed_by_a_rerun() {
    let clean = three_hosts();
    clean.install().unwrap();
    let mut cases = 0;
    for host in [M1, M2, N1] {
        let labels = clean.hosts.labels(host);
        for (k, label) in labels.iter().enumerate() {
            let modes: &[Failure] = if label.starts_with("run ") {
                &[Failure::Link, Failure::Exit]
            } else {
                &[Failure::Link]
            };
            for &how in modes {
                cases += 1;
                let what = format!("{how:?} at call {k} ({label}) on {host}");
                let bed = three_hosts();
                bed.hosts.fail_at(host, k, how);
                let err = bed.install().expect_err(&what);
                let failed = err
                    .downcast_ref::<HostsFailed>()
                    .unwrap_or_else(|| panic!("{what}: not a host failure: {err:#}"));
                assert!(failed.failed >= 1, "{what}");
                let after_first = bed.steps();
                if failed.changed {
                    let failed_here = after_first[host].iter().any(|(_, s)| *s == StepState::Failed);
                    assert!(
                        failed_here,
                        "{what}: no failed step recorded for {host}: {after_first:?}"
                    );
                }
                // A node failing stops nobody else.
                if host == N1 && failed.changed {
                    for h in [M1, M2] {
                        assert!(
                            after_first[h].iter().all(|(_, s)| *s == StepState::Done),
                            "{what}: {h} did not finish: {after_first:?}"
                        );
                    }
                }
                let mark: Vec<usize> = [M1, M2, N1].iter().map(|h| bed.hosts.count(h)).collect();
                bed.hosts.heal();
                bed.install()
                    .unwrap_or_else(|e| panic!("{what}: the re-run failed: {e:#}"));
                assert_all_done(&bed);
                for (h, n) in [M1, M2, N1].iter().zip(mark) {
                    let again = named_runs_from(&bed.hosts, h, n);
                    for (step, state) in after_first.get(*h).into_iter().flatten() {
                        if *state == StepState::Done && !always(step) {
                            assert!(!again.contains(step), "{what}: {step} ran again on {h}: {again:?}");
                        }
                    }
                }
            }
        }
    }
    assert!(cases > 30, "only {cases} cases: the clean install made too few calls");
}

/// The `# fake:` scripts run on `host` from its `from`-th call on.
fn named_runs_from(hosts: &FakeHosts, host: &str, from: usize) -> Vec<String> {
    hosts.labels(host)[from..]
        .iter()
        .filter_map(|l| l.strip_prefix("run ").map(str::to_string))
        .collect()
}

#[test]
fn add_node_touches_only_the_new_hosts_and_the_first_masters_pre_join() {
    let bed = Bed::new(&[(M1, "master"), (N1, "node")]);
    bed.install().unwrap();
    let before: Vec<usize> = [M1, N1].iter().map(|h| bed.hosts.count(h)).collect();
    bed.set_hosts(&[(M1, "master"), (N1, "node"), (N2, "node")]);
    bed.run(Mode::AddNode, &[]).unwrap();
    assert_eq!(bed.hosts.count(N1), before[1], "add-node touched the installed node");
    let on_m1 = named_runs_from(&bed.hosts, M1, before[0]);
    assert_eq!(
        on_m1
            .iter()
            .filter(|n| *n != "script" && *n != "preflight")
            .collect::<Vec<_>>(),
        ["hook:pre-join/10-token.sh"],
        "add-node on the first master: {on_m1:?}"
    );
    assert!(!bed.hosts.labels(M1)[before[0]..]
        .iter()
        .any(|l| l.starts_with("upload")));
    assert_eq!(
        named_runs(&bed.hosts, N2),
        [
            "hook:prepare/10-prep.sh",
            "hook:join-node/10-jn.sh",
            "hook:check/10-check.sh"
        ]
    );
    assert_all_done(&bed);
    // Nothing left to add.
    let n = bed.hosts.calls().len();
    bed.run(Mode::AddNode, &[]).unwrap();
    assert_eq!(bed.hosts.calls().len(), n);
}

#[test]
fn published_values_reach_later_hooks_and_never_the_log_or_an_error() {
    let bed = Bed::new(&[(M1, "master"), (N1, "node"), (N2, "node")]);
    bed.hosts.answer(
        "# fake: hook:join-node/",
        Answer {
            output: vec![format!("joining with {TOKEN}")],
            publish: String::new(),
        },
    );
    bed.hosts.fail_script(N2, "# fake: hook:join-node/");
    let err = bed.install().unwrap_err();
    assert!(err.downcast_ref::<HostsFailed>().is_some(), "{err:#}");
    // The token went to the join hooks, in the script on stdin.
    let (script, _) = &bed.hosts.scripts(N1, "# fake: hook:join-node/")[0];
    assert!(script.contains(&format!("join-node --token {TOKEN}")), "{script}");
    // Never in the log, nor in the error recorded for the failed host.
    let log = bed.log("install.log");
    assert!(!log.contains(TOKEN), "the token is in the log:\n{log}");
    assert!(log.contains("joining with ***"), "{log}");
    let journal = bed.journal();
    let failed = &journal.hosts[N2].steps["hook:join-node/10-jn.sh"];
    assert_eq!(failed.state, StepState::Failed);
    assert!(
        !failed.detail.contains(TOKEN) && failed.detail.contains("***"),
        "{}",
        failed.detail
    );
    // Not in the environment either: only the DELIVERY_ variables and the bundle's ENV.
    for (_, env) in bed.hosts.scripts(N1, "# fake: hook:join-node/") {
        assert!(env.iter().all(|(_, v)| !v.contains(TOKEN)), "{env:?}");
    }
}

#[test]
fn a_registry_that_does_not_answer_fails_the_install_after_the_hosts_and_a_rerun_recovers() {
    let bed = three_hosts();
    bed.hosts.registry_down();
    let err = bed.install().unwrap_err();
    let failed = err.downcast_ref::<HostsFailed>().expect("a host failure");
    assert!(failed.changed);
    assert_all_done(&bed);
    bed.hosts.heal();
    bed.install().unwrap();
}

#[test]
fn a_host_that_cannot_be_reached_stops_the_install_before_any_change() {
    let bed = three_hosts();
    bed.hosts.fail_at(N1, 0, Failure::Link);
    let err = bed.install().unwrap_err();
    let failed = err.downcast_ref::<HostsFailed>().expect("a host failure");
    assert!(!failed.changed, "{err:#}");
    for h in [M1, M2, N1] {
        let labels = bed.hosts.labels(h);
        assert!(
            labels
                .iter()
                .all(|l| ["connect", "lock", "run preflight"].contains(&l.as_str())),
            "{h} was changed: {labels:?}"
        );
    }
    assert!(bed.hosts.calls().iter().all(|(_, c)| !matches!(c, Call::Upload(_))));
}

/// The calls on `host` from its `from`-th on, labelled.
fn labels_from(hosts: &FakeHosts, host: &str, from: usize) -> Vec<String> {
    hosts.labels(host)[from..].to_vec()
}

fn counts(bed: &Bed, hosts: &[&str]) -> Vec<usize> {
    hosts.iter().map(|h| bed.hosts.count(h)).collect()
}

#[test]
fn reset_runs_the_reset_hooks_then_cleans_every_host_this_master_last_and_install_starts_over() {
    let bed = three_hosts();
    bed.install().unwrap();
    let id = fs::read_to_string(bed.state().join(".installer-id")).unwrap();
    bed.hosts.master_is(M1, id.trim());
    let before = counts(&bed, &[M1, M2, N1]);
    bed.run(Mode::Reset, &[]).unwrap();
    let calls = bed.hosts.calls();
    let clean_at = |host: &str| {
        calls
            .iter()
            .rposition(|(h, c)| h == host && *c == Call::Run("script".into()))
            .unwrap()
    };
    for (h, n) in [M1, M2, N1].iter().zip(&before) {
        let runs: Vec<String> = named_runs_from(&bed.hosts, h, *n)
            .into_iter()
            .filter(|r| r != "preflight" && r != "script")
            .collect();
        assert_eq!(
            runs,
            ["hook:reset/10-undo.sh"],
            "{h}: {:?}",
            labels_from(&bed.hosts, h, *n)
        );
        // Then `clean`, the last script the host gets.
        let (script, env) = bed.hosts.scripts(h, "").pop().expect("scripts");
        assert!(script.contains("registry stop"), "{script}");
        assert!(script.contains("rm -rf \"$R\""), "{script}");
        let keep = env.iter().find(|(k, _)| k == "KEEP").map(|(_, v)| v.as_str());
        // This master's state is not its install root here (--state-dir elsewhere): removed too.
        assert_eq!(keep, Some("0"), "{h}");
    }
    // This master goes last: its install root is the state it works from.
    assert!(clean_at(M1) > clean_at(M2) && clean_at(M1) > clean_at(N1));
    // Its state is gone, the log of the reset kept beside it.
    assert!(!bed.state().exists());
    let kept = fs::read_to_string(bed.dir.path().join("state-reset.log")).unwrap();
    assert!(kept.contains("clean"), "{kept}");
    // The same Clusterfile installs again, from the start.
    let again = counts(&bed, &[M1]);
    bed.install().unwrap();
    assert!(named_runs_from(&bed.hosts, M1, again[0]).contains(&"hook:init/10-init.sh".to_string()));
    assert_all_done(&bed);
}

#[test]
fn reset_of_one_node_forgets_only_it_and_add_node_brings_it_back() {
    let bed = three_hosts();
    bed.install().unwrap();
    let before = counts(&bed, &[M1, M2]);
    bed.run(Mode::Reset, &[N1.to_string()]).unwrap();
    assert_eq!(counts(&bed, &[M1, M2]), before, "reset of {N1} touched another host");
    let journal = bed.journal();
    assert!(!journal.hosts.contains_key(N1), "{N1} is still in the journal");
    assert!(journal.hosts.contains_key(M1) && journal.hosts.contains_key(M2));
    assert!(
        journal.published.contains_key("JOIN_TOKEN"),
        "a node's reset dropped the cluster's values"
    );
    let from = bed.hosts.count(N1);
    bed.run(Mode::AddNode, &[]).unwrap();
    assert_eq!(
        named_runs_from(&bed.hosts, N1, from)
            .into_iter()
            .filter(|r| r.starts_with("hook:"))
            .collect::<Vec<_>>(),
        [
            "hook:prepare/10-prep.sh",
            "hook:join-node/10-jn.sh",
            "hook:check/10-check.sh"
        ]
    );
    assert_all_done(&bed);
}

#[test]
fn reset_refuses_the_first_master_alone_and_a_host_outside_the_clusterfile() {
    let bed = three_hosts();
    bed.install().unwrap();
    let n = bed.hosts.calls().len();
    let err = bed.run(Mode::Reset, &[M1.to_string()]).unwrap_err();
    assert!(format!("{err:#}").contains("first master"), "{err:#}");
    let err = bed.run(Mode::Reset, &["10.9.9.9".to_string()]).unwrap_err();
    assert!(format!("{err:#}").contains("not a host of the Clusterfile"), "{err:#}");
    assert_eq!(bed.hosts.calls().len(), n, "a refused reset contacted a host");
}

#[test]
fn a_reset_that_fails_on_a_host_keeps_it_in_the_journal_and_a_rerun_finishes_it() {
    let bed = three_hosts();
    bed.install().unwrap();
    bed.hosts.fail_script(N1, "registry stop");
    let err = bed.run(Mode::Reset, &[N1.to_string()]).unwrap_err();
    assert!(err.downcast_ref::<HostsFailed>().is_some(), "{err:#}");
    let journal = bed.journal();
    assert_eq!(journal.hosts[N1].steps["clean"].state, StepState::Failed);
    assert_eq!(journal.hosts[N1].steps["hook:reset/10-undo.sh"].state, StepState::Done);
    bed.hosts.heal();
    let from = bed.hosts.count(N1);
    bed.run(Mode::Reset, &[N1.to_string()]).unwrap();
    let again = named_runs_from(&bed.hosts, N1, from);
    assert!(
        !again.contains(&"hook:reset/10-undo.sh".to_string()),
        "the reset hook ran twice: {again:?}"
    );
    assert!(!bed.journal().hosts.contains_key(N1));
}

#[test]
fn reset_without_a_journal_is_not_stopped_by_the_ports_the_install_holds() {
    let bed = three_hosts();
    bed.hosts.busy_port(M1, 6443);
    // Install checks the bundle's ports on new hosts...
    let err = bed.install().unwrap_err();
    let failed = err.downcast_ref::<HostsFailed>().expect("a preflight failure");
    assert!(!failed.changed, "{err:#}");
    // ...reset takes them away: a cluster whose journal was lost can still be reset.
    bed.run(Mode::Reset, &[]).unwrap();
    assert!(!bed.state().exists());
}

#[test]
fn reset_unpacks_the_bundle_for_its_hooks_and_makes_nothing_an_install_needs() {
    let bed = three_hosts();
    bed.run(Mode::Reset, &[N1.to_string()]).unwrap();
    assert!(bed.state().join("bundle/hooks/reset/10-undo.sh").is_file());
    // No payload tars, no copy of the stub for the hosts.
    assert!(
        !bed.state().join("payload").exists(),
        "reset made an install's payloads"
    );
}
