//! The machine-readable output: every line that `--json` prints, of `delivery` and of
//! `delivery.run`, is a [`Message`] written by [`write_line`]. This module is the schema.
//!
//! A line is one JSON object, `{"type": TYPE, "data": DATA}`, ending in `\n`. TYPE names the
//! message (the variant's `serde` name below); DATA is the struct the variant holds, or, where a
//! variant holds a record of the bundle's manifest, that record as the manifest stores it
//! ([`bundle_format::manifest`]). Keys may come in any order. A field documented as optional is
//! always there, with `null` when it has no value; `omitted when ...` marks the few that are left
//! out instead. A TYPE means one shape per program: `entry`, `image` and `host` each have two,
//! told apart by the command that printed them.
//!
//! The one exception is `cert --json`, which predates the envelope: its lines are the bare
//! objects ([`Certificate`], [`Renewed`]).
//!
//! The unit tests below pin every message to its exact JSON; the end-to-end tests and scripts
//! read these lines, so a change here is a change of the interface.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;

use bundle_format::manifest::{App, BaseRef, BundleInfo, Download, Entry, Image, Launch};
use serde::Serialize;

/// One line of `--json` output.
#[derive(Debug, Serialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum Message<'a> {
    /// `delivery verify --json` and `delivery.run verify --json`: one line, once the signature and
    /// every byte are checked.
    Verified(Verified<'a>),
    /// `delivery build --dry-run --json`: the first line, the manifest's bundle record as the
    /// build would write it (`downloads` omitted when empty).
    Bundle(&'a BundleInfo),
    /// `delivery build --dry-run --json`: one line per entry the bundle would hold, after
    /// `bundle`, in path order.
    #[serde(rename = "entry")]
    PlannedEntry(PlannedEntry<'a>),
    /// `delivery images --json`, and `delivery build --dry-run --json` after the entries: one line
    /// per image the bundle would carry, the base's first.
    #[serde(rename = "image")]
    PlannedImage(PlannedImage<'a>),
    /// `delivery base list --json`: one line per bundle in the base store.
    Base(Base<'a>),
    /// `delivery.run info --json`: one line, what the signed manifest says and the file's sizes.
    Info(Info<'a>),
    /// `delivery.run list --json`: one line per entry of the signed manifest, as the manifest
    /// stores it (`{"type":"file","path","mode","size","sha256","data":{"stream":N}|{"blob":N}}`,
    /// `{"type":"dir","path","mode"}`, `{"type":"symlink","path","target"}`).
    Entry(&'a Entry),
    /// `delivery.run images --json`: one line per image the bundle carries, as the manifest
    /// stores it (`name`, `digest`, `media_type`, `size`, `platforms`, `source`).
    Image(&'a Image),
    /// `delivery.run check-config --json`: one line per host the Clusterfile expands to.
    Host(ConfigHost<'a>),
    /// `delivery.run status --json`: one line per host of the Clusterfile, from the journal.
    #[serde(rename = "host")]
    HostStatus(HostStatus<'a>),
    /// `delivery.run install|add-node --dry-run --json`: the one line, the whole plan.
    Plan(Plan<'a>),
    /// `delivery.run install|add-node --json`: one line per target host, once every host has
    /// answered the read-only checks and before anything changes.
    Preflight(Preflight<'a>),
    /// `delivery.run install|add-node|check --json`: what the log file says as it happens.
    Event(Event<'a>),
    /// `delivery.run install|add-node|check --json`: the last line, once every host is done.
    Summary(Summary<'a>),
    /// `delivery.run cert --renew --json`: one bare line (no envelope) before the certificates.
    #[serde(untagged)]
    Renewed(Renewed<'a>),
    /// `delivery.run cert --list|--renew --json`: one bare line (no envelope) per certificate.
    #[serde(untagged)]
    Certificate(Certificate<'a>),
}

/// Writes `message` as one line: its JSON, then `\n`, in one `write_all`, so that lines printed
/// from several threads at once (install's events, one thread per host) never interleave.
pub fn write_line(out: &mut impl Write, message: &Message) -> io::Result<()> {
    let mut line = serde_json::to_vec(message)?;
    line.push(b'\n');
    out.write_all(&line)
}

/// [`write_line`] to stdout, where every `--json` line goes.
pub fn print_line(message: &Message) -> io::Result<()> {
    write_line(&mut io::stdout(), message)
        .map_err(|e| io::Error::new(e.kind(), format!("failed to write a JSON line to stdout: {e}")))
}

/// `verified`: a bundle that passed every check.
#[derive(Debug, Serialize)]
pub struct Verified<'a> {
    /// The bundle file.
    pub bundle: &'a Path,
    /// Fingerprint of the key that signed it: `SHA256:...`.
    pub signer: &'a str,
    /// Whether that key is the trusted one given (`--key`, `--fingerprint`); false when only the
    /// key inside the bundle was used.
    pub origin_checked: bool,
    /// Size of the file.
    pub bytes: u64,
}

/// `entry` of `delivery build --dry-run`: an entry the bundle would hold and where it comes from.
#[derive(Debug, Serialize)]
pub struct PlannedEntry<'a> {
    pub path: &'a str,
    /// `file`, `dir` or `symlink`.
    #[serde(rename = "type")]
    pub kind: &'a str,
    /// Bytes of a file; 0 otherwise.
    pub size: u64,
    /// A file's source path, a symlink's target; empty for a directory.
    pub from: String,
    /// A file's `compressed` (into the stream) or `stored` (as is); empty otherwise.
    pub storage: &'a str,
}

/// `image` of `delivery images` and `delivery build --dry-run`: an image the bundle would carry.
#[derive(Debug, Serialize)]
pub struct PlannedImage<'a> {
    /// As found (`nginx:1.25`), or the base's normalised name.
    pub reference: &'a str,
    /// `FILE:LINE` where it was found, or `base bundle (...)`.
    pub source: &'a str,
    /// Whether it comes with a `FROM` base rather than from this bundle's files.
    pub from_base: bool,
}

/// `base`: a bundle in the local base store, as the store's index records it.
#[derive(Debug, Serialize)]
pub struct Base<'a> {
    /// The names `FROM` may use for it.
    pub names: &'a [String],
    /// `<sha256>.run` in the store.
    pub file: &'a str,
    /// The bundle's name and version.
    pub bundle: &'a str,
    pub version: &'a str,
    pub size: u64,
    /// Fingerprint of the key it was verified with.
    pub key: &'a str,
}

/// `info`: the signed manifest's bundle record, who signed it, and the file's layout.
#[derive(Debug, Serialize)]
pub struct Info<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub created: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    pub env: &'a BTreeMap<String, String>,
    pub apps: &'a [App],
    /// Optional: `{"apps":[...]}` or `{"cmds":[...]}`.
    pub launch: Option<&'a Launch>,
    pub bases: &'a [BaseRef],
    /// Always there, `[]` when nothing was downloaded.
    pub downloads: &'a [Download],
    pub format_version: u32,
    pub signer: &'a str,
    pub origin_checked: bool,
    /// Number of entries, and of those the files.
    pub entries: usize,
    pub files: usize,
    pub sizes: Sizes,
    /// Number of zstd frames of the stream and of stored blobs.
    pub frames: usize,
    pub blobs: usize,
}

/// Bytes of each region of a bundle file (`stream_uncompressed`: the stream once decompressed).
#[derive(Debug, Serialize)]
pub struct Sizes {
    pub total: u64,
    pub stub: u64,
    pub stream_compressed: u64,
    pub stream_uncompressed: u64,
    pub blobs: u64,
    pub manifest: u64,
}

/// `host` of `check-config`: a host as the Clusterfile expands it.
#[derive(Debug, Serialize)]
pub struct ConfigHost<'a> {
    pub address: String,
    /// Optional.
    pub hostname: Option<&'a str>,
    /// Of `master`, `node`, `registry`.
    pub roles: Vec<&'a str>,
    pub user: &'a str,
    pub port: u16,
    /// `key PATH`, `password from $VAR` or `password prompt`.
    pub auth: String,
    pub sudo: bool,
    /// `strict` or `accept-new`.
    pub host_key_policy: &'a str,
    /// `FILE:LINE:COLUMN` of the address.
    pub origin: String,
}

/// `host` of `status`: a host and its steps, from the journal.
#[derive(Debug, Serialize)]
pub struct HostStatus<'a> {
    pub host: String,
    pub roles: Vec<String>,
    /// Whether the journal records this host installed.
    pub installed: bool,
    /// Optional: known once preflight has asked the host.
    pub hostname: Option<&'a str>,
    /// Optional (`null` for a host the journal has no record of): by step name.
    pub steps: Option<BTreeMap<&'a str, Step<'a>>>,
}

/// A step of a host in the journal.
#[derive(Debug, Serialize)]
pub struct Step<'a> {
    /// `done`, `failed` or `blocked`.
    pub state: &'a str,
    /// RFC 3339, UTC.
    pub at: &'a str,
    /// The error, or a note on what was done; omitted when empty.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub detail: &'a str,
}

/// `plan`: everything `install` or `add-node` would do, computed before any host is contacted.
#[derive(Debug, Serialize)]
pub struct Plan<'a> {
    pub mode: PlanMode,
    pub cluster: &'a str,
    pub bundle: PlanBundle<'a>,
    /// `/var/lib/delivery/<cluster>` on every host.
    pub root: &'a str,
    pub registry: PlanRegistry<'a>,
    pub payloads: Vec<PlanPayload<'a>>,
    pub hooks: Vec<PlanHook<'a>>,
    /// Shell commands the first master runs at the end.
    pub launch: &'a [String],
    /// `"<kind>": BOOL` for every bundle kind the installer knows (`"kubernetes": true`), at
    /// this level, beside the other keys.
    #[serde(flatten)]
    pub kinds: &'a BTreeMap<&'static str, bool>,
    pub hosts: Vec<PlanHost<'a>>,
}

/// `mode` of a [`Plan`].
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PlanMode {
    /// `"install"`.
    Install,
    /// `"addnode"`.
    AddNode,
    /// `"reset"`.
    Reset,
}

#[derive(Debug, Serialize)]
pub struct PlanBundle<'a> {
    pub name: &'a str,
    pub version: &'a str,
    /// The signed manifest's identity: `sha256:...`.
    pub id: &'a str,
    pub file_bytes: u64,
}

/// Where the bundle's images are served from.
#[derive(Debug, Serialize)]
pub struct PlanRegistry<'a> {
    pub host: &'a str,
    /// `HOST:PORT`.
    pub endpoint: &'a str,
    /// Upstream registries the bundle carries images of.
    pub domains: &'a [String],
    pub images: usize,
    /// Where the bundle file goes on the registry host.
    pub bundle_path: &'a str,
}

/// A tar of bundle files unpacked on some hosts.
#[derive(Debug, Serialize)]
pub struct PlanPayload<'a> {
    /// `master` or `node`.
    pub name: &'a str,
    /// Entry path prefixes it holds (`""`: every entry but hooks).
    pub prefixes: &'a [String],
    pub files: usize,
    pub bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct PlanHook<'a> {
    pub phase: &'a str,
    /// Entry path in the bundle: `hooks/prepare/10-containerd.sh`.
    pub path: &'a str,
}

#[derive(Debug, Serialize)]
pub struct PlanHost<'a> {
    pub address: &'a str,
    pub roles: &'a [String],
    /// Optional: the name of the payload this host gets.
    pub payload: Option<&'a str>,
    /// Step names in the order they run.
    pub steps: &'a [String],
}

/// `preflight`: one host's answers and what the bundle needs there; `problems` empty means ok.
#[derive(Debug, Serialize)]
pub struct Preflight<'a> {
    pub address: &'a str,
    /// Optional: `null` when the host could not be asked.
    pub facts: Option<Facts<'a>>,
    pub needs: Needs<'a>,
    /// Every problem found, in words, each saying what to do.
    pub problems: &'a [String],
}

/// What a host told preflight.
#[derive(Debug, Serialize)]
pub struct Facts<'a> {
    /// Optional.
    pub uid: Option<u32>,
    pub hostname: &'a str,
    pub arch: &'a str,
    pub os: &'a str,
    /// Optional: free bytes under the install root.
    pub free_bytes: Option<u64>,
    pub installer_id: &'a str,
    pub busy_ports: &'a [u16],
    /// Optional: the host's clock minus the master's, in seconds.
    pub clock_skew: Option<f64>,
}

