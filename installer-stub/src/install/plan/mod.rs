//! The install plan, computed as data before anything is done: which hosts, which steps in which
//! order, which files go where. `install --dry-run` prints it (`--json` as one JSON line), and
//! execution walks it; the journal records its steps by name.
//!
//! Phases, in order:
//! 1. `registry`: the bundle file goes to the registry host (image blobs stay inside it) and its
//!    registry starts there as a service.
//! 2. `copy`: every master and node gets its payload (`master.tar`: every file of the bundle but
//!    `hooks/`; `node.tar`: `rootfs/` only), checked by digest and unpacked into
//!    `<root>/files`, plus containerd mirror configuration in `<root>/certs.d`.
//!    Every such host also gets the stub itself at `<root>/bin/delivery`.
//!    The bundle's kind may add steps after `copy` ([`crate::kinds::BundleKind::steps`]).
//! 3. `prepare` hooks on every master and node, in parallel, right after its copy.
//! 4. `init` hooks on the first master; `pre-join` hooks there too, before any join (fresh join
//!    credentials: `add-node` runs them on the installed first master and nothing else there);
//!    5. `join-master` hooks on the other masters, one at a
//!    time; 6. `join-node` hooks on hosts with only the node role, in parallel.
//! 7. `launch`: the Kubefile's LAUNCH or CMD on the first master.
//! 8. `check` hooks on every host, and the registry answering for every image.
//!
//! `reset` plans per host its `reset` hooks, then `clean` ([`super::engine`]'s reset). How the
//! plan is printed for people is in [`render`].

mod render;

use std::collections::{BTreeMap, BTreeSet};

use bundle_format::manifest::{Entry, Launch, Manifest};
use bundle_format::reference::Reference;
use terminal::json_lines;

use crate::clusterfile::{endpoint_host, Clusterfile, Host, Role};
use crate::kinds::{self, BundleKind};
use crate::remote::ssh::shell_quote;

/// Where everything lives on a host (and on the master) for one cluster.
pub fn remote_root(cluster: &str) -> String {
    format!("/var/lib/delivery/{cluster}")
}

/// Hook phases, in the order they run.
pub const HOOK_PHASES: [&str; 7] = [
    "prepare",
    "init",
    "pre-join",
    "join-master",
    "join-node",
    "check",
    "reset",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every master and node: `install`.
    Install,
    /// Only hosts the journal does not know: `add-node`.
    AddNode,
    /// The bundle taken off hosts: `reset`.
    Reset,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub mode: Mode,
    pub cluster: String,
    pub bundle: BundleSummary,
    /// `/var/lib/delivery/<cluster>` on every host, the master included.
    pub root: String,
    pub registry: RegistryPlan,
    pub payloads: Vec<Payload>,
    pub hooks: Vec<Hook>,
    /// Shell commands the first master runs at the end (from LAUNCH or CMD).
    pub launch: Vec<String>,
    /// For every kind the installer knows, whether the bundle is of it (JSON: `"<kind>": true`).
    pub kinds: BTreeMap<&'static str, bool>,
    /// The steps the bundle's kind adds after `copy`, each with what it does.
    pub kind_steps: Vec<(&'static str, &'static str)>,
    pub hosts: Vec<HostPlan>,
}

