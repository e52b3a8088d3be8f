//! `registry serve`, pulled by real clients: skopeo copies the fixture images back digest for
//! digest, curl sees the distribution API's headers, ranges and errors (and no path trick reaches
//! a file), 16 parallel pulls of a 64 MiB blob come back exact in bounded memory, and a bundle
//! with a damaged blob is never served. Needs skopeo, curl and busybox-static (for
//! tests/fixtures/make-images.sh).

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bundle_format::digest::Hasher;
use bundle_format::manifest::{BundleInfo, Image};
use bundle_format::write::{write_bundle, Contents, InputBlob, Options};
use bundle_format::{Bundle, Digest, SigningKey, Trust};
use serde_json::Value;

use crate::support::*;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// An OCI layout's top-level manifest (or index) and every blob it reaches.
struct Layout {
    dir: PathBuf,
    top: Digest,
    media_type: String,
    blobs: Vec<InputBlob>,
}

impl Layout {
    fn blob_path(&self, d: &Digest) -> PathBuf {
        self.dir.join("blobs/sha256").join(d.hex())
    }

    fn size(&self) -> u64 {
        self.blobs.iter().map(|b| b.size).sum()
    }
}

fn read_layout(dir: &Path) -> Layout {
    let index: Value = serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    let top = &index["manifests"][0];
    let mut layout = Layout {
        dir: dir.to_path_buf(),
        top: top["digest"].as_str().unwrap().parse().unwrap(),
        media_type: top["mediaType"].as_str().unwrap().to_string(),
        blobs: Vec::new(),
    };
    walk(&mut layout, top);
    layout
}

/// Add the blob `descriptor` names and, for a manifest or index, everything it references.
fn walk(layout: &mut Layout, descriptor: &Value) {
    let digest: Digest = descriptor["digest"].as_str().unwrap().parse().unwrap();
    let media_type = descriptor["mediaType"].as_str().unwrap();
    let source = layout.blob_path(&digest);
    let is_manifest = media_type == OCI_MANIFEST || media_type == OCI_INDEX;
    layout.blobs.push(InputBlob {
        digest,
        size: descriptor["size"].as_u64().unwrap(),
        source: source.clone(),
        offset: 0,
        media_type: is_manifest.then(|| media_type.to_string()),
    });
    if !is_manifest {
        return;
    }
    let doc: Value = serde_json::from_slice(&fs::read(&source).unwrap()).unwrap();
    let children: Vec<Value> = match media_type {
        OCI_INDEX => doc["manifests"].as_array().unwrap().clone(),
        _ => std::iter::once(doc["config"].clone())
            .chain(doc["layers"].as_array().unwrap().iter().cloned())
            .collect(),
    };
    for child in &children {
        walk(layout, child);
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    bundle: PathBuf,
    public_key: PathBuf,
    busybox: Layout,
    app: Layout,
    /// The extra random blob, if asked for: its digest and size.
    big: Option<(Digest, u64)>,
}

/// The two fixture images under three names, plus `big_mib` MiB of random blob if non-zero, in a
/// bundle signed by a fresh key.
fn fixture(big_mib: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let images = root.join("images");
    ok(Command::new("bash")
        .arg(workspace().join("tests/fixtures/make-images.sh"))
        .arg(&images));
    let busybox = read_layout(&images.join("busybox"));
    let app = read_layout(&images.join("app"));
    let mut blobs: Vec<InputBlob> = busybox.blobs.iter().chain(&app.blobs).cloned().collect();
    let big = (big_mib > 0).then(|| {
        let path = root.join("big.blob");
        let bytes = Noise::new(64).bytes(big_mib << 20);
        fs::write(&path, &bytes).unwrap();
        let digest = Digest::of(&bytes);
        blobs.push(InputBlob {
            digest,
            size: bytes.len() as u64,
            source: path,
            offset: 0,
            media_type: None,
        });
        (digest, bytes.len() as u64)
    });
    let image = |name: &str, l: &Layout| Image {
        name: name.into(),
        digest: l.top,
        media_type: l.media_type.clone(),
        size: l.size(),
        platforms: vec!["linux/amd64".into()],
        source: "tests/fixtures/make-images.sh".into(),
    };
    let images = [
        image("docker.io/library/busybox:1.36", &busybox),
        image("example.com/team/app:2.1", &app),
        image("harbor.corp:8443/team/app:2.1", &app),
    ];
    let key = SigningKey::generate("vendor").unwrap();
    let public_key = root.join("vendor.pub");
    fs::write(&public_key, key.public().to_openssh_line("vendor")).unwrap();
    let info = BundleInfo {
        name: "registry-test".into(),
        version: "1.0".into(),
        created: "2023-11-14T22:13:20Z".into(),
        ..BundleInfo::default()
    };
    let contents = Contents {
        info: &info,
        entries: &[],
        blobs: &blobs,
        images: &images,
    };
    let bundle = root.join("images.run");
    // Read back while written: the writer hashes the whole file as it goes.
    let out = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&bundle)
        .unwrap();
    let stub = fs::read(stub()).unwrap();
    write_bundle(&out, &stub, &contents, &key, &Options::default(), &bundle_format::Quiet).unwrap();
    drop(out);
    fs::set_permissions(&bundle, fs::Permissions::from_mode(0o755)).unwrap();
    Fixture {
        _dir: dir,
        root,
        bundle,
        public_key,
        busybox,
        app,
        big,
    }
}