/// What the bundle needs on a host.
#[derive(Debug, Serialize)]
pub struct Needs<'a> {
    pub bytes: u64,
    pub ports: &'a [u16],
}

/// `event`: one line of the log. `host` and `step` are empty for the run as a whole.
#[derive(Debug, Serialize)]
pub struct Event<'a> {
    pub host: &'a str,
    pub step: &'a str,
    pub message: &'a str,
}

/// `summary`: how each host ended.
#[derive(Debug, Serialize)]
pub struct Summary<'a> {
    pub hosts: Vec<SummaryHost<'a>>,
    /// Optional: why the registry check failed (`check`).
    pub registry_error: Option<&'a str>,
    /// The log file.
    pub log: &'a Path,
}

#[derive(Debug, Serialize)]
pub struct SummaryHost<'a> {
    pub host: &'a str,
    pub ok: bool,
    /// Optional: the step that failed.
    pub step: Option<&'a str>,
    /// Optional: its error.
    pub error: Option<&'a str>,
}

/// `cert --renew`: which certificates were issued again and which were kept (bare, no envelope).
#[derive(Debug, Serialize)]
pub struct Renewed<'a> {
    pub created: &'a [String],
    pub reissued: &'a [String],
    pub kept: &'a [String],
}

/// `cert --list`: one certificate (bare, no envelope).
#[derive(Debug, Serialize)]
pub struct Certificate<'a> {
    /// Path under the PKI directory without `.crt`, or the kubeconfig's file name.
    pub name: &'a str,
    pub subject: &'a str,
    pub issuer: &'a str,
    pub not_after: &'a str,
    pub days_left: i64,
    pub ca: bool,
    pub sans: &'a [String],
}

