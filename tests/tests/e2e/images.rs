//! The image cache end to end, with real parts: fixture images pushed into Debian's
//! docker-registry (the vendor's upstream), a Kubefile whose manifests, chart and image list
//! name them under several domains, `delivery build` through `--mirror`, the bundle's own
//! `registry serve`, skopeo, and containerd pulling by the ORIGINAL names inside a network
//! namespace that has nothing but loopback (so a fallback to the real registries has no route).

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

/// A child process killed (with its process group) when dropped.
pub struct Daemon {
    child: Child,
}

impl Daemon {
    /// Starts `cmd` as a daemon of the test.
    pub fn spawn(cmd: &mut Command) -> Daemon {
        Daemon {
            child: cmd.spawn().unwrap(),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Wait until `probe` succeeds, or fail naming the daemon.
pub fn wait_for(name: &str, mut probe: impl FnMut() -> bool) {
    let start = Instant::now();
    while !probe() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{name} did not come up within 20 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Debian's docker-registry on 127.0.0.1:`port`, storage under `dir`.
pub fn upstream_registry(dir: &Path, port: u16) -> Daemon {
    fs::create_dir_all(dir.join("storage")).unwrap();
    let config = dir.join("config.yml");
    fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.join("storage").display()
        ),
    )
    .unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker-registry (apt-get install docker-registry)");
    let d = Daemon { child };
    wait_for("docker-registry", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    d
}

/// Fixture OCI layouts (tests/fixtures/make-images.sh) and their top-level digests by name.
pub fn fixture_images(dir: &Path) -> BTreeMap<String, String> {
    let out = ok(Command::new(workspace().join("tests/fixtures/make-images.sh")).arg(dir));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (name, digest) = l.split_once(' ').unwrap();
            (name.to_string(), digest.to_string())
        })
        .collect()
}

fn skopeo_push(layout: &Path, tag: &str, dest: &str) {
    ok(Command::new("skopeo")
        .args(["copy", "--all", "--quiet", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:{tag}", layout.display()))
        .arg(format!("docker://{dest}")));
}

/// The sum of the sizes of every distinct blob of the fixture layouts.
fn distinct_blob_bytes(dir: &Path) -> u64 {
    let mut sizes = BTreeMap::new();
    for layout in ["busybox", "app"] {
        for e in fs::read_dir(dir.join(layout).join("blobs/sha256")).unwrap() {
            let e = e.unwrap();
            sizes.insert(e.file_name(), e.metadata().unwrap().len());
        }
    }
    sizes.values().sum()
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

struct World {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    keys: Keys,
    digests: BTreeMap<String, String>,
    port: u16,
    _upstream: Daemon,
}

/// Fixtures pushed upstream under the paths the mirrors below map the original domains to.
fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let keys = keygen(&root, "vendor");
    let digests = fixture_images(&root.join("images"));
    let port = free_port();
    let upstream = upstream_registry(&root.join("upstream"), port);
    let up = format!("127.0.0.1:{port}");
    skopeo_push(
        &root.join("images/busybox"),
        "1.36",
        &format!("{up}/hub/library/busybox:1.36"),
    );
    skopeo_push(&root.join("images/app"), "2.1", &format!("{up}/example/team/app:2.1"));
    World {
        _tmp: tmp,
        root,
        keys,
        digests,
        port,
        _upstream: upstream,
    }
}

impl World {
    fn context(&self, extra_manifest: Option<&str>) -> PathBuf {
        let ctx = self.root.join("ctx");
        let _ = fs::remove_dir_all(&ctx);
        write(
            &ctx.join("manifests/deploy.yaml"),
            b"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    spec:\n      initContainers:\n        - name: init\n          image: busybox:1.36\n      containers:\n        - name: web\n          image: docker.io/library/busybox:1.36\n",
            0o644,
        );
        write(
            &ctx.join("charts/app/Chart.yaml"),
            b"apiVersion: v2\nname: app\nversion: 0.1.0\nappVersion: \"2.1\"\n",
            0o644,
        );
        write(
            &ctx.join("charts/app/values.yaml"),
            b"image:\n  registry: example.com\n  repository: team/app\n  tag: \"2.1\"\n",
            0o644,
        );
        write(
            &ctx.join("charts/app/templates/deploy.yaml"),
            b"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: {{ .Values.image.registry }}/{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}\n",
            0o644,
        );
        write(
            &ctx.join("manifests/imageList"),
            b"# the same app under a private registry's name\nharbor.corp:8443/team/app:2.1\n",
            0o644,
        );
        if let Some(m) = extra_manifest {
            write(&ctx.join("manifests/extra.yaml"), m.as_bytes(), 0o644);
        }
        fs::write(
            ctx.join("Kubefile"),
            "FROM scratch\nLABEL name=shop version=1.0\nCOPY manifests manifests\nCOPY charts charts\n",
        )
        .unwrap();
        ctx
    }

    /// `delivery build` through the mirrors that map the original domains to the upstream.
    fn build(&self, ctx: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
        let up = format!("127.0.0.1:{}", self.port);
        let mirrors = [
            format!("docker.io={up}/hub"),
            format!("example.com={up}/example"),
            format!("harbor.corp:8443={up}/example"),
        ];
        let mut args: Vec<String> = vec!["--insecure-registry".into(), up.clone()];
        for m in mirrors {
            args.push("--mirror".into());
            args.push(m);
        }
        args.push("--cache-dir".into());
        args.push(self.root.join("cache").display().to_string());
        args.extend(extra.iter().map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        build(&ctx.join("Kubefile"), None, &self.keys.private, out, &args)
    }
}

#[test]
fn images_are_found_fetched_once_and_stored_once() {
    let w = world();
    let ctx = w.context(None);
    let bundle = w.root.join("shop.run");
    let o = w.build(&ctx, &bundle, &[]);
    assert!(o.status.success(), "build failed: {}", stderr(&o));

    let listed = ok(Command::new(&bundle).args(["images", "--json"]));
    let images: BTreeMap<String, String> = String::from_utf8(listed.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["data"]["name"].as_str().unwrap().to_string(),
                v["data"]["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let busybox = &w.digests["busybox:1.36"];
    let app = &w.digests["app:2.1"];
    let expected: BTreeMap<String, String> = [
        ("docker.io/library/busybox:1.36", busybox),
        ("example.com/team/app:2.1", app),
        ("harbor.corp:8443/team/app:2.1", app),
    ]
    .into_iter()
    .map(|(n, d)| (n.to_string(), d.clone()))
    .collect();
    assert_eq!(
        images, expected,
        "every image under its original name with the upstream digest"
    );

    // Each distinct blob once: the shared base layer and the app (named twice) are not repeated.
    assert_eq!(
        trailer(&bundle).blobs_len(),
        distinct_blob_bytes(&w.root.join("images"))
    );

    // A rebuild fetches no blob it already has: it works with every layer gone upstream (tags
    // still resolve there; the layers can only come from the cache).
    let mut removed = 0;
    for data in walk_files(&w.root.join("upstream/storage")) {
        let mut magic = [0u8; 2];
        if data.ends_with("data")
            && fs::File::open(&data).and_then(|mut f| f.read_exact(&mut magic)).is_ok()
            && magic == [0x1f, 0x8b]
        {
            fs::remove_file(&data).unwrap();
            removed += 1;
        }
    }
    assert!(
        removed >= 2,
        "the fixture layers were not found in the upstream storage"
    );
    let again = w.root.join("again.run");
    let o = w.build(&ctx, &again, &[]);
    assert!(o.status.success(), "rebuild from the cache failed: {}", stderr(&o));
    assert!(
        fs::read(&again).unwrap() == fs::read(&bundle).unwrap(),
        "a rebuild from the cache differs"
    );
}

#[test]
fn a_missing_image_fails_the_build_naming_it_and_its_line() {
    let w = world();
    let extra = "kind: Pod\nspec:\n  containers:\n    - name: gone\n      image: example.com/team/missing:9.9\napiVersion: v1\n";
    let ctx = w.context(Some(extra));
    let out = w.root.join("x.run");
    let o = w.build(&ctx, &out, &[]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("example.com/team/missing:9.9"), "{err}");
    assert!(err.contains("manifests/extra.yaml:5"), "{err}");
    assert!(!out.exists());
    // The escape hatch.
    let o = w.build(&ctx, &out, &["--ignore-image", "example.com/team/missing:9.9"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// `program`, run inside network namespace `ns` if given. nsenter joins only the network
/// namespace (`ip netns exec` would also remount /sys and hide the cgroup mount runc needs).
fn in_netns(ns: Option<&str>, program: impl AsRef<std::ffi::OsStr>) -> Command {
    match ns {
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net=/var/run/netns/{ns}")).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// Serve the bundle's registry inside network namespace `ns` (or the root namespace).
fn serve(bundle: &Path, ns: Option<&str>, port: u16) -> Daemon {
    let listen = format!("127.0.0.1:{port}");
    let child = in_netns(ns, bundle)
        .args(["registry", "serve", "--listen", &listen, "--no-verify-contents"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let d = Daemon { child };
    let url = format!("http://{listen}/v2/");
    wait_for("registry serve", || {
        in_netns(ns, "curl")
            .args(["-sf", &url])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    d
}

#[test]
fn skopeo_copies_from_the_bundle_registry_with_the_exact_digests() {
    let w = world();
    let ctx = w.context(None);
    let bundle = w.root.join("shop.run");
    assert!(w.build(&ctx, &bundle, &[]).status.success());
    let port = free_port();
    let _serve = serve(&bundle, None, port);
    for (name, path, key) in [
        ("library/busybox:1.36", "bb", "busybox:1.36"),
        ("example.com/team/app:2.1", "app", "app:2.1"),
    ] {
        let dest = w.root.join(path);
        ok(Command::new("skopeo")
            .args(["copy", "--all", "--quiet", "--src-tls-verify=false"])
            .arg(format!("docker://127.0.0.1:{port}/{name}"))
            .arg(format!("oci:{}:t", dest.display())));
        let index: serde_json::Value = serde_json::from_slice(&fs::read(dest.join("index.json")).unwrap()).unwrap();
        assert_eq!(index["manifests"][0]["digest"], w.digests[key].as_str(), "{name}");
    }
    // Not in the bundle: 404, and writes are refused.
    let status = |args: &[&str]| {
        let o = ok(Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(args));
        String::from_utf8(o.stdout).unwrap()
    };
    assert_eq!(
        status(&[&format!("http://127.0.0.1:{port}/v2/library/alpine/manifests/3.19")]),
        "404"
    );
    assert_eq!(
        status(&[
            "-X",
            "PUT",
            &format!("http://127.0.0.1:{port}/v2/library/busybox/manifests/evil")
        ]),
        "405"
    );
}

/// A network namespace with only loopback, removed when dropped.
struct Netns(String);

impl Netns {
    fn new(name: &str) -> Netns {
        let _ = Command::new("ip").args(["netns", "del", name]).status();
        ok(Command::new("ip").args(["netns", "add", name]));
        ok(Command::new("ip").args(["netns", "exec", name, "ip", "link", "set", "lo", "up"]));
        Netns(name.to_string())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn containerd_pulls_original_names_through_the_bundle_and_runs_them_root() {
    let w = world();
    let ctx = w.context(None);
    let bundle = w.root.join("shop.run");
    assert!(w.build(&ctx, &bundle, &[]).status.success());
    let ns = Netns::new("dlv-e2e-ctr");
    let port = 5000;
    let _serve = serve(&bundle, Some(&ns.0), port);

    // Node configuration rendered by the bundle for every registry it carries.
    let certs = w.root.join("certs.d");
    ok(Command::new(&bundle)
        .args([
            "registry",
            "mirror-config",
            "--mirror",
            &format!("http://127.0.0.1:{port}"),
            "--containerd-dir",
        ])
        .arg(&certs));
    for r in ["docker.io", "example.com", "harbor.corp:8443"] {
        assert!(certs.join(r).join("hosts.toml").exists(), "no hosts.toml for {r}");
    }

    let c = w.root.join("containerd");
    fs::create_dir_all(&c).unwrap();
    let sock = c.join("containerd.sock");
    let config = c.join("config.toml");
    fs::write(
        &config,
        format!(
            "version = 2\nroot = \"{root}/root\"\nstate = \"{root}/state\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = \"{sock}\"\n",
            root = c.display(),
            sock = sock.display()
        ),
    )
    .unwrap();
    let log = fs::File::create(c.join("containerd.log")).unwrap();
    let child = in_netns(Some(&ns.0), "containerd")
        .arg("--config")
        .arg(&config)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("containerd (apt-get install containerd runc)");
    let _containerd = Daemon { child };
    wait_for("containerd", || sock.exists());

    let ctr = |args: &[&str]| {
        let mut cmd = in_netns(Some(&ns.0), "ctr");
        cmd.arg("--address").arg(&sock).args(args);
        run(&mut cmd)
    };
    let hosts = certs.display().to_string();
    for image in [
        "docker.io/library/busybox:1.36",
        "example.com/team/app:2.1",
        "harbor.corp:8443/team/app:2.1",
    ] {
        let o = ctr(&["images", "pull", "--hosts-dir", &hosts, image]);
        assert!(o.status.success(), "pull {image}: {}", stderr(&o));
    }
    let o = ctr(&[
        "run",
        "--rm",
        "docker.io/library/busybox:1.36",
        "t1",
        "/bin/busybox",
        "echo",
        "hello from busybox",
    ]);
    assert!(o.status.success(), "ctr run: {}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "hello from busybox");
    let o = ctr(&[
        "run",
        "--rm",
        "example.com/team/app:2.1",
        "t2",
        "/bin/cat",
        "/hello.txt",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "hello from the app layer",
        "{}",
        stderr(&o)
    );

    // Not in the bundle: the mirror says 404 and the fallback upstream has no route.
    let o = ctr(&["images", "pull", "--hosts-dir", &hosts, "docker.io/library/alpine:3.19"]);
    assert!(!o.status.success(), "an image outside the bundle was pulled");
}