/// A running `registry serve`, killed when dropped (also when a test panics).
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    /// Start the bundle's registry on a free port of 127.0.0.1 and wait for its startup line.
    fn start(f: &Fixture, extra: &[&str]) -> Server {
        Self::try_start(f, extra).unwrap_or_else(|(code, log)| panic!("registry serve exited with {code:?}:\n{log}"))
    }

    /// `Err((exit code, stderr))` if it exits before serving.
    fn try_start(f: &Fixture, extra: &[&str]) -> Result<Server, (Option<i32>, String)> {
        let mut cmd = Command::new(&f.bundle);
        cmd.args(["registry", "serve", "--listen", "127.0.0.1:0", "--key"])
            .arg(&f.public_key)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = retry_busy(|| cmd.spawn());
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                // Echo it, so a failing test shows the server's log.
                eprintln!("[registry] {line}");
                if tx.send(line).is_err() {
                    // Nobody listens any more; keep draining so the server never blocks.
                    continue;
                }
            }
        });
        let mut server = Server {
            child,
            addr: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut log = String::new();
        while Instant::now() < deadline {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    log.push_str(&line);
                    log.push('\n');
                    if let Some(i) = line.find("serving ") {
                        let addr = line[i..].rsplit(" on ").next().unwrap().trim().to_string();
                        server.addr = addr;
                        return Ok(server);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = server.child.wait().unwrap();
                    return Err((status.code(), log));
                }
            }
        }
        panic!("registry serve did not start within 120 s:\n{log}");
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run the bundle with `args` and require success.
fn bundle_ok(f: &Fixture, args: &[&str]) -> std::process::Output {
    let out = bundle_run(f, args);
    assert!(out.status.success(), "{args:?} failed: {}", stderr(&out));
    out
}

fn bundle_run(f: &Fixture, args: &[&str]) -> std::process::Output {
    retry_busy(|| Command::new(&f.bundle).args(args).output())
}

/// One HTTP exchange as curl saw it.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    /// The distribution error code of an error body.
    fn code(&self) -> String {
        assert_eq!(self.header("content-type"), Some("application/json"), "{self:?}");
        let v: Value = serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {self:?}"));
        v["errors"][0]["code"].as_str().unwrap().to_string()
    }
}

/// `curl -i` with `args`; paths are sent as written (`--path-as-is`).
fn curl(args: &[&str]) -> Reply {
    let out = ok(Command::new("curl")
        .args(["-sS", "-i", "--path-as-is", "--max-time", "30"])
        .args(args));
    let text = out.stdout;
    let split = text
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(&text)));
    let head = String::from_utf8(text[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.to_ascii_lowercase(), v.trim().to_string())
        })
        .collect();
    Reply {
        status,
        headers,
        body: text[split + 4..].to_vec(),
    }
}

fn skopeo(args: &[&str]) -> Vec<u8> {
    ok(Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .env("HOME", std::env::temp_dir()))
    .stdout
}

/// The digest of the image an OCI layout's index.json names first.
fn layout_top(dir: &Path) -> Digest {
    read_layout(dir).top
}