#[cfg(test)]
mod tests {
    use super::*;
    use bundle_format::manifest::Data;
    use bundle_format::Digest;
    use serde_json::{json, Value};

    /// The line `message` prints, parsed back; it must be exactly one line.
    fn line(message: Message) -> Value {
        let mut out = Vec::new();
        write_line(&mut out, &message).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.find('\n'), Some(text.len() - 1), "{text}");
        serde_json::from_str(&text).unwrap()
    }

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn verified() {
        let m = Message::Verified(Verified {
            bundle: Path::new("app.run"),
            signer: "SHA256:abc",
            origin_checked: true,
            bytes: 42,
        });
        let data = json!({"bundle": "app.run", "signer": "SHA256:abc", "origin_checked": true, "bytes": 42});
        assert_eq!(line(m), json!({"type": "verified", "data": data}));
    }

    fn bundle_info() -> BundleInfo {
        BundleInfo {
            name: "demo".into(),
            version: "1.0".into(),
            created: "2026-01-01T00:00:00Z".into(),
            labels: BTreeMap::from([("k".into(), "v".into())]),
            env: BTreeMap::new(),
            apps: vec![App {
                name: "hello".into(),
                paths: strings(&["application/apps/hello/a.yaml"]),
                cmds: vec![],
                env: BTreeMap::new(),
            }],
            launch: Some(Launch::Apps(strings(&["hello"]))),
            bases: vec![BaseRef {
                name: "k8s".into(),
                version: "1.30".into(),
                key: "SHA256:k".into(),
            }],
            downloads: vec![],
        }
    }

    #[test]
    fn bundle_is_the_manifest_record_without_empty_downloads() {
        let info = bundle_info();
        let data = json!({
            "name": "demo", "version": "1.0", "created": "2026-01-01T00:00:00Z",
            "labels": {"k": "v"}, "env": {},
            "apps": [{"name": "hello", "paths": ["application/apps/hello/a.yaml"]}],
            "launch": {"apps": ["hello"]},
            "bases": [{"name": "k8s", "version": "1.30", "key": "SHA256:k"}],
        });
        assert_eq!(line(Message::Bundle(&info)), json!({"type": "bundle", "data": data}));
    }

    #[test]
    fn planned_entry() {
        let m = Message::PlannedEntry(PlannedEntry {
            path: "charts/a.tgz",
            kind: "file",
            size: 7,
            from: "ctx/a.tgz".into(),
            storage: "stored",
        });
        let data = json!({"path": "charts/a.tgz", "type": "file", "size": 7, "from": "ctx/a.tgz", "storage": "stored"});
        assert_eq!(line(m), json!({"type": "entry", "data": data}));
    }

    #[test]
    fn planned_image() {
        let m = Message::PlannedImage(PlannedImage {
            reference: "nginx:1.25",
            source: "manifests/app.yaml:12",
            from_base: false,
        });
        let data = json!({"reference": "nginx:1.25", "source": "manifests/app.yaml:12", "from_base": false});
        assert_eq!(line(m), json!({"type": "image", "data": data}));
    }

    #[test]
    fn base() {
        let names = strings(&["k8s", "k8s:1.30"]);
        let m = Message::Base(Base {
            names: &names,
            file: "ab.run",
            bundle: "k8s",
            version: "1.30",
            size: 9,
            key: "SHA256:k",
        });
        let data = json!({"names": ["k8s", "k8s:1.30"], "file": "ab.run", "bundle": "k8s", "version": "1.30", "size": 9, "key": "SHA256:k"});
        assert_eq!(line(m), json!({"type": "base", "data": data}));
    }

    #[test]
    fn info_always_has_downloads_and_launch() {
        let b = bundle_info();
        let m = Message::Info(Info {
            name: "demo",
            version: "1.0",
            created: "2026-01-01T00:00:00Z",
            labels: &b.labels,
            env: &BTreeMap::new(),
            apps: &b.apps,
            launch: None,
            bases: &b.bases,
            downloads: &[],
            format_version: 1,
            signer: "SHA256:s",
            origin_checked: false,
            entries: 3,
            files: 2,
            sizes: Sizes {
                total: 100,
                stub: 10,
                stream_compressed: 20,
                stream_uncompressed: 30,
                blobs: 40,
                manifest: 5,
            },
            frames: 1,
            blobs: 4,
        });
        let data = json!({
            "name": "demo", "version": "1.0", "created": "2026-01-01T00:00:00Z",
            "labels": {"k": "v"}, "env": {},
            "apps": [{"name": "hello", "paths": ["application/apps/hello/a.yaml"]}],
            "launch": null,
            "bases": [{"name": "k8s", "version": "1.30", "key": "SHA256:k"}],
            "downloads": [],
            "format_version": 1, "signer": "SHA256:s", "origin_checked": false,
            "entries": 3, "files": 2,
            "sizes": {"total": 100, "stub": 10, "stream_compressed": 20, "stream_uncompressed": 30, "blobs": 40, "manifest": 5},
            "frames": 1, "blobs": 4,
        });
        assert_eq!(line(m), json!({"type": "info", "data": data}));
    }

    #[test]
    fn entry_is_the_manifest_record() {
        let d = Digest([0; 32]);
        let sha = d.to_string();
        let file = Entry::File {
            path: "a".into(),
            mode: 0o644,
            size: 3,
            sha256: d,
            data: Data::Blob(2),
        };
        let data = json!({"type": "file", "path": "a", "mode": 0o644, "size": 3, "sha256": sha, "data": {"blob": 2}});
        assert_eq!(line(Message::Entry(&file)), json!({"type": "entry", "data": data}));
        let dir = Entry::Dir {
            path: "d".into(),
            mode: 0o755,
        };
        let data = json!({"type": "dir", "path": "d", "mode": 0o755});
        assert_eq!(line(Message::Entry(&dir)), json!({"type": "entry", "data": data}));
        let link = Entry::Symlink {
            path: "l".into(),
            target: "a".into(),
        };
        let data = json!({"type": "symlink", "path": "l", "target": "a"});
        assert_eq!(line(Message::Entry(&link)), json!({"type": "entry", "data": data}));
    }

    #[test]
    fn image_is_the_manifest_record() {
        let d = Digest([1; 32]);
        let image = Image {
            name: "docker.io/library/nginx:1.25".into(),
            digest: d,
            media_type: "application/vnd.oci.image.index.v1+json".into(),
            size: 5,
            platforms: strings(&["linux/amd64"]),
            source: "a.yaml:3".into(),
        };
        let data = json!({
            "name": "docker.io/library/nginx:1.25", "digest": d.to_string(),
            "media_type": "application/vnd.oci.image.index.v1+json", "size": 5,
            "platforms": ["linux/amd64"], "source": "a.yaml:3",
        });
        assert_eq!(line(Message::Image(&image)), json!({"type": "image", "data": data}));
    }

    #[test]
    fn config_host() {
        let m = Message::Host(ConfigHost {
            address: "10.0.0.1".into(),
            hostname: None,
            roles: vec!["master", "registry"],
            user: "root",
            port: 22,
            auth: "key /k".into(),
            sudo: false,
            host_key_policy: "strict",
            origin: "cluster.toml:5:14".into(),
        });
        let data = json!({
            "address": "10.0.0.1", "hostname": null, "roles": ["master", "registry"], "user": "root",
            "port": 22, "auth": "key /k", "sudo": false, "host_key_policy": "strict", "origin": "cluster.toml:5:14",
        });
        assert_eq!(line(m), json!({"type": "host", "data": data}));
    }

    #[test]
    fn host_status_leaves_out_an_empty_detail() {
        let steps = BTreeMap::from([
            (
                "copy",
                Step {
                    state: "done",
                    at: "T1",
                    detail: "",
                },
            ),
            (
                "check",
                Step {
                    state: "failed",
                    at: "T2",
                    detail: "boom",
                },
            ),
        ]);
        let m = Message::HostStatus(HostStatus {
            host: "10.0.0.1".into(),
            roles: strings(&["master"]),
            installed: true,
            hostname: Some("m1"),
            steps: Some(steps),
        });
        let data = json!({
            "host": "10.0.0.1", "roles": ["master"], "installed": true, "hostname": "m1",
            "steps": {"copy": {"state": "done", "at": "T1"}, "check": {"state": "failed", "at": "T2", "detail": "boom"}},
        });
        assert_eq!(line(m), json!({"type": "host", "data": data}));
        let m = Message::HostStatus(HostStatus {
            host: "10.0.0.2".into(),
            roles: vec![],
            installed: false,
            hostname: None,
            steps: None,
        });
        let data = json!({"host": "10.0.0.2", "roles": [], "installed": false, "hostname": null, "steps": null});
        assert_eq!(line(m), json!({"type": "host", "data": data}));
    }

    #[test]
    fn plan_has_the_kinds_beside_its_keys() {
        let domains = strings(&["docker.io"]);
        let prefixes = strings(&[""]);
        let launch = strings(&["kubectl apply -f x"]);
        let kinds = BTreeMap::from([("kubernetes", true)]);
        let roles = strings(&["master"]);
        let steps = strings(&["copy", "check"]);
        let m = Message::Plan(Plan {
            mode: PlanMode::AddNode,
            cluster: "c",
            bundle: PlanBundle {
                name: "demo",
                version: "1.0",
                id: "sha256:ab",
                file_bytes: 9,
            },
            root: "/var/lib/delivery/c",
            registry: PlanRegistry {
                host: "10.0.0.1",
                endpoint: "10.0.0.1:5000",
                domains: &domains,
                images: 2,
                bundle_path: "/var/lib/delivery/c/bundle.run",
            },
            payloads: vec![PlanPayload {
                name: "master",
                prefixes: &prefixes,
                files: 4,
                bytes: 8,
            }],
            hooks: vec![PlanHook {
                phase: "prepare",
                path: "hooks/prepare/1.sh",
            }],
            launch: &launch,
            kinds: &kinds,
            hosts: vec![PlanHost {
                address: "10.0.0.1",
                roles: &roles,
                payload: None,
                steps: &steps,
            }],
        });
        let data = json!({
            "mode": "addnode", "cluster": "c",
            "bundle": {"name": "demo", "version": "1.0", "id": "sha256:ab", "file_bytes": 9},
            "root": "/var/lib/delivery/c",
            "registry": {"host": "10.0.0.1", "endpoint": "10.0.0.1:5000", "domains": ["docker.io"], "images": 2, "bundle_path": "/var/lib/delivery/c/bundle.run"},
            "payloads": [{"name": "master", "prefixes": [""], "files": 4, "bytes": 8}],
            "hooks": [{"phase": "prepare", "path": "hooks/prepare/1.sh"}],
            "launch": ["kubectl apply -f x"],
            "kubernetes": true,
            "hosts": [{"address": "10.0.0.1", "roles": ["master"], "payload": null, "steps": ["copy", "check"]}],
        });
        assert_eq!(line(m), json!({"type": "plan", "data": data}));
        assert_eq!(serde_json::to_value(PlanMode::Install).unwrap(), "install");
    }

    #[test]
    fn preflight() {
        let problems = strings(&["port 5000 is busy"]);
        let busy = [5000];
        let ports = [5000, 6443];
        let m = Message::Preflight(Preflight {
            address: "10.0.0.1",
            facts: Some(Facts {
                uid: Some(0),
                hostname: "m1",
                arch: "x86_64",
                os: "ubuntu 22.04",
                free_bytes: None,
                installer_id: "",
                busy_ports: &busy,
                clock_skew: Some(0.5),
            }),
            needs: Needs {
                bytes: 10,
                ports: &ports,
            },
            problems: &problems,
        });
        let data = json!({
            "address": "10.0.0.1",
            "facts": {"uid": 0, "hostname": "m1", "arch": "x86_64", "os": "ubuntu 22.04", "free_bytes": null,
                      "installer_id": "", "busy_ports": [5000], "clock_skew": 0.5},
            "needs": {"bytes": 10, "ports": [5000, 6443]},
            "problems": ["port 5000 is busy"],
        });
        assert_eq!(line(m), json!({"type": "preflight", "data": data}));
        let m = Message::Preflight(Preflight {
            address: "10.0.0.2",
            facts: None,
            needs: Needs { bytes: 0, ports: &[] },
            problems: &[],
        });
        let data = json!({"address": "10.0.0.2", "facts": null, "needs": {"bytes": 0, "ports": []}, "problems": []});
        assert_eq!(line(m), json!({"type": "preflight", "data": data}));
    }

    #[test]
    fn event() {
        let m = Message::Event(Event {
            host: "10.0.0.1",
            step: "copy",
            message: "done",
        });
        let data = json!({"host": "10.0.0.1", "step": "copy", "message": "done"});
        assert_eq!(line(m), json!({"type": "event", "data": data}));
    }

    #[test]
    fn summary_has_nulls_for_what_did_not_fail() {
        let m = Message::Summary(Summary {
            hosts: vec![
                SummaryHost {
                    host: "10.0.0.1",
                    ok: true,
                    step: None,
                    error: None,
                },
                SummaryHost {
                    host: "10.0.0.2",
                    ok: false,
                    step: Some("copy"),
                    error: Some("disk full"),
                },
            ],
            registry_error: None,
            log: Path::new("/var/lib/delivery/c/install.log"),
        });
        let data = json!({
            "hosts": [
                {"host": "10.0.0.1", "ok": true, "step": null, "error": null},
                {"host": "10.0.0.2", "ok": false, "step": "copy", "error": "disk full"},
            ],
            "registry_error": null,
            "log": "/var/lib/delivery/c/install.log",
        });
        assert_eq!(line(m), json!({"type": "summary", "data": data}));
    }

    #[test]
    fn cert_lines_are_bare() {
        let reissued = strings(&["apiserver"]);
        let kept = strings(&["ca"]);
        let m = Message::Renewed(Renewed {
            created: &[],
            reissued: &reissued,
            kept: &kept,
        });
        assert_eq!(
            line(m),
            json!({"created": [], "reissued": ["apiserver"], "kept": ["ca"]})
        );
        let sans = strings(&["kubernetes"]);
        let m = Message::Certificate(Certificate {
            name: "apiserver",
            subject: "kube-apiserver",
            issuer: "kubernetes",
            not_after: "2126-01-01T00:00:00Z",
            days_left: 36500,
            ca: false,
            sans: &sans,
        });
        let data = json!({
            "name": "apiserver", "subject": "kube-apiserver", "issuer": "kubernetes",
            "not_after": "2126-01-01T00:00:00Z", "days_left": 36500, "ca": false, "sans": ["kubernetes"],
        });
        assert_eq!(line(m), data);
    }
}
