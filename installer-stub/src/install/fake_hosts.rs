//! A recording fake of the hosts, for unit tests of the engine without sshd: every call on
//! every host is recorded in order; uploaded files are remembered by digest (so a re-run finds
//! them, as on a real host); a host's scripts answer with what the test set; failures are
//! injected per host at the n-th call, or whenever a script holds some text. Scripts are not
//! run: a test says what they print and publish.
//!
//! A script is named in the record by its first `# fake: NAME` line (tests put one in every
//! hook they write), else `preflight` or `script`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{anyhow, bail, Result};

use super::preflight;
use crate::clusterfile::Host;
use crate::remote::{Connector, Remote};

/// One call on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Call {
    Connect,
    Lock,
    /// A script, by its `# fake:` name.
    Run(String),
    Upload(String),
    Sha256(String),
}

impl Call {
    fn label(&self) -> String {
        match self {
            Call::Connect => "connect".into(),
            Call::Lock => "lock".into(),
            Call::Run(name) => format!("run {name}"),
            Call::Upload(dest) => format!("upload {dest}"),
            Call::Sha256(path) => format!("sha256 {path}"),
        }
    }
}

/// How an injected failure shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The call itself fails, as when the link dies.
    Link,
    /// A script exits with status 1 (other calls fail as with [`Failure::Link`]).
    Exit,
}

/// What a script whose text holds some marker does.
#[derive(Debug, Clone, Default)]
pub(crate) struct Answer {
    /// Printed, line by line.
    pub output: Vec<String>,
    /// `KEY=VALUE` lines left in `$DELIVERY_PUBLISH`.
    pub publish: String,
}

/// A script as a host received it.
struct Sent {
    host: String,
    script: String,
    env: Vec<(String, String)>,
}

#[derive(Default)]
struct World {
    calls: Vec<(String, Call)>,
    /// (host, path) -> SHA-256 of what was uploaded there.
    files: BTreeMap<(String, String), String>,
    /// Per host: how many calls were made.
    counts: BTreeMap<String, usize>,
    /// Per host: the call number that fails, and how.
    fail_at: BTreeMap<String, (usize, Failure)>,
    /// (host, marker): scripts holding the marker exit 1 on that host.
    fail_scripts: BTreeSet<(String, String)>,
    answers: Vec<(String, Answer)>,
    /// Per host: what its last hook published, until read.
    published: BTreeMap<String, String>,
    /// Scripts as sent, in order.
    scripts: Vec<Sent>,
    registry_down: bool,
    /// Per host: the installer id its install root holds (the master's own, on the master).
    installer_ids: BTreeMap<String, String>,
    /// Per host: ports something listens on.
    busy_ports: BTreeMap<String, Vec<u16>>,
}

/// The hosts of a test and everything done to them. Clones share the same hosts.
#[derive(Clone, Default)]
pub(crate) struct FakeHosts {
    world: Arc<Mutex<World>>,
}

impl FakeHosts {
    fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().expect("no panics while locked")
    }

    /// The `n`-th call (from 0, counting from now) on `host` fails.
    pub fn fail_at(&self, host: &str, n: usize, how: Failure) {
        let mut w = self.world();
        let base = w.counts.get(host).copied().unwrap_or(0);
        w.fail_at.insert(host.to_string(), (base + n, how));
    }

    /// Every script holding `marker` exits 1 on `host`.
    pub fn fail_script(&self, host: &str, marker: &str) {
        self.world().fail_scripts.insert((host.to_string(), marker.to_string()));
    }

    /// Takes back every injected failure.
    pub fn heal(&self) {
        let mut w = self.world();
        w.fail_at.clear();
        w.fail_scripts.clear();
        w.registry_down = false;
    }

    /// Scripts holding `marker` print and publish `answer`, on every host.
    pub fn answer(&self, marker: &str, answer: Answer) {
        self.world().answers.push((marker.to_string(), answer));
    }

    /// `host` is the master itself: its install root holds the master's installer id `id`.
    pub fn master_is(&self, host: &str, id: &str) {
        self.world().installer_ids.insert(host.to_string(), id.to_string());
    }

    /// Something listens on `port` on `host`.
    pub fn busy_port(&self, host: &str, port: u16) {
        self.world().busy_ports.entry(host.to_string()).or_default().push(port);
    }

    pub fn registry_down(&self) {
        self.world().registry_down = true;
    }

    /// Every call so far, as `host: call` lines.
    pub fn calls(&self) -> Vec<(String, Call)> {
        self.world().calls.clone()
    }

    /// The calls on `host`, labelled (`run hook-init`, `upload /var/...`).
    pub fn labels(&self, host: &str) -> Vec<String> {
        self.world()
            .calls
            .iter()
            .filter(|(h, _)| h == host)
            .map(|(_, c)| c.label())
            .collect()
    }

    /// How many calls have been made on `host`.
    pub fn count(&self, host: &str) -> usize {
        self.world().counts.get(host).copied().unwrap_or(0)
    }

    /// Every script sent to `host` whose text holds `marker`, with its environment.
    pub fn scripts(&self, host: &str, marker: &str) -> Vec<(String, Vec<(String, String)>)> {
        self.world()
            .scripts
            .iter()
            .filter(|s| s.host == host && s.script.contains(marker))
            .map(|s| (s.script.clone(), s.env.clone()))
            .collect()
    }

    /// Records a call on `host`; the injected failure, if this is the one.
    fn call(&self, host: &str, call: Call) -> Option<Failure> {
        let mut w = self.world();
        let n = w.counts.get(host).copied().unwrap_or(0);
        w.counts.insert(host.to_string(), n + 1);
        w.calls.push((host.to_string(), call));
        match w.fail_at.get(host) {
            Some(&(at, how)) if at == n => Some(how),
            _ => None,
        }
    }
}