#[derive(Debug, Clone)]
pub struct BundleSummary {
    pub name: String,
    pub version: String,
    pub id: String,
    pub file_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct RegistryPlan {
    pub host: String,
    pub endpoint: String,
    /// Upstream registries the bundle carries images of: each gets a containerd mirror entry.
    pub domains: Vec<String>,
    pub images: usize,
    /// Where the bundle file goes on the registry host.
    pub bundle_path: String,
}

/// One tar of bundle files, made on the master, unpacked into `<root>/files` on a host.
#[derive(Debug, Clone)]
pub struct Payload {
    /// `master` or `node`.
    pub name: String,
    /// Entry path prefixes it holds (`""` = every entry but hooks).
    pub prefixes: Vec<String>,
    pub files: usize,
    pub bytes: u64,
}

#[derive(Debug, Clone)]
pub struct Hook {
    pub phase: String,
    /// Entry path in the bundle: `hooks/prepare/10-containerd.sh`.
    pub path: String,
}

impl Hook {
    /// The journal's step name.
    pub fn step(&self) -> String {
        format!("hook:{}", self.path.trim_start_matches("hooks/"))
    }
}

#[derive(Debug, Clone)]
pub struct HostPlan {
    pub address: String,
    pub roles: Vec<String>,
    pub payload: Option<String>,
    /// Step names in the order they run on this host.
    pub steps: Vec<String>,
}

pub fn role_names(host: &Host) -> Vec<String> {
    host.roles
        .iter()
        .map(|r| match r {
            Role::Master => "master",
            Role::Node => "node",
            Role::Registry => "registry",
        })
        .map(String::from)
        .collect()
}

/// Whether `phase` hooks run on this host: `init` on the first master, `join-master` on other
/// masters, `join-node` on hosts with the node role but not the master role.
pub fn hook_runs_on(phase: &str, host: &Host, first_master: bool) -> bool {
    let master = host.has_role(Role::Master);
    let node = host.has_role(Role::Node);
    match phase {
        "prepare" | "check" | "reset" => master || node,
        "init" | "pre-join" => first_master,
        "join-master" => master && !first_master,
        "join-node" => node && !master,
        _ => false,
    }
}

/// A bundle file under `hooks/` that is not in a hook phase directory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    #[error(
        "bundle file `{path}` is directly under hooks/: hooks go in hooks/<phase>/, phases: {}",
        HOOK_PHASES.join(", ")
    )]
    NoPhase { path: String },
    #[error(
        "bundle file `{path}` is not in a hook phase directory: hooks go in hooks/<phase>/NAME, phases: {}",
        HOOK_PHASES.join(", ")
    )]
    NotAPhase { path: String },
}

/// The hooks a bundle carries: `hooks/<phase>/<name>`, by phase then name. Other files under
/// `hooks/` are an error, so a typo in a phase name is not silently ignored.
pub fn hooks(manifest: &Manifest) -> Result<Vec<Hook>, HookError> {
    let mut hooks = Vec::new();
    for e in &manifest.entries {
        let Entry::File { path, .. } = e else { continue };
        let Some(rest) = path.strip_prefix("hooks/") else {
            continue;
        };
        let Some((phase, name)) = rest.split_once('/') else {
            return Err(HookError::NoPhase { path: path.clone() });
        };
        if !HOOK_PHASES.contains(&phase) || name.contains('/') {
            return Err(HookError::NotAPhase { path: path.clone() });
        }
        hooks.push(Hook {
            phase: phase.to_string(),
            path: path.clone(),
        });
    }
    hooks.sort_by_key(|h| (HOOK_PHASES.iter().position(|p| *p == h.phase), h.path.clone()));
    Ok(hooks)
}

/// The shell commands of LAUNCH or CMD, one per app or command. An app runs its APPCMDS in
/// its directory when it has them; otherwise a chart is installed with helm, scripts (`*.sh`)
/// are run with bash and anything else is applied with kubectl, as sealer does. APPENV is
/// exported for the app's commands only.
pub fn launch_commands(manifest: &Manifest) -> Vec<String> {
    match &manifest.bundle.launch {
        None => Vec::new(),
        Some(Launch::Cmds(cmds)) => cmds.clone(),
        Some(Launch::Apps(apps)) => apps.iter().map(|name| app_command(manifest, name)).collect(),
    }
}

fn app_command(manifest: &Manifest, name: &str) -> String {
    let dir = format!("application/apps/{name}");
    let app = manifest.bundle.apps.iter().find(|a| a.name == name);
    let mut script = String::new();
    for (k, v) in app.map(|a| &a.env).into_iter().flatten() {
        script.push_str(&format!("export {k}={}\n", shell_quote(v)));
    }
    let files: Vec<&str> = match app {
        Some(a) => a.paths.iter().map(String::as_str).collect(),
        None => Vec::new(),
    };
    let chart = manifest.entries.iter().any(|e| e.path() == format!("{dir}/Chart.yaml"));
    match app {
        Some(a) if !a.cmds.is_empty() => {
            script.push_str(&format!("cd {}\n", shell_quote(&dir)));
            script.push_str(&a.cmds.join("\n"));
        }
        _ if chart => {
            // Release names and namespaces are DNS labels: sealer's camelCase names are lowered.
            let release = dns_label(name);
            script.push_str(&format!(
                "helm upgrade --install {release} {dir} --namespace {release} --create-namespace --wait"
            ));
        }
        _ if !files.is_empty() && files.iter().all(|f| f.ends_with(".sh")) => {
            let runs: Vec<String> = files.iter().map(|f| format!("bash {}", shell_quote(f))).collect();
            script.push_str(&runs.join("\n"));
        }
        _ => script.push_str(&format!("kubectl apply -f {dir}")),
    }
    script
}