#[test]
fn skopeo_copies_every_image_back_digest_for_digest() {
    let f = fixture(0);
    let server = Server::start(&f, &[]);
    let host = &server.addr;
    let out = f.root.join("pulled");
    fs::create_dir_all(&out).unwrap();

    // The docker.io short form, as an unmodified client writes it.
    let dest = format!("oci:{}:1.36", out.join("busybox").display());
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{host}/library/busybox:1.36"),
        &dest,
    ]);
    assert_eq!(layout_top(&out.join("busybox")), f.busybox.top);
    for b in &f.busybox.blobs {
        let copied = fs::read(out.join("busybox/blobs/sha256").join(b.digest.hex())).unwrap();
        assert_eq!(copied, fs::read(&b.source).unwrap(), "blob {}", b.digest);
    }

    // A full name with its registry host, and an index copied as an index.
    let dest = format!("oci:{}:2.1", out.join("app").display());
    let src = format!("docker://{host}/example.com/team/app:2.1");
    skopeo(&["copy", "--all", "--src-tls-verify=false", &src, &dest]);
    assert_eq!(layout_top(&out.join("app")), f.app.top);
    for b in &f.app.blobs {
        let copied = fs::read(out.join("app/blobs/sha256").join(b.digest.hex())).unwrap();
        assert_eq!(copied, fs::read(&b.source).unwrap(), "blob {}", b.digest);
    }
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &src]);
    assert_eq!(raw, fs::read(f.app.blob_path(&f.app.top)).unwrap());
    // Through the index, skopeo fetches the child manifest for its platform by digest.
    let inspect = skopeo(&["inspect", "--tls-verify=false", &src]);
    let inspect: Value = serde_json::from_slice(&inspect).unwrap();
    assert_eq!(inspect["Digest"].as_str(), Some(f.app.top.to_string().as_str()));
    let child = f
        .app
        .blobs
        .iter()
        .find(|b| b.media_type.as_deref() == Some(OCI_MANIFEST))
        .unwrap();
    let child: Value = serde_json::from_slice(&fs::read(&child.source).unwrap()).unwrap();
    let layers: Vec<&Value> = child["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| &l["digest"])
        .collect();
    assert_eq!(inspect["Layers"], serde_json::json!(layers));
    let tags = skopeo(&[
        "list-tags",
        "--tls-verify=false",
        &format!("docker://{host}/library/busybox"),
    ]);
    let tags: Value = serde_json::from_slice(&tags).unwrap();
    assert_eq!(tags["Tags"], serde_json::json!(["1.36"]));

    // A name the bundle does not carry fails, and leaves nothing behind.
    let missing = run(Command::new("skopeo")
        .args(["--insecure-policy", "copy", "--src-tls-verify=false"])
        .arg(format!("docker://{host}/library/nginx:latest"))
        .arg(format!("oci:{}:latest", out.join("nginx").display()))
        .env("HOME", std::env::temp_dir()));
    assert!(!missing.status.success());
}

#[test]
fn images_lists_every_image_from_the_signed_manifest() {
    let f = fixture(0);
    let key = f.public_key.to_str().unwrap();
    let out = bundle_ok(&f, &["images", "--json", "--key", key]);
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<&str> = lines.iter().map(|l| l["data"]["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "docker.io/library/busybox:1.36",
            "example.com/team/app:2.1",
            "harbor.corp:8443/team/app:2.1"
        ]
    );
    for l in &lines {
        assert_eq!(l["type"], "image");
        assert_eq!(l["data"]["platforms"], serde_json::json!(["linux/amd64"]));
    }
    assert_eq!(
        lines[1]["data"]["digest"].as_str(),
        Some(f.app.top.to_string().as_str())
    );
    assert_eq!(lines[1]["data"]["media_type"].as_str(), Some(OCI_INDEX));
    assert_eq!(lines[0]["data"]["size"].as_u64(), Some(f.busybox.size()));
    let text = bundle_ok(&f, &["images", "--key", key]);
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("harbor.corp:8443/team/app:2.1") && text.contains(&f.busybox.top.to_string()));
    // The signature is checked first: another key is refused with exit code 3.
    let other = f.root.join("other.pub");
    let key = SigningKey::generate("other").unwrap();
    fs::write(&other, key.public().to_openssh_line("other")).unwrap();
    let refused = bundle_run(&f, &["images", "--key", other.to_str().unwrap()]);
    assert_eq!(code(&refused), 3, "{}", stderr(&refused));
}

