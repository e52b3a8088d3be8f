//! Lifecycle hooks: the bundle's `hooks/<phase>/*` scripts, rendered with minijinja (undefined
//! variables are errors) for one host, then run as root with `sh -s` on it. A hook publishes
//! values for later hooks by writing `KEY=VALUE` lines into the file `$DELIVERY_PUBLISH`.
//!
//! Template variables (documented in README.md, "Hooks"):
//! `cluster.name`, `host.address`, `host.name`, `host.roles`, `hosts` (every host: `address`,
//! `name`, `roles`), `first_master`, `masters`, `nodes` (addresses), `registry.address`,
//! `registry.port`, `registry.endpoint`, `registry.domains`, `registry.images`, `registry.digests`
//! (name to manifest digest), `paths.root`, `paths.files`,
//! `paths.certs_d`, `paths.state`, `bundle.name`, `bundle.version`, `bundle.id`, `env` (the
//! bundle's ENV with the Clusterfile's `[env]` over it), `published`, and the variables of the
//! bundle's kind ([`crate::kinds::BundleKind::hook_vars`]).

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct HookContext {
    pub cluster: ClusterVars,
    pub host: HostVars,
    pub hosts: Vec<HostVars>,
    pub first_master: String,
    pub masters: Vec<String>,
    pub nodes: Vec<String>,
    pub registry: RegistryVars,
    pub paths: Paths,
    pub bundle: BundleVars,
    pub env: BTreeMap<String, String>,
    pub published: BTreeMap<String, String>,
    /// The bundle kind's variables, by name, beside the others.
    #[serde(flatten)]
    pub kinds: BTreeMap<&'static str, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClusterVars {
    pub name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostVars {
    pub address: String,
    /// The hostname the host reported at preflight (its address when unknown).
    pub name: String,
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RegistryVars {
    pub address: String,
    pub port: u16,
    pub endpoint: String,
    pub domains: Vec<String>,
    /// Every image the bundle carries, by its full original name.
    pub images: Vec<String>,
    /// Each of those names with the digest of its top-level manifest or index (`sha256:...`),
    /// which is what containerd records for an image pulled through the mirror.
    pub digests: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Paths {
    pub root: String,
    pub files: String,
    pub certs_d: String,
    pub state: String,
}

impl Paths {
    pub fn under(root: &str) -> Paths {
        Paths {
            root: root.to_string(),
            files: format!("{root}/files"),
            certs_d: format!("{root}/certs.d"),
            state: format!("{root}/state"),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BundleVars {
    pub name: String,
    pub version: String,
    pub id: String,
}

/// Renders one hook for one host. `name` (the bundle path) is used in errors.
pub fn render(name: &str, source: &str, ctx: &HookContext) -> Result<String> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    let template = env
        .template_from_named_str(name, source)
        .with_context(|| format!("hook {name} is not a valid template"))?;
    template
        .render(minijinja::value::Serde(ctx))
        .with_context(|| format!("failed to render hook {name} for host {}", ctx.host.address))
}

/// Ends the here-document that carries a hook; a hook may not contain this line.
const HOOK_END: &str = "DELIVERY_HOOK_END_5f0c2a";

/// How long a hook waits for one still running on its host (an earlier installer killed
/// mid-hook leaves it running: sshd does not stop a command whose client vanished).
const LOCK_WAIT_SECS: u32 = 900;

/// The script actually sent to the host: strict shell, in the files directory, with an empty
/// publish file, then the hook; all of it under the host's hook lock (`<state>/hooks.lock`, taken
/// with util-linux `flock`), so a re-run waits for a hook an interrupted run left behind instead
/// of racing it. `flock -o` keeps the lock out of daemons a hook starts. `name` is used in errors.
pub fn script(name: &str, rendered: &str, paths: &Paths) -> Result<String> {
    script_waiting(name, rendered, paths, LOCK_WAIT_SECS)
}

/// [`script`] with the longest wait for the hook lock given (tests wait less).
fn script_waiting(name: &str, rendered: &str, paths: &Paths, wait: u32) -> Result<String> {
    if rendered.lines().any(|l| l.trim() == HOOK_END) {
        bail!("hook {name} contains the line `{HOOK_END}`, which the installer reserves; remove it");
    }
    let newline = if rendered.ends_with('\n') { "" } else { "\n" };
    Ok(format!(
        r#"set -eu
mkdir -p '{state}'
cd '{files}' 2>/dev/null || cd '{root}'
lock='{state}/hooks.lock'
if command -v flock >/dev/null 2>&1; then
  if ! flock -n "$lock" true; then
    echo "waiting for an earlier delivery hook on this host to finish (it holds $lock; an interrupted install leaves its hook running)" >&2
    flock -w {wait} "$lock" true || {{
      echo "an earlier delivery hook still holds $lock after {wait} s; find it with: ps -ef | grep '[h]ooks.lock'" >&2
      exit 75
    }}
  fi
  locked() {{ flock -o "$lock" "$@"; }}
else
  echo "flock (util-linux) not found: hooks on this host are not serialised" >&2
  locked() {{ "$@"; }}
fi
locked sh -s <<'{end}'
set -eu
: > "$DELIVERY_PUBLISH"
{rendered}{newline}{end}
"#,
        state = paths.state,
        files = paths.files,
        root = paths.root,
        end = HOOK_END,
    ))
}

/// Parses what a hook wrote into `$DELIVERY_PUBLISH`.
pub fn parse_published(hook: &str, text: &str) -> Result<BTreeMap<String, String>> {
    let mut values = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            bail!(
                "hook {hook} published line {} without `=`: write KEY=VALUE lines to $DELIVERY_PUBLISH",
                i + 1
            );
        };
        let valid = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            bail!(
                "hook {hook} published `{key}` (line {}): names are letters, digits and _, not starting with a digit",
                i + 1
            );
        }
        values.insert(key.to_string(), value.to_string());
    }
    Ok(values)
}

/// Replaces every published value (secrets such as join tokens) in a log line with `***`.
pub fn redact(line: &str, published: &BTreeMap<String, String>) -> String {
    let mut out = line.to_string();
    for v in published.values() {
        if v.len() >= 4 && out.contains(v.as_str()) {
            out = out.replace(v.as_str(), "***");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> HookContext {
        let host = HostVars {
            address: "10.0.0.2".into(),
            name: "node2".into(),
            roles: vec!["node".into()],
        };
        HookContext {
            cluster: ClusterVars { name: "prod".into() },
            host: host.clone(),
            hosts: vec![host],
            first_master: "10.0.0.1".into(),
            masters: vec!["10.0.0.1".into()],
            nodes: vec!["10.0.0.2".into()],
            registry: RegistryVars {
                address: "10.0.0.1".into(),
                port: 5000,
                endpoint: "10.0.0.1:5000".into(),
                domains: vec!["docker.io".into(), "example.com".into()],
                images: vec!["docker.io/library/busybox:1.36".into()],
                digests: BTreeMap::from([("docker.io/library/busybox:1.36".into(), "sha256:aa".into())]),
            },
            paths: Paths::under("/var/lib/delivery/prod"),
            bundle: BundleVars {
                name: "app".into(),
                version: "1".into(),
                id: "sha256:ab".into(),
            },
            env: BTreeMap::from([("POD_CIDR".into(), "10.244.0.0/16".into())]),
            published: BTreeMap::from([("JOIN_TOKEN".into(), "abcd.efgh".into())]),
            kinds: BTreeMap::from([("kind", serde_json::json!({"name": "demo"}))]),
        }
    }

    #[test]
    fn renders_every_documented_variable() {
        let src = "{{ cluster.name }} {{ host.address }} {{ host.name }} {{ host.roles | join(',') }} \
                   {{ hosts | length }} {{ first_master }} {{ masters[0] }} {{ nodes[0] }} \
                   {{ registry.endpoint }} {% for d in registry.domains %}{{ d }};{% endfor %} \
                   {% for n, d in registry.digests | items %}{{ n }}={{ d }}{% endfor %} \
                   {{ paths.files }} {{ paths.certs_d }} {{ paths.state }} {{ paths.root }} \
                   {{ bundle.name }} {{ bundle.id }} {{ env.POD_CIDR }} {{ published.JOIN_TOKEN }} {{ kind.name }}";
        let out = render("hooks/init/1.sh", src, &ctx()).unwrap();
        assert_eq!(
            out,
            "prod 10.0.0.2 node2 node 1 10.0.0.1 10.0.0.1 10.0.0.2 10.0.0.1:5000 docker.io;example.com; \
             docker.io/library/busybox:1.36=sha256:aa \
             /var/lib/delivery/prod/files /var/lib/delivery/prod/certs.d /var/lib/delivery/prod/state \
             /var/lib/delivery/prod app sha256:ab 10.244.0.0/16 abcd.efgh demo"
        );
    }

    #[test]
    fn undefined_variables_fail_naming_the_hook_and_host() {
        let e = format!(
            "{:#}",
            render("hooks/join-node/1.sh", "{{ published.CERT_KEY }}", &ctx()).unwrap_err()
        );
        assert!(e.contains("hooks/join-node/1.sh") && e.contains("10.0.0.2"), "{e}");
        let e = format!("{:#}", render("hooks/x.sh", "{{ nope", &ctx()).unwrap_err());
        assert!(e.contains("not a valid template"), "{e}");
    }

    #[test]
    fn published_lines_are_checked() {
        let v = parse_published("h", "A=1\n\nB_2=x=y\n").unwrap();
        assert_eq!(
            v,
            BTreeMap::from([("A".into(), "1".into()), ("B_2".into(), "x=y".into())])
        );
        assert!(parse_published("h", "no equals").is_err());
        assert!(parse_published("h", "1A=x").is_err());
    }

    #[test]
    fn redacts_published_values() {
        let p = BTreeMap::from([("T".into(), "s3cr3t-token".into()), ("N".into(), "1".into())]);
        assert_eq!(redact("join with s3cr3t-token now 1", &p), "join with *** now 1");
    }

    /// Runs `script()` for `rendered` with the local `sh`, rooted in a fresh temp dir.
    fn run_script(dir: &std::path::Path, rendered: &str) -> std::process::Output {
        run_script_waiting(dir, rendered, LOCK_WAIT_SECS)
    }

    fn run_script_waiting(dir: &std::path::Path, rendered: &str, wait: u32) -> std::process::Output {
        let paths = Paths::under(dir.to_str().unwrap());
        let script = script_waiting("hooks/prepare/1.sh", rendered, &paths, wait).unwrap();
        let mut child = std::process::Command::new("sh")
            .arg("-s")
            .env("DELIVERY_PUBLISH", dir.join("publish"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    fn lock_is_free(dir: &std::path::Path) -> bool {
        std::process::Command::new("flock")
            .args(["-n", dir.join("state/hooks.lock").to_str().unwrap(), "true"])
            .status()
            .unwrap()
            .success()
    }

    #[test]
    fn the_script_runs_the_hook_strictly_and_keeps_its_status() {
        let dir = tempfile::tempdir().unwrap();
        let out = run_script(
            dir.path(),
            "echo \"in $(pwd)\"\necho K=v >> \"$DELIVERY_PUBLISH\"\nexit 3",
        );
        assert_eq!(out.status.code(), Some(3), "{out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("in {}\n", dir.path().display())
        );
        assert_eq!(std::fs::read_to_string(dir.path().join("publish")).unwrap(), "K=v\n");
        // `set -eu` holds inside the hook: an unset variable stops it.
        let out = run_script(dir.path(), "echo $NOT_SET\necho reached");
        assert_ne!(out.status.code(), Some(0));
        assert!(!String::from_utf8_lossy(&out.stdout).contains("reached"));
        // Quoted here-document: the installer's shell expands nothing of the hook.
        let out = run_script(dir.path(), "x='$HOME `id`'; echo \"$x\"");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "$HOME `id`\n", "{out:?}");
    }

    #[test]
    fn a_hook_waits_for_one_still_running_and_daemons_do_not_keep_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("state")).unwrap();
        let lock = dir.path().join("state/hooks.lock");
        // An earlier hook, still running for 1 s.
        let mut holder = std::process::Command::new("flock")
            .args([lock.to_str().unwrap(), "sleep", "1"])
            .spawn()
            .unwrap();
        while lock_is_free(dir.path()) {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let t0 = std::time::Instant::now();
        // This hook leaves a daemon behind (30 s), as prepare hooks do.
        let out = run_script(
            dir.path(),
            "sleep 30 </dev/null >/dev/null 2>&1 &\necho $! > daemon.pid\necho ran",
        );
        holder.wait().unwrap();
        assert!(out.status.success(), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("waiting for an earlier delivery hook"),
            "{out:?}"
        );
        assert!(t0.elapsed() >= std::time::Duration::from_millis(500), "it did not wait");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "ran\n");
        // No files/ here: the hook ran in the root.
        let daemon = std::fs::read_to_string(dir.path().join("daemon.pid")).unwrap();
        assert!(
            std::path::Path::new(&format!("/proc/{}", daemon.trim())).exists(),
            "the daemon is gone"
        );
        assert!(lock_is_free(dir.path()), "the hook's daemon holds the lock");
        let _ = std::process::Command::new("kill").arg(daemon.trim()).status();
    }

    #[test]
    fn a_hook_gives_up_on_a_lock_held_too_long_and_says_how_to_find_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("state")).unwrap();
        let lock = dir.path().join("state/hooks.lock");
        let mut holder = std::process::Command::new("flock")
            .args([lock.to_str().unwrap(), "sleep", "3"])
            .spawn()
            .unwrap();
        while lock_is_free(dir.path()) {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let out = run_script_waiting(dir.path(), "echo ran", 1);
        holder.wait().unwrap();
        assert_eq!(out.status.code(), Some(75), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("still holds") && err.contains("grep '[h]ooks.lock'"),
            "{err}"
        );
        assert!(out.stdout.is_empty(), "the hook ran without the lock");
    }

    #[test]
    fn a_hook_with_the_reserved_line_is_refused() {
        let e = script(
            "hooks/x.sh",
            "echo a\nDELIVERY_HOOK_END_5f0c2a\nrm -rf /\n",
            &Paths::under("/r"),
        )
        .unwrap_err();
        assert!(
            format!("{e}").contains("hooks/x.sh") && format!("{e}").contains("reserves"),
            "{e}"
        );
    }
}