fn name_of(script: &str) -> String {
    if let Some(name) = script.lines().find_map(|l| l.trim().strip_prefix("# fake: ")) {
        return name.trim().to_string();
    }
    if script == preflight::SCRIPT {
        return "preflight".into();
    }
    "script".into()
}

impl Connector for FakeHosts {
    fn connect(&self, host: &Host) -> Result<Box<dyn Remote>> {
        let address = host.address.to_string();
        if self.call(&address, Call::Connect).is_some() {
            bail!("failed to connect to {address}:22: connection refused (injected)");
        }
        Ok(Box::new(FakeRemote {
            hosts: self.clone(),
            address,
        }))
    }

    fn registry_answers(&self, endpoint: &str, images: &[String]) -> Result<usize> {
        if self.world().registry_down {
            bail!("the registry at {endpoint} does not answer (injected)");
        }
        Ok(images.len())
    }
}

struct FakeRemote {
    hosts: FakeHosts,
    address: String,
}

impl FakeRemote {
    fn link_died(&self) -> anyhow::Error {
        anyhow!("the connection to {} was lost (injected)", self.address)
    }
}

impl Remote for FakeRemote {
    fn run(&mut self, script: &str, env: &[(&str, &str)], on_line: &mut dyn FnMut(&str)) -> Result<(i32, String)> {
        let name = name_of(script);
        let injected = self.hosts.call(&self.address, Call::Run(name.clone()));
        let mut w = self.hosts.world();
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        w.scripts.push(Sent {
            host: self.address.clone(),
            script: script.to_string(),
            env,
        });
        match injected {
            Some(Failure::Link) => return Err(self.link_died()),
            Some(Failure::Exit) => return Ok((1, "injected failure".into())),
            None => {}
        }
        let canned = if script == preflight::SCRIPT {
            let id = w.installer_ids.get(&self.address).cloned().unwrap_or_default();
            let mut out = facts(&self.address, &id);
            for port in w.busy_ports.get(&self.address).into_iter().flatten() {
                out.push_str(&format!("port_busy={port}\n"));
            }
            Some(out)
        } else if script.starts_with("cat \"$DELIVERY_PUBLISH\"") {
            Some(w.published.remove(&self.address).unwrap_or_default())
        } else {
            None
        };
        if let Some(out) = canned {
            drop(w);
            out.lines().for_each(&mut *on_line);
            return Ok((0, out));
        }
        let failing = w
            .fail_scripts
            .iter()
            .any(|(h, m)| *h == self.address && script.contains(m.as_str()));
        let answers: Vec<Answer> = w
            .answers
            .iter()
            .filter(|(m, _)| script.contains(m.as_str()))
            .map(|(_, a)| a.clone())
            .collect();
        let mut tail = String::new();
        for a in &answers {
            for line in &a.output {
                tail.push_str(line);
                tail.push('\n');
            }
            w.published
                .entry(self.address.clone())
                .or_default()
                .push_str(&a.publish);
        }
        drop(w);
        for line in tail.lines() {
            on_line(line);
        }
        if failing {
            tail.push_str(&format!("{name} failed (injected)\n"));
            return Ok((1, tail));
        }
        Ok((0, tail))
    }

    fn upload(
        &mut self,
        src: &mut dyn Read,
        len: u64,
        dest: &str,
        sha256_hex: &str,
        progress: &mut dyn FnMut(u64),
    ) -> Result<()> {
        if self.hosts.call(&self.address, Call::Upload(dest.to_string())).is_some() {
            return Err(self.link_died());
        }
        let copied = std::io::copy(src, &mut std::io::sink())?;
        if copied != len {
            bail!("upload of {dest}: {copied} bytes read, {len} announced");
        }
        progress(len);
        self.hosts
            .world()
            .files
            .insert((self.address.clone(), dest.to_string()), sha256_hex.to_string());
        Ok(())
    }

    fn sha256(&mut self, path: &str) -> Result<Option<String>> {
        if self.hosts.call(&self.address, Call::Sha256(path.to_string())).is_some() {
            return Err(self.link_died());
        }
        Ok(self
            .hosts
            .world()
            .files
            .get(&(self.address.clone(), path.to_string()))
            .cloned())
    }

    fn lock(&mut self, _dir: &str, _holder: &str, _run: &str) -> Result<()> {
        if self.hosts.call(&self.address, Call::Lock).is_some() {
            bail!(
                "the install root of {} is locked by another run (injected)",
                self.address
            );
        }
        Ok(())
    }
}

/// What the preflight script prints on a healthy host named after its address.
fn facts(address: &str, installer_id: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    format!(
        "uid=0\nhostname=host-{}\narch={}\nos=debian 12\nfree_kib=104857600\ninstaller_id={installer_id}\ntime={now}\n",
        address.replace('.', "-"),
        preflight::machine_arch()
    )
}