/// `name` as a DNS label (release names, namespaces): lowercase, `_` and `.` as `-`.
fn dns_label(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '_' | '.' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

fn payload(manifest: &Manifest, name: &str, prefixes: &[&str]) -> Payload {
    let (mut files, mut bytes) = (0, 0);
    for e in &manifest.entries {
        if in_payload(e.path(), prefixes) {
            if let Entry::File { size, .. } = e {
                files += 1;
                bytes += size;
            }
        }
    }
    Payload {
        name: name.to_string(),
        prefixes: prefixes.iter().map(|p| p.to_string()).collect(),
        files,
        bytes,
    }
}

/// Whether an entry goes into a payload with these prefixes (`""` = all but hooks).
pub fn in_payload(path: &str, prefixes: &[impl AsRef<str>]) -> bool {
    if path == "hooks" || path.starts_with("hooks/") {
        return false;
    }
    prefixes.iter().any(|p| {
        let p = p.as_ref();
        p.is_empty() || path == p.trim_end_matches('/') || path.starts_with(p)
    })
}

/// Computes the plan for these target hosts (all of them for `install`), for a bundle of `kind`.
pub fn make(
    kind: &dyn BundleKind,
    mode: Mode,
    cluster: &Clusterfile,
    targets: &[&Host],
    manifest: &Manifest,
    id: String,
    file_bytes: u64,
) -> Result<Plan, HookError> {
    let root = remote_root(&cluster.name);
    let hooks = hooks(manifest)?;
    let domains: BTreeSet<String> = manifest
        .images
        .iter()
        .filter_map(|i| i.name.parse::<Reference>().ok().map(|r| r.registry))
        .collect();
    let registry_host = cluster.registry_host();
    let payloads = vec![
        payload(manifest, "master", &[""]),
        payload(manifest, "node", &["rootfs/"]),
    ];
    let launch = launch_commands(manifest);
    let first = cluster.first_master().address.clone();
    let hosts = targets
        .iter()
        .map(|h| {
            let is_first = h.address == first;
            if mode == Mode::Reset {
                // The bundle's reset hooks undo what its hooks set up, then `clean` removes
                // what the installer put there.
                let mut steps: Vec<String> = hooks
                    .iter()
                    .filter(|k| k.phase == "reset" && hook_runs_on("reset", h, is_first))
                    .map(Hook::step)
                    .collect();
                steps.push("clean".to_string());
                return HostPlan {
                    address: h.address.to_string(),
                    roles: role_names(h),
                    payload: None,
                    steps,
                };
            }
            if mode == Mode::AddNode && is_first {
                // Installed already (add-node requires it): only fresh join credentials.
                return HostPlan {
                    address: h.address.to_string(),
                    roles: role_names(h),
                    payload: None,
                    steps: hooks.iter().filter(|k| k.phase == "pre-join").map(Hook::step).collect(),
                };
            }
            let mut steps = Vec::new();
            if mode == Mode::Install && h.address == registry_host.address {
                steps.push("registry".to_string());
            }
            let payload = if h.has_role(Role::Master) {
                Some("master".to_string())
            } else if h.has_role(Role::Node) {
                Some("node".to_string())
            } else {
                None
            };
            if payload.is_some() {
                steps.push("copy".to_string());
            }
            steps.extend(kind.steps(h).into_iter().map(String::from));
            for hook in &hooks {
                if hook.phase == "check" || hook.phase == "reset" || !hook_runs_on(&hook.phase, h, is_first) {
                    continue;
                }
                if mode == Mode::AddNode && hook.phase == "init" {
                    continue;
                }
                steps.push(hook.step());
            }
            if mode == Mode::Install && is_first && !launch.is_empty() {
                steps.push("launch".to_string());
            }
            steps.push("check".to_string());
            HostPlan {
                address: h.address.to_string(),
                roles: role_names(h),
                payload,
                steps,
            }
        })
        .collect();
    Ok(Plan {
        mode,
        cluster: cluster.name.clone(),
        bundle: BundleSummary {
            name: manifest.bundle.name.clone(),
            version: manifest.bundle.version.clone(),
            id,
            file_bytes,
        },
        registry: RegistryPlan {
            host: registry_host.address.to_string(),
            endpoint: format!(
                "{}:{}",
                endpoint_host(&cluster.registry.host.to_string()),
                cluster.registry.port
            ),
            domains: domains.into_iter().collect(),
            images: manifest.images.len(),
            bundle_path: format!("{root}/bundle.run"),
        },
        root,
        payloads,
        hooks,
        launch,
        kinds: kinds::KNOWN.iter().map(|k| (*k, *k == kind.name())).collect(),
        kind_steps: kind_steps(kind, cluster),
        hosts,
    })
}

/// The steps `kind` adds on any host of the cluster, once each, in order, with what they do.
fn kind_steps(kind: &dyn BundleKind, cluster: &Clusterfile) -> Vec<(&'static str, &'static str)> {
    let mut steps: Vec<(&'static str, &'static str)> = Vec::new();
    for step in cluster.hosts.iter().flat_map(|h| kind.steps(h)) {
        if !steps.iter().any(|(s, _)| *s == step) {
            steps.push((step, kind.describe(step)));
        }
    }
    steps
}

impl Plan {
    /// The plan as `install --dry-run --json` prints it.
    pub fn json(&self) -> json_lines::Plan<'_> {
        let b = &self.bundle;
        let r = &self.registry;
        json_lines::Plan {
            mode: match self.mode {
                Mode::Install => json_lines::PlanMode::Install,
                Mode::AddNode => json_lines::PlanMode::AddNode,
                Mode::Reset => json_lines::PlanMode::Reset,
            },
            cluster: &self.cluster,
            bundle: json_lines::PlanBundle {
                name: &b.name,
                version: &b.version,
                id: &b.id,
                file_bytes: b.file_bytes,
            },
            root: &self.root,
            registry: json_lines::PlanRegistry {
                host: &r.host,
                endpoint: &r.endpoint,
                domains: &r.domains,
                images: r.images,
                bundle_path: &r.bundle_path,
            },
            payloads: self
                .payloads
                .iter()
                .map(|p| json_lines::PlanPayload {
                    name: &p.name,
                    prefixes: &p.prefixes,
                    files: p.files,
                    bytes: p.bytes,
                })
                .collect(),
            hooks: self
                .hooks
                .iter()
                .map(|h| json_lines::PlanHook {
                    phase: &h.phase,
                    path: &h.path,
                })
                .collect(),
            launch: &self.launch,
            kinds: &self.kinds,
            hosts: self
                .hosts
                .iter()
                .map(|h| json_lines::PlanHost {
                    address: &h.address,
                    roles: &h.roles,
                    payload: h.payload.as_deref(),
                    steps: &h.steps,
                })
                .collect(),
        }
    }

    pub fn payload(&self, name: &str) -> &Payload {
        self.payloads
            .iter()
            .find(|p| p.name == name)
            .expect("payload names come from the plan")
    }

    pub fn hooks_of<'p>(&'p self, phase: &'p str) -> impl Iterator<Item = &'p Hook> + 'p {
        self.hooks.iter().filter(move |h| h.phase == phase)
    }
}