#[test]
fn curl_sees_the_distribution_api() {
    let f = fixture(0);
    let server = Server::start(&f, &[]);
    let url = |p: &str| server.url(p);

    let base = curl(&[&url("/v2/")]);
    assert_eq!((base.status, base.body.as_slice()), (200, &b"{}"[..]));
    assert_eq!(base.header("docker-distribution-api-version"), Some("registry/2.0"));
    assert_eq!(curl(&[&url("/v2")]).status, 200);

    // HEAD of a manifest: everything containerd needs in one round trip, no body.
    let bb = f.busybox.blob_path(&f.busybox.top);
    let head = curl(&["-I", &url("/v2/library/busybox/manifests/1.36")]);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-type"), Some(OCI_MANIFEST));
    assert_eq!(
        head.header("docker-content-digest"),
        Some(f.busybox.top.to_string().as_str())
    );
    assert_eq!(
        head.header("content-length"),
        Some(fs::metadata(&bb).unwrap().len().to_string().as_str())
    );
    assert!(head.body.is_empty());
    let get = curl(&[&url("/v2/library/busybox/manifests/1.36")]);
    assert_eq!(get.body, fs::read(&bb).unwrap());

    // containerd's ?ns=: the same repository path means different upstream registries.
    let app = fs::read(f.app.blob_path(&f.app.top)).unwrap();
    for ns in ["example.com", "harbor.corp:8443", "harbor.corp%3A8443"] {
        let r = curl(&[&url(&format!("/v2/team/app/manifests/2.1?ns={ns}"))]);
        assert_eq!((r.status, r.header("content-type")), (200, Some(OCI_INDEX)), "ns={ns}");
        assert_eq!(r.body, app);
    }
    let r = curl(&[&url("/v2/library/busybox/manifests/1.36?ns=docker.io")]);
    assert_eq!(r.status, 200);
    let r = curl(&[&url("/v2/team/app/manifests/2.1")]);
    assert_eq!(
        (r.status, r.code()),
        (404, "NAME_UNKNOWN".into()),
        "no ns means docker.io"
    );
    let r = curl(&[&url("/v2/team/app/manifests/2.1?ns=quay.io")]);
    assert_eq!((r.status, r.code()), (404, "NAME_UNKNOWN".into()));
    // Children of an index, by digest, under the name the index was pulled by.
    let child = f
        .app
        .blobs
        .iter()
        .find(|b| b.media_type.as_deref() == Some(OCI_MANIFEST))
        .unwrap();
    let r = curl(&[
        "-I",
        &url(&format!("/v2/team/app/manifests/{}?ns=example.com", child.digest)),
    ]);
    assert_eq!((r.status, r.header("content-type")), (200, Some(OCI_MANIFEST)));

    // Blobs, whole and in ranges.
    let layer = f
        .busybox
        .blobs
        .iter()
        .find(|b| b.media_type.is_none() && b.size > 1000)
        .unwrap();
    let bytes = fs::read(&layer.source).unwrap();
    let size = bytes.len();
    let blob_url = url(&format!("/v2/library/busybox/blobs/{}", layer.digest));
    let r = curl(&[&blob_url]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, bytes);
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(
        r.header("docker-content-digest"),
        Some(layer.digest.to_string().as_str())
    );
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert_eq!(r.header("content-length"), Some(size.to_string().as_str()));
    let r = curl(&["-r", "10-99", &blob_url]);
    assert_eq!((r.status, r.body.as_slice()), (206, &bytes[10..100]));
    assert_eq!(r.header("content-range"), Some(format!("bytes 10-99/{size}").as_str()));
    let from = size - 5;
    let r = curl(&["-H", &format!("Range: bytes={from}-"), &blob_url]);
    assert_eq!((r.status, r.body.as_slice()), (206, &bytes[from..]));
    let r = curl(&["-H", "Range: bytes=-7", &blob_url]);
    assert_eq!((r.status, r.body.as_slice()), (206, &bytes[size - 7..]));
    for bad in [
        format!("bytes={size}-"),
        "bytes=9-3".into(),
        "bytes=x-".into(),
        "bytes=-0".into(),
    ] {
        let r = curl(&["-H", &format!("Range: {bad}"), &blob_url]);
        assert_eq!(r.status, 416, "{bad}");
        assert_eq!(r.header("content-range"), Some(format!("bytes */{size}").as_str()));
    }
    // The blob of the app image shares the base layer: served under that name too.
    let r = curl(&["-I", &url(&format!("/v2/example.com/team/app/blobs/{}", layer.digest))]);
    assert_eq!(r.status, 200);

    // Read-only.
    for (method, path) in [
        ("PUT", "/v2/library/busybox/manifests/1.36"),
        ("POST", "/v2/library/busybox/blobs/uploads/"),
        ("DELETE", "/v2/library/busybox/manifests/1.36"),
        ("PATCH", "/v2/library/busybox/blobs/uploads/x"),
        ("DELETE", &format!("/v2/library/busybox/blobs/{}", layer.digest)),
    ] {
        let r = curl(&["-X", method, "-d", "data", &url(path)]);
        assert_eq!((r.status, r.code()), (405, "UNSUPPORTED".into()), "{method} {path}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
    }
    // Still serving after refusing them all.
    assert_eq!(curl(&["-I", &url("/v2/library/busybox/manifests/1.36")]).status, 200);

    // Not in the bundle.
    let unknown = Digest::of(b"not in the bundle");
    for (path, status, code) in [
        ("/v2/library/nginx/manifests/latest".to_string(), 404, "NAME_UNKNOWN"),
        ("/v2/library/busybox/manifests/9.9".into(), 404, "MANIFEST_UNKNOWN"),
        (
            format!("/v2/library/busybox/manifests/{unknown}"),
            404,
            "MANIFEST_UNKNOWN",
        ),
        (
            format!("/v2/library/busybox/manifests/{}", layer.digest),
            404,
            "MANIFEST_UNKNOWN",
        ),
        (format!("/v2/library/busybox/blobs/{unknown}"), 404, "BLOB_UNKNOWN"),
    ] {
        let r = curl(&[&url(&path)]);
        assert_eq!((r.status, r.code()), (status, code.to_string()), "{path}");
    }

    // Path tricks: 400 or 404, and never a byte of any file.
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    for (path, status) in [
        ("/v2/../../../../etc/passwd", 404),
        ("/../../etc/passwd", 404),
        ("/v2/library/../../../etc/passwd/manifests/latest", 400),
        ("/v2/%2e%2e/%2e%2e/etc/passwd/manifests/latest", 400),
        ("/v2/library/%2e%2e%2f%2e%2e%2fetc%2fpasswd/blobs/sha256:x", 400),
        ("/v2/library/busybox/blobs/sha256:..%2f..%2fetc%2fpasswd", 400),
        ("/v2/library/busybox/blobs/..%2f..%2f..%2fetc%2fpasswd", 400),
        ("/v2/library//busybox/manifests/1.36", 400),
        ("//v2/library/busybox/manifests/1.36", 404),
        ("/v2/Library/BusyBox/manifests/1.36", 400),
        ("/V2/library/busybox/manifests/1.36", 404),
        ("/v2/library/busybox/manifests/1.36%00", 400),
        ("/v2/library/busybox/manifests/..", 400),
        ("/etc/passwd", 404),
        ("/v2/_catalog", 404),
    ] {
        let r = curl(&[&url(path)]);
        assert_eq!(r.status, status, "{path}: {:?}", String::from_utf8_lossy(&r.body));
        r.code();
        let body = String::from_utf8_lossy(&r.body);
        assert!(
            !body.contains("root:x:0:0") && (passwd.is_empty() || !body.contains(&passwd)),
            "{path}"
        );
    }

    // A head over 16 KiB, a TLS handshake, and a request with a body: answered, then closed.
    let big = format!("X-Big: {}", "a".repeat(17 << 10));
    assert_eq!(curl(&["-H", &big, &url("/v2/")]).status, 431);
    let raw = |bytes: &[u8]| {
        let mut s = TcpStream::connect(&server.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(bytes).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    };
    let tls = raw(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x00\x00\x00");
    assert!(tls.starts_with("HTTP/1.1 400 "), "{tls}");
    let smuggled =
        raw(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\nGET /v2/_catalog HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        smuggled.starts_with("HTTP/1.1 400 ") && smuggled.matches("HTTP/1.1").count() == 1,
        "{smuggled}"
    );
    // Keep-alive and pipelining: two answers on one connection, then close on request.
    let two = raw(b"HEAD /v2/ HTTP/1.1\r\nHost: x\r\n\r\nGET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(two.matches("HTTP/1.1 200 OK").count(), 2, "{two}");
    // Small bodies are not held back (no Nagle or cork stall): 50 keep-alive round trips of a
    // manifest take far less than one 200 ms stall each.
    let mut s = BufReader::new(TcpStream::connect(&server.addr).unwrap());
    let manifest = fs::read(&bb).unwrap();
    let t = Instant::now();
    for _ in 0..50 {
        let request = "GET /v2/library/busybox/manifests/1.36 HTTP/1.1\r\nHost: x\r\n\r\n";
        s.get_mut().write_all(request.as_bytes()).unwrap();
        let mut length = 0;
        let mut line = String::new();
        while line != "\r\n" {
            line.clear();
            s.read_line(&mut line).unwrap();
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0u8; length];
        s.read_exact(&mut body).unwrap();
        assert_eq!(body, manifest);
    }
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "50 manifests took {:?}",
        t.elapsed()
    );
    let old = raw(b"GET /v2/library/busybox/manifests/1.36 HTTP/1.0\r\n\r\n");
    assert!(
        old.starts_with("HTTP/1.1 200 OK")
            && old.ends_with(&String::from_utf8_lossy(&fs::read(&bb).unwrap()).into_owned())
    );
}

#[test]
fn sixteen_parallel_pulls_of_a_large_blob_stay_exact_in_bounded_memory() {
    let f = fixture(64);
    let (digest, size) = f.big.unwrap();
    let server = Server::start(&f, &[]);
    let url = server.url(&format!("/v2/library/busybox/blobs/{digest}"));
    // Rate-limited so that all 16 are in flight at once.
    let clients: Vec<Child> = (0..16)
        .map(|_| {
            Command::new("sh")
                .args([
                    "-c",
                    "curl -sSf --max-time 120 --limit-rate 32M \"$1\" | sha256sum",
                    "sh",
                    &url,
                ])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // A resumed download (`Range: bytes=N-`, as containerd sends) while they run.
    let from = size / 3;
    let mut resumed = Command::new("curl")
        .args([
            "-sSf",
            "--max-time",
            "120",
            "-H",
            &format!("Range: bytes={from}-"),
            &url,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut tail = Vec::new();
    resumed.stdout.take().unwrap().read_to_end(&mut tail).unwrap();
    assert!(resumed.wait().unwrap().success());
    let mut whole = fs::read(f.root.join("big.blob")).unwrap();
    assert!(tail == whole[from as usize..], "the resumed range differs");
    whole.clear();
    for c in clients {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success());
        let hex = String::from_utf8(out.stdout).unwrap();
        assert_eq!(hex.split_whitespace().next(), Some(digest.hex().as_str()));
    }
    let status = fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    let hwm_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap();
    eprintln!("registry serve peak RSS (VmHWM) after 16 parallel pulls of {size} bytes: {hwm_kib} KiB");
    assert!(hwm_kib < 64 << 10, "peak RSS {hwm_kib} KiB is not under 64 MiB");
    // Clients that hang up mid-blob are routine: the server carries on.
    for _ in 0..8 {
        let mut s = TcpStream::connect(&server.addr).unwrap();
        write!(s, "GET /v2/library/busybox/blobs/{digest} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut some = [0u8; 4096];
        s.read_exact(&mut some).unwrap();
    }
    // Hash the served bytes ourselves once more, streaming, as a client of our own.
    let mut s = TcpStream::connect(&server.addr).unwrap();
    write!(s, "GET /v2/library/busybox/blobs/{digest} HTTP/1.0\r\n\r\n").unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    let mut length = None;
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = Some(v.trim().parse::<u64>().unwrap());
        }
    }
    assert_eq!(length, Some(size));
    let mut h = Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0;
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        got += n as u64;
    }
    assert_eq!((got, h.finish()), (size, digest));
}

#[test]
fn a_damaged_blob_is_never_served() {
    let f = fixture(0);
    let v = Bundle::open(&f.bundle)
        .unwrap()
        .verify_signature(&Trust::EmbeddedKeyOnly)
        .unwrap();
    let layer = f
        .busybox
        .blobs
        .iter()
        .find(|b| b.media_type.is_none() && b.size > 1000)
        .unwrap();
    let blob = v.manifest().blobs.iter().find(|b| b.sha256 == layer.digest).unwrap();
    let at = v.trailer().blobs_offset + blob.offset + blob.size / 2;
    drop(v);
    let file = fs::OpenOptions::new().read(true).write(true).open(&f.bundle).unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, at).unwrap();
    file.write_all_at(&[byte[0] ^ 0x20], at).unwrap();
    drop(file);
    match Server::try_start(&f, &[]) {
        Ok(_) => panic!("a bundle with a damaged layer was served"),
        Err((code, log)) => assert_eq!(code, Some(3), "{log}"),
    }
    // Skipping the content check is an explicit choice, for a bundle verified before a restart.
    let server = Server::start(&f, &["--no-verify-contents"]);
    assert_eq!(curl(&[&server.url("/v2/")]).status, 200);
}

/// A private containerd (its own root, state and socket under the test directory), killed on drop.
struct Containerd {
    child: Child,
    socket: PathBuf,
}

impl Containerd {
    fn start(dir: &Path) -> Containerd {
        fs::create_dir_all(dir).unwrap();
        let socket = dir.join("containerd.sock");
        let config = dir.join("config.toml");
        // No CRI (kubelet's API) and no opt plugin (it would create /opt/containerd).
        fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\", \"io.containerd.internal.v1.opt\"]\n\
                 [grpc]\n  address = \"{socket}\"\n",
                root = dir.join("root").display(),
                state = dir.join("state").display(),
                socket = socket.display(),
            ),
        )
        .unwrap();
        let log = fs::File::create(dir.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut c = Containerd { child, socket };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !c.socket.exists() {
            assert!(
                c.child.try_wait().unwrap().is_none(),
                "containerd exited: {}",
                fs::read_to_string(dir.join("containerd.log")).unwrap()
            );
            assert!(Instant::now() < deadline, "containerd did not start in 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        c
    }

    fn ctr(&self, args: &[&str]) -> std::process::Output {
        run(Command::new("ctr").arg("--address").arg(&self.socket).args(args))
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// containerd through `hosts.toml` mirror entries, as nodes are configured: every image is pulled
/// under its original name (containerd adds `?ns=<registry>` and starts with HEAD), and gets the
/// digest it has upstream.
#[test]
fn containerd_pulls_through_the_mirror_under_original_names() {
    let f = fixture(0);
    let server = Server::start(&f, &[]);
    let certs = f.root.join("certs.d");
    for upstream in ["docker.io", "example.com", "harbor.corp:8443"] {
        // `server` is the mirror too, so nothing ever falls back to the real upstream.
        let hosts = format!(
            "server = \"http://{a}\"\n\n[host.\"http://{a}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            a = server.addr
        );
        write(&certs.join(upstream).join("hosts.toml"), hosts.as_bytes(), 0o644);
    }
    let containerd = Containerd::start(&f.root.join("containerd"));
    let hosts_dir = certs.to_str().unwrap();
    for (name, top) in [
        ("docker.io/library/busybox:1.36", f.busybox.top),
        ("example.com/team/app:2.1", f.app.top),
        ("harbor.corp:8443/team/app:2.1", f.app.top),
    ] {
        let pull = containerd.ctr(&["images", "pull", "--hosts-dir", hosts_dir, name]);
        assert!(pull.status.success(), "ctr pull {name}: {}", stderr(&pull));
        let list = containerd.ctr(&["images", "ls"]);
        let list = String::from_utf8_lossy(&list.stdout).into_owned();
        let line = list
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{list}"));
        assert!(line.contains(&top.to_string()), "{name}: {line}");
    }
    // An image the bundle does not carry is not found (and not fetched from anywhere else).
    let missing = containerd.ctr(&[
        "images",
        "pull",
        "--hosts-dir",
        hosts_dir,
        "docker.io/library/nginx:1.25",
    ]);
    assert!(!missing.status.success());
}