/// `sha256:0123456789ab` for people.
pub fn short(id: &str) -> &str {
    &id[..id.len().min(19)]
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bundle_format::manifest::Image;
    use std::path::Path;

    pub(crate) fn manifest(entries: &[&str], launch: Option<Launch>) -> Manifest {
        let mut m: Manifest = serde_json::from_str(
            r#"{"format_version":1,"bundle":{"name":"app","version":"1.0","created":"2026-01-01T00:00:00Z","labels":{},"env":{},"apps":[],"launch":null,"bases":[]},
            "stub":{"sha256":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":0},"frames":[],"blobs":[],"images":[],"entries":[]}"#,
        )
        .unwrap_or_else(|e| panic!("test manifest: {e}"));
        m.bundle.launch = launch;
        for p in entries {
            m.entries.push(Entry::File {
                path: p.to_string(),
                mode: 0o644,
                size: 10,
                sha256: bundle_format::Digest::of(p.as_bytes()),
                data: bundle_format::manifest::Data::Stream(0),
            });
        }
        m.images.push(Image {
            name: "docker.io/library/busybox:1.36".into(),
            digest: bundle_format::Digest::of(b"x"),
            media_type: "application/vnd.oci.image.index.v1+json".into(),
            size: 1,
            platforms: vec![],
            source: String::new(),
        });
        m
    }

    pub(crate) fn cluster(text: &str) -> Clusterfile {
        crate::clusterfile::parse(Path::new("cluster.toml"), text).unwrap_or_else(|e| panic!("{e}"))
    }

    pub(crate) const THREE: &str = r#"
name = "prod"
[[hosts]]
addresses = ["10.0.0.1"]
roles = ["master", "registry"]
[[hosts]]
addresses = ["10.0.0.2"]
roles = ["master"]
[[hosts]]
addresses = ["10.0.0.3-4"]
roles = ["node"]
"#;

    #[test]
    fn steps_follow_roles_and_phases() {
        let c = cluster(THREE);
        let m = manifest(
            &[
                "hooks/check/10-ok.sh",
                "hooks/init/10-init.sh",
                "hooks/join-master/10-jm.sh",
                "hooks/join-node/10-jn.sh",
                "hooks/prepare/10-a.sh",
                "hooks/prepare/20-b.sh",
                "rootfs/bin/x",
            ],
            Some(Launch::Cmds(vec!["echo hi".into()])),
        );
        let targets: Vec<&Host> = c.hosts.iter().collect();
        let p = make(
            &*kinds::detect(&m),
            Mode::Install,
            &c,
            &targets,
            &m,
            "sha256:ab".into(),
            100,
        )
        .unwrap();
        let steps: Vec<String> = p.hosts.iter().map(|h| h.steps.join(" ")).collect();
        assert_eq!(
            steps,
            [
                "registry copy hook:prepare/10-a.sh hook:prepare/20-b.sh hook:init/10-init.sh launch check",
                "copy hook:prepare/10-a.sh hook:prepare/20-b.sh hook:join-master/10-jm.sh check",
                "copy hook:prepare/10-a.sh hook:prepare/20-b.sh hook:join-node/10-jn.sh check",
                "copy hook:prepare/10-a.sh hook:prepare/20-b.sh hook:join-node/10-jn.sh check",
            ]
        );
        assert_eq!(p.hosts[0].payload.as_deref(), Some("master"));
        assert_eq!(p.hosts[2].payload.as_deref(), Some("node"));
        assert_eq!(p.payload("node").files, 1);
        assert_eq!(p.payload("master").files, 1, "hooks are not copied");
        assert_eq!(p.registry.endpoint, "10.0.0.1:5000");
        assert_eq!(p.registry.domains, ["docker.io"]);
        let text = p.render();
        assert!(text.contains("join-master  on 10.0.0.2 (one at a time)"), "{text}");
        assert!(text.contains("launch       on 10.0.0.1: echo hi"), "{text}");
    }

    #[test]
    fn add_node_skips_init_registry_and_launch() {
        let c = cluster(THREE);
        let m = manifest(
            &["hooks/init/1.sh", "hooks/join-node/1.sh"],
            Some(Launch::Cmds(vec!["x".into()])),
        );
        let targets: Vec<&Host> = c.hosts.iter().skip(3).collect();
        let p = make(
            &*kinds::detect(&m),
            Mode::AddNode,
            &c,
            &targets,
            &m,
            "sha256:ab".into(),
            1,
        )
        .unwrap();
        assert_eq!(p.hosts.len(), 1);
        assert_eq!(p.hosts[0].steps, ["copy", "hook:join-node/1.sh", "check"]);
    }

    #[test]
    fn reset_runs_the_reset_hooks_then_clean_and_install_never_runs_them() {
        let c = cluster(THREE);
        let m = manifest(&["hooks/init/1.sh", "hooks/reset/1.sh", "hooks/reset/2.sh"], None);
        let all: Vec<&Host> = c.hosts.iter().collect();
        let kind = kinds::detect(&m);
        let p = make(&*kind, Mode::Reset, &c, &all, &m, "sha256:ab".into(), 1).unwrap();
        for h in &p.hosts {
            assert_eq!(
                h.steps,
                ["hook:reset/1.sh", "hook:reset/2.sh", "clean"],
                "{}",
                h.address
            );
            assert_eq!(h.payload, None);
        }
        let text = p.render();
        assert!(text.starts_with("Plan: reset app 1.0"), "{text}");
        assert!(
            text.contains("  clean        on 10.0.0.1, 10.0.0.2, 10.0.0.3, 10.0.0.4:"),
            "{text}"
        );
        assert!(!text.contains("Files") && !text.contains("  check "), "{text}");
        let install = make(&*kind, Mode::Install, &c, &all, &m, "sha256:ab".into(), 1).unwrap();
        for h in &install.hosts {
            assert!(
                !h.steps.iter().any(|s| s.starts_with("hook:reset/") || s == "clean"),
                "{h:?}"
            );
        }
    }

    #[test]
    fn pre_join_runs_on_the_first_master_before_joins_and_alone_in_add_node() {
        let c = cluster(THREE);
        let m = manifest(
            &["hooks/init/1.sh", "hooks/pre-join/1.sh", "hooks/join-node/1.sh"],
            None,
        );
        let all: Vec<&Host> = c.hosts.iter().collect();
        let p = make(&*kinds::detect(&m), Mode::Install, &c, &all, &m, "sha256:ab".into(), 1).unwrap();
        assert_eq!(
            p.hosts[0].steps,
            ["registry", "copy", "hook:init/1.sh", "hook:pre-join/1.sh", "check"]
        );
        let targets: Vec<&Host> = [c.first_master()].into_iter().chain(c.hosts.iter().skip(3)).collect();
        let p = make(
            &*kinds::detect(&m),
            Mode::AddNode,
            &c,
            &targets,
            &m,
            "sha256:ab".into(),
            1,
        )
        .unwrap();
        assert_eq!(p.hosts[0].steps, ["hook:pre-join/1.sh"]);
        assert!(p.hosts[0].payload.is_none());
        assert_eq!(p.hosts[1].steps, ["copy", "hook:join-node/1.sh", "check"]);
    }

    #[test]
    fn misplaced_hooks_are_errors() {
        let c = cluster(THREE);
        let targets: Vec<&Host> = c.hosts.iter().collect();
        for bad in ["hooks/x.sh", "hooks/preapre/1.sh", "hooks/init/sub/1.sh"] {
            let m = manifest(&[bad], None);
            let e = make(&*kinds::detect(&m), Mode::Install, &c, &targets, &m, "i".into(), 1)
                .unwrap_err()
                .to_string();
            assert!(e.contains(bad) && e.contains("join-master"), "{e}");
        }
    }

    #[test]
    fn launch_apps_become_kubectl_or_helm() {
        let m = manifest(
            &["application/apps/web/Chart.yaml", "application/apps/db/db.yaml"],
            Some(Launch::Apps(vec!["db".into(), "web".into()])),
        );
        assert_eq!(
            launch_commands(&m),
            [
                "kubectl apply -f application/apps/db",
                "helm upgrade --install web application/apps/web --namespace web --create-namespace --wait"
            ]
        );
    }

    #[test]
    fn apps_launch_as_sealer_launches_them() {
        let mut m = manifest(
            &[
                "application/apps/mixed/install.sh",
                "application/apps/mixed/app.yaml",
                "application/apps/shell/a.sh",
                "application/apps/shell/b.sh",
                "application/apps/businessApp/Chart.yaml",
            ],
            Some(Launch::Apps(vec!["mixed".into(), "shell".into(), "businessApp".into()])),
        );
        let app = |name: &str, paths: &[&str]| bundle_format::manifest::App {
            name: name.into(),
            paths: paths.iter().map(|p| p.to_string()).collect(),
            cmds: Vec::new(),
            env: Default::default(),
        };
        let mut mixed = app(
            "mixed",
            &["application/apps/mixed/install.sh", "application/apps/mixed/app.yaml"],
        );
        mixed.cmds = vec!["kubectl apply -f app.yaml".into(), "echo it's done".into()];
        mixed.env.insert("MODE".into(), "a b'c".into());
        m.bundle.apps = vec![
            mixed,
            app("shell", &["application/apps/shell/a.sh", "application/apps/shell/b.sh"]),
            app("businessApp", &["application/apps/businessApp/Chart.yaml"]),
        ];
        let cmds = launch_commands(&m);
        assert_eq!(
            cmds[0],
            "export MODE='a b'\\''c'\ncd 'application/apps/mixed'\nkubectl apply -f app.yaml\necho it's done"
        );
        assert_eq!(
            cmds[1],
            "bash 'application/apps/shell/a.sh'\nbash 'application/apps/shell/b.sh'"
        );
        assert_eq!(
            cmds[2],
            "helm upgrade --install businessapp application/apps/businessApp --namespace businessapp --create-namespace --wait"
        );
        // The export really reaches the commands, quoted as sh reads it.
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{}\nprintf %s \"$MODE\"",
                cmds[0].lines().next().unwrap_or_default()
            ))
            .output()
            .expect("sh runs");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "a b'c");
    }

    #[test]
    fn payload_membership() {
        assert!(in_payload("rootfs/bin/x", &["rootfs/"]));
        assert!(in_payload("rootfs", &["rootfs/"]));
        assert!(!in_payload("rootfsx/a", &["rootfs/"]));
        assert!(in_payload("charts/a", &[""]));
        assert!(!in_payload("hooks/init/a.sh", &[""]));
        assert!(!in_payload("hooks", &[""]));
    }
}
