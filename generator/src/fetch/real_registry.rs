//! Fetching from real registries: Debian's `docker-registry` (distribution 2.8) started as a
//! child process on 127.0.0.1 with a config of our own, fixture images from
//! `tests/fixtures/make-images.sh` pushed with `skopeo`, plus local layouts and archives.
//!
//! Needs (Debian packages, no root): docker-registry, skopeo, apache2-utils (htpasswd),
//! openssl, busybox-static. All traffic stays on 127.0.0.1: every reference used here either
//! names a loopback registry or is matched by a local source or mirror first.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use tempfile::TempDir;

use super::manifest::{DOCKER_LAYER, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};
use super::*;

const BASE_LAYER: &str = "sha256:6d22b01ae2dd76243cfd5646e2f7709cddb93149df86ea43b63ef2ff2a1517c6";

// ---------------------------------------------------------------------------------------------
// Harness

fn tool(name: &str, package: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/sbin", "/bin", "/usr/local/bin"] {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("these tests need `{name}`: apt-get install -y {package}");
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The two fixture layouts: `busybox` (tag 1.36, one layer) and `app` (tag 2.1, an index).
struct Fixtures {
    dir: TempDir,
    busybox: Digest,
    app: Digest,
}

impl Fixtures {
    fn make() -> Fixtures {
        tool("busybox", "busybox-static");
        let from_manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/make-images.sh");
        // The scratch crate compiles this file by its absolute path: walk up from it.
        let script = if from_manifest.is_file() {
            from_manifest
        } else {
            Path::new(file!())
                .ancestors()
                .nth(4)
                .expect("file!() is deep enough")
                .join("tests/fixtures/make-images.sh")
        };
        let dir = tempfile::tempdir().unwrap();
        let out = run(Command::new("bash").arg(&script).arg(dir.path()));
        let digest_of = |name: &str| -> Digest {
            let line = out
                .lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("{name} in {out}"));
            line.split_whitespace().nth(1).unwrap().parse().unwrap()
        };
        Fixtures {
            busybox: digest_of("busybox:"),
            app: digest_of("app:"),
            dir,
        }
    }

    fn layout(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A docker-registry child process on 127.0.0.1; killed when dropped.
struct Registry {
    child: Child,
    port: u16,
    storage: PathBuf,
    _dir: TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Registry {
    /// Start on a fresh storage directory.
    fn start(extra_yaml: &str) -> (Registry, TempDir) {
        let storage = tempfile::tempdir().unwrap();
        (Registry::on(storage.path(), extra_yaml), storage)
    }

    /// Start on `storage` with `extra_yaml` (auth, tls) added to the config.
    fn on(storage: &Path, extra_yaml: &str) -> Registry {
        let bin = tool("docker-registry", "docker-registry");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("config.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    \
                 rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: \
                 fetch-tests\n{extra_yaml}",
                storage.display()
            ),
        )
        .unwrap();
        let log = fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new(bin)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .env_remove("REGISTRY_HTTP_ADDR")
            .spawn()
            .expect("start docker-registry");
        let mut r = Registry {
            child,
            port,
            storage: storage.to_path_buf(),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = r.child.try_wait() {
                let log = fs::read_to_string(r._dir.path().join("registry.log")).unwrap_or_default();
                panic!("docker-registry exited with {status}: {log}");
            }
            assert!(Instant::now() < deadline, "docker-registry did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `skopeo copy oci:LAYOUT:TAG docker://ADDR/DEST`.
    fn push(&self, layout: &Path, tag: &str, dest: &str, extra: &[&str]) {
        let skopeo = tool("skopeo", "skopeo");
        run(Command::new(skopeo)
            .args(["--insecure-policy", "copy", "-q", "--dest-tls-verify=false"])
            .args(extra)
            .arg(format!("oci:{}:{tag}", layout.display()))
            .arg(format!("docker://{}/{dest}", self.addr())));
    }

    /// The data file of a blob in the registry's storage.
    fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.storage
            .join(format!("docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2]))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fill `storage` through an anonymous registry: busybox:1.36 (OCI), app:2.1 (index),
/// busybox-v2s2:1.36 (Docker media types), dockerhub-proxy/library/busybox:1.36 (mirror path).
fn populated(f: &Fixtures) -> TempDir {
    let (r, storage) = Registry::start("");
    r.push(&f.layout("busybox"), "1.36", "library/busybox:1.36", &[]);
    r.push(&f.layout("app"), "2.1", "library/app:2.1", &["--all"]);
    r.push(
        &f.layout("busybox"),
        "1.36",
        "library/busybox-v2s2:1.36",
        &["--format", "v2s2"],
    );
    r.push(
        &f.layout("busybox"),
        "1.36",
        "dockerhub-proxy/library/busybox:1.36",
        &[],
    );
    storage
}

#[derive(Default)]
struct Recorder {
    phases: Mutex<Vec<(String, u64)>>,
    bytes: AtomicU64,
}

impl Progress for Recorder {
    fn phase(&self, name: &str, total: u64) {
        self.phases.lock().unwrap().push((name.to_string(), total));
    }
    fn advance(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }
}

fn opts(cache: &Path, insecure: &[String]) -> Options {
    let mut o = Options::new(cache);
    o.insecure = insecure.to_vec();
    o
}

fn r(s: &str) -> Reference {
    s.parse().unwrap()
}

fn one(refs: &[Reference], o: &Options) -> FetchedImage {
    match fetch_all(refs, o, &bundle_format::Quiet) {
        Ok(mut v) => v.remove(0),
        Err(errs) => panic!(
            "fetch failed: {}",
            errs.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")
        ),
    }
}

fn only_error(refs: &[Reference], o: &Options) -> FetchError {
    match fetch_all(refs, o, &bundle_format::Quiet) {
        Ok(_) => panic!("fetch of {refs:?} should fail"),
        Err(mut errs) => {
            assert_eq!(errs.len(), 1, "{errs:?}");
            eprintln!("expected error: {}", errs[0]);
            errs.remove(0)
        }
    }
}

/// Every blob file exists and hashes to its name.
fn assert_cached(image: &FetchedImage) {
    for b in &image.blobs {
        let bytes = fs::read(&b.path).unwrap_or_else(|e| panic!("{}: {e}", b.path.display()));
        assert_eq!(Digest::of(&bytes), b.digest);
        assert_eq!(bytes.len() as u64, b.size);
    }
    assert_eq!(image.size, image.blobs.iter().map(|b| b.size).sum::<u64>());
}

fn leftovers(cache: &Path) -> Vec<String> {
    fs::read_dir(cache.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Anonymous pulls, media types, platforms, mirrors

#[test]
fn fetches_by_tag_and_by_digest_anonymously() {
    let f = Fixtures::make();
    let storage = populated(&f);
    let reg = Registry::on(storage.path(), "");
    let cache = tempfile::tempdir().unwrap();
    let o = opts(cache.path(), &[reg.addr()]);

    let by_tag = one(&[r(&format!("{}/library/busybox:1.36", reg.addr()))], &o);
    assert_eq!(by_tag.digest, f.busybox, "skopeo keeps the fixture's bytes");
    assert_eq!(by_tag.media_type, OCI_MANIFEST);
    assert_eq!(by_tag.platforms, vec!["linux/amd64"]);
    assert_eq!(by_tag.blobs.len(), 3, "manifest, config, layer");
    assert_eq!(by_tag.blobs[0].media_type.as_deref(), Some(OCI_MANIFEST));
    assert_eq!(by_tag.blobs[2].digest.to_string(), BASE_LAYER);
    assert_cached(&by_tag);

    let cache2 = tempfile::tempdir().unwrap();
    let by_digest = one(
        &[r(&format!("{}/library/busybox@{}", reg.addr(), f.busybox))],
        &opts(cache2.path(), &[reg.addr()]),
    );
    assert_eq!(by_digest.digest, f.busybox);
    assert_eq!(
        by_digest.blobs,
        by_tag
            .blobs
            .iter()
            .map(|b| CachedBlob {
                path: cache2.path().join("blobs/sha256").join(b.digest.hex()),
                ..b.clone()
            })
            .collect::<Vec<_>>()
    );

    // A digest that the tag does not have, and a name the registry does not have.
    let wrong = Digest::of(b"not this one");
    let err = only_error(&[r(&format!("{}/library/busybox@{wrong}", reg.addr()))], &o);
    assert!(matches!(err, FetchError::NotFound { .. }), "{err}");
    let err = only_error(&[r(&format!("{}/library/nope:1", reg.addr()))], &o);
    match err {
        FetchError::NotFound {
            reference, endpoint, ..
        } => {
            assert_eq!(reference, format!("{}/library/nope:1", reg.addr()));
            assert!(endpoint.starts_with(&format!("http://{}", reg.addr())), "{endpoint}");
        }
        other => panic!("{other}"),
    }
}

#[test]
fn selects_platforms_from_an_index_and_shares_blobs() {
    let f = Fixtures::make();
    let storage = populated(&f);
    let reg = Registry::on(storage.path(), "");
    let cache = tempfile::tempdir().unwrap();
    let o = opts(cache.path(), &[reg.addr()]);
    let app = r(&format!("{}/library/app:2.1", reg.addr()));
    let busybox = r(&format!("{}/library/busybox:1.36", reg.addr()));

    let progress = Recorder::default();
    let images = fetch_all(&[app.clone(), busybox.clone()], &o, &progress).unwrap();
    let (a, b) = (&images[0], &images[1]);
    assert_eq!(a.digest, f.app);
    assert_eq!(a.media_type, OCI_INDEX);
    assert_eq!(a.platforms, vec!["linux/amd64"]);
    assert_eq!(a.blobs.len(), 5, "index, manifest, config, 2 layers");
    assert_eq!(a.blobs[1].media_type.as_deref(), Some(OCI_MANIFEST));
    assert_cached(a);
    assert_cached(b);
    // The shared base layer was downloaded once: the phase total counts unique blobs only.
    let layers: u64 = a.blobs[3..].iter().map(|b| b.size).sum();
    assert_eq!(
        progress.phases.lock().unwrap().clone(),
        vec![("fetch images".to_string(), layers)]
    );
    assert_eq!(progress.bytes.load(Ordering::Relaxed), layers);

    // A rebuild downloads nothing.
    let again = Recorder::default();
    fetch_all(&[app.clone(), busybox], &o, &again).unwrap();
    assert_eq!(again.phases.lock().unwrap()[0].1, 0);
    assert_eq!(again.bytes.load(Ordering::Relaxed), 0);

    let mut arm = o.clone();
    arm.platforms = vec!["linux/arm64".parse().unwrap()];
    match only_error(std::slice::from_ref(&app), &arm) {
        FetchError::NoPlatform { wanted, available, .. } => {
            assert_eq!(wanted, vec!["linux/arm64"]);
            assert_eq!(available, vec!["linux/amd64"]);
        }
        other => panic!("{other}"),
    }
    // A single-platform image is checked against its config too.
    let bb = r(&format!("{}/library/busybox:1.36", reg.addr()));
    assert!(matches!(only_error(&[bb], &arm), FetchError::NoPlatform { .. }));
}

#[test]
fn docker_v2s2_media_types() {
    let f = Fixtures::make();
    let storage = populated(&f);
    let reg = Registry::on(storage.path(), "");
    let cache = tempfile::tempdir().unwrap();
    let img = one(
        &[r(&format!("{}/library/busybox-v2s2:1.36", reg.addr()))],
        &opts(cache.path(), &[reg.addr()]),
    );
    assert_eq!(img.media_type, DOCKER_MANIFEST);
    assert_eq!(img.blobs[0].media_type.as_deref(), Some(DOCKER_MANIFEST));
    assert_ne!(img.digest, f.busybox, "a converted manifest has other bytes");
    let m: serde_json::Value = serde_json::from_slice(&fs::read(&img.blobs[0].path).unwrap()).unwrap();
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.docker.container.image.v1+json"
    );
    assert_eq!(
        m["layers"][0]["mediaType"],
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );
    assert_cached(&img);
}

#[test]
fn a_mirror_serves_docker_hub_names_under_a_prefix() {
    let f = Fixtures::make();
    let storage = populated(&f);
    let reg = Registry::on(storage.path(), "");
    let cache = tempfile::tempdir().unwrap();
    let mut o = opts(cache.path(), &[reg.addr()]);
    o.mirrors = vec![format!("docker.io={}/dockerhub-proxy", reg.addr()).parse().unwrap()];
    let wanted = r("docker.io/library/busybox:1.36");
    let img = one(std::slice::from_ref(&wanted), &o);
    assert_eq!(img.reference, wanted, "the original name is kept");
    assert_eq!(img.digest, f.busybox);
    // Short names normalise to docker.io and go to the mirror as well.
    assert_eq!(one(&[r("busybox:1.36")], &o).digest, f.busybox);
    // A name the mirror lacks is NotFound at the mirror (docker.io itself is never asked).
    match only_error(&[r("docker.io/library/absent:1")], &o) {
        FetchError::NotFound { endpoint, .. } => {
            assert!(
                endpoint.contains(&format!("{}/v2/dockerhub-proxy/library/absent", reg.addr())),
                "{endpoint}"
            )
        }
        other => panic!("{other}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Integrity and the cache

#[test]
fn a_corrupt_blob_is_a_digest_mismatch_and_leaves_nothing_cached() {
    let f = Fixtures::make();
    let storage = populated(&f);
    let reg = Registry::on(storage.path(), "");
    let data = reg.blob_file(BASE_LAYER);
    let mut bytes = fs::read(&data).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&data, &bytes).unwrap();

    let cache = tempfile::tempdir().unwrap();
    let reference = r(&format!("{}/library/busybox:1.36", reg.addr()));
    match only_error(std::slice::from_ref(&reference), &opts(cache.path(), &[reg.addr()])) {
        FetchError::DigestMismatch {
            reference: named,
            digest,
            what,
            ..
        } => {
            assert_eq!(digest.to_string(), BASE_LAYER);
            assert_eq!(named, reference.to_string());
            assert!(
                what.contains(&format!("from http://{}/v2/library/busybox", reg.addr())),
                "{what}"
            );
        }
        other => panic!("{other}"),
    }
    let hex = BASE_LAYER.strip_prefix("sha256:").unwrap();
    assert!(
        !cache.path().join("blobs/sha256").join(hex).exists(),
        "the bad blob is not cached"
    );
    assert!(
        leftovers(cache.path()).is_empty(),
        "no temporary file is left: {:?}",
        leftovers(cache.path())
    );
}

#[test]
fn a_tampered_manifest_fails_against_the_digest_header_and_the_asked_digest() {
    let f = Fixtures::make();
    let storage = populated(&f);
    let reg = Registry::on(storage.path(), "");
    // Still valid JSON that still points at the same blobs: only the digest can tell.
    let data = reg.blob_file(&f.busybox.to_string());
    let text = fs::read_to_string(&data).unwrap();
    assert!(text.contains("\"layers\":["));
    fs::write(&data, text.replace("\"layers\":[", "\"layers\": [")).unwrap();

    let cache = tempfile::tempdir().unwrap();
    let o = opts(cache.path(), &[reg.addr()]);
    for reference in [
        format!("{}/library/busybox:1.36", reg.addr()),
        format!("{}/library/busybox@{}", reg.addr(), f.busybox),
    ] {
        match only_error(&[r(&reference)], &o) {
            FetchError::DigestMismatch { digest, what, .. } => {
                assert_eq!(digest, f.busybox, "{reference}");
                assert!(what.starts_with("manifest"), "{what}");
            }
            other => panic!("{reference}: {other}"),
        }
    }
    assert!(!cache.path().join("blobs/sha256").join(f.busybox.hex()).exists());
    assert!(leftovers(cache.path()).is_empty());
}

#[test]
fn a_second_fetch_by_digest_needs_no_registry() {
    let f = Fixtures::make();
    let storage = populated(&f);
    let reg = Registry::on(storage.path(), "");
    let addr = reg.addr();
    let cache = tempfile::tempdir().unwrap();
    let o = opts(cache.path(), std::slice::from_ref(&addr));
    let by_digest = r(&format!("{addr}/library/app@{}", f.app));
    let first = one(std::slice::from_ref(&by_digest), &o);
    drop(reg);

    let progress = Recorder::default();
    let second = fetch_all(std::slice::from_ref(&by_digest), &o, &progress)
        .unwrap()
        .remove(0);
    assert_eq!(second.blobs, first.blobs);
    assert_eq!(progress.bytes.load(Ordering::Relaxed), 0);
    // A tag must be resolved by the registry, which is gone.
    let err = only_error(&[r(&format!("{addr}/library/app:2.1"))], &o);
    assert!(matches!(err, FetchError::Connect { .. }), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Authentication

fn auths(text: &str) -> Auths {
    Auths::parse(Path::new("/etc/delivery/auth.toml"), text, 0o600).unwrap()
}

#[test]
fn basic_auth_with_htpasswd() {
    let f = Fixtures::make();
    let storage = populated(&f);
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    let line = run(Command::new(tool("htpasswd", "apache2-utils")).args(["-Bbn", "ci", "right-password"]));
    fs::write(&htpasswd, line).unwrap();
    let reg = Registry::on(
        storage.path(),
        &format!(
            "auth:\n  htpasswd:\n    realm: fetch-tests\n    path: {}\n",
            htpasswd.display()
        ),
    );
    let reference = r(&format!("{}/library/busybox:1.36", reg.addr()));
    let entry = |password: &str| {
        format!(
            "[registries.\"{}\"]\nusername = \"ci\"\npassword = \"{password}\"\n",
            reg.addr()
        )
    };

    let cache = tempfile::tempdir().unwrap();
    let mut o = opts(cache.path(), &[reg.addr()]);
    o.auth = auths(&entry("right-password"));
    let img = one(std::slice::from_ref(&reference), &o);
    assert_eq!(img.digest, f.busybox);
    assert_cached(&img);

    for (auth, words) in [
        (auths(&entry("wrong-password")), "were rejected"),
        (Auths::default(), "asks for credentials"),
    ] {
        let cache = tempfile::tempdir().unwrap();
        let mut o = opts(cache.path(), &[reg.addr()]);
        o.auth = auth;
        match only_error(std::slice::from_ref(&reference), &o) {
            FetchError::Unauthorized { endpoint, hint, .. } => {
                assert_eq!(endpoint, format!("http://{}", reg.addr()));
                assert!(hint.contains(words), "{hint}");
                assert!(!hint.contains("password\""), "{hint}");
                assert!(!hint.contains("wrong-password"), "no secret in messages: {hint}");
            }
            other => panic!("{other}"),
        }
    }
}

/// A token service of the distribution token spec: checks Basic credentials, signs RS256 JWTs
/// with `openssl dgst`, and names its certificate in `x5c` so the registry can check it.
struct TokenServer {
    port: u16,
    requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TokenServer {
    fn start(key: PathBuf, cert_der: Vec<u8>, user: &'static str, password: &'static str) -> TokenServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (req2, stop2) = (requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                req2.fetch_add(1, Ordering::SeqCst);
                let _ = serve_token(stream, &key, &cert_der, user, password);
            }
        });
        TokenServer {
            port,
            requests,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_token(stream: TcpStream, key: &Path, cert_der: &[u8], user: &str, password: &str) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut authorization = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("authorization") {
                authorization = Some(v.trim().to_string());
            }
        }
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let expected = format!("Basic {}", b64.encode(format!("{user}:{password}")));
    let target = request_line.split_whitespace().nth(1).unwrap_or("");
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .map(percent_decode)
            .unwrap_or_default()
    };
    let mut out = stream;
    if authorization.as_deref() != Some(expected.as_str()) {
        let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#;
        return write!(out, "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    }
    let scope = param("scope");
    let mut parts = scope.splitn(2, ':');
    let kind = parts.next().unwrap_or("").to_string();
    let (name, actions) = parts.next().unwrap_or("").rsplit_once(':').unwrap_or(("", ""));
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [b64.encode(cert_der)]});
    let claims = serde_json::json!({
        "iss": "fetch-tests-issuer", "sub": user, "aud": param("service"),
        "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("{now}-{}", std::process::id()),
        "access": [{"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}],
    });
    let signing_input = format!("{}.{}", url.encode(header.to_string()), url.encode(claims.to_string()));
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    child.stdin.take().expect("piped").write_all(signing_input.as_bytes())?;
    let mut signature = Vec::new();
    child.stdout.take().expect("piped").read_to_end(&mut signature)?;
    child.wait()?;
    let body = serde_json::json!({"token": format!("{signing_input}.{}", url.encode(signature)), "expires_in": 300})
        .to_string();
    write!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(s.get(i + 1..i + 3).unwrap_or(""), 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn bearer_tokens_from_a_token_service_with_the_real_registry_checking_them() {
    let f = Fixtures::make();
    let storage = populated(&f);
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = (dir.path().join("token.key"), dir.path().join("token.crt"));
    run(Command::new(tool("openssl", "openssl"))
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=fetch-tests-issuer",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert));
    let der_path = dir.path().join("token.der");
    run(Command::new("openssl")
        .args(["x509", "-outform", "DER", "-in"])
        .arg(&cert)
        .arg("-out")
        .arg(&der_path));
    let tokens = TokenServer::start(key, fs::read(&der_path).unwrap(), "ci", "token-password");
    let realm_host = format!("127.0.0.1:{}", tokens.port);
    let reg = Registry::on(
        storage.path(),
        &format!(
            "auth:\n  token:\n    realm: http://{realm_host}/token\n    service: fetch-tests-registry\n    issuer: \
             fetch-tests-issuer\n    rootcertbundle: {}\n",
            cert.display()
        ),
    );
    let reference = r(&format!("{}/library/app:2.1", reg.addr()));
    let entry = |password: &str| {
        format!(
            "[registries.\"{}\"]\nusername = \"ci\"\npassword = \"{password}\"\n",
            reg.addr()
        )
    };

    // The realm is plain HTTP: credentials go there only when it is listed as insecure.
    let cache = tempfile::tempdir().unwrap();
    let mut o = opts(cache.path(), &[reg.addr(), realm_host.clone()]);
    o.auth = auths(&entry("token-password"));
    let img = one(std::slice::from_ref(&reference), &o);
    assert_eq!(img.digest, f.app);
    assert_cached(&img);
    assert_eq!(
        tokens.requests.load(Ordering::SeqCst),
        1,
        "one token per (host, scope), reused for every blob"
    );

    let cache = tempfile::tempdir().unwrap();
    let mut wrong = opts(cache.path(), &[reg.addr(), realm_host.clone()]);
    wrong.auth = auths(&entry("nope"));
    match only_error(std::slice::from_ref(&reference), &wrong) {
        FetchError::Unauthorized { hint, .. } => assert!(hint.contains("were rejected"), "{hint}"),
        other => panic!("{other}"),
    }

    let mut not_insecure = opts(cache.path(), &[reg.addr()]);
    not_insecure.auth = auths(&entry("token-password"));
    match only_error(std::slice::from_ref(&reference), &not_insecure) {
        FetchError::Unauthorized { hint, .. } => assert!(hint.contains("refusing to send the credentials"), "{hint}"),
        other => panic!("{other}"),
    }
}

// ---------------------------------------------------------------------------------------------
// TLS and transport errors

#[test]
fn tls_needs_the_ca_and_plain_http_needs_insecure() {
    let f = Fixtures::make();
    let storage = populated(&f);
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let openssl = tool("openssl", "openssl");
    run(Command::new(&openssl)
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=fetch-tests-ca",
        ])
        .arg("-keyout")
        .arg(p("ca.key"))
        .arg("-out")
        .arg(p("ca.crt")));
    run(Command::new(&openssl)
        .args(["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1"])
        .arg("-keyout")
        .arg(p("tls.key"))
        .arg("-out")
        .arg(p("tls.csr")));
    fs::write(
        p("ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(Command::new(&openssl)
        .args(["x509", "-req", "-days", "2", "-set_serial", "2"])
        .arg("-in")
        .arg(p("tls.csr"))
        .arg("-CA")
        .arg(p("ca.crt"))
        .arg("-CAkey")
        .arg(p("ca.key"))
        .arg("-extfile")
        .arg(p("ext"))
        .arg("-out")
        .arg(p("tls.crt")));
    let tls = Registry::on(
        storage.path(),
        &format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            p("tls.crt").display(),
            p("tls.key").display()
        ),
    );
    let reference = r(&format!("{}/library/busybox:1.36", tls.addr()));
    let cache = tempfile::tempdir().unwrap();

    let o = opts(cache.path(), &[]);
    let e = only_error(std::slice::from_ref(&reference), &o);
    assert!(matches!(e, FetchError::Tls { .. }), "{e}");
    let mut with_ca = o.clone();
    with_ca.ca_file = Some(p("ca.crt"));
    assert_eq!(one(std::slice::from_ref(&reference), &with_ca).digest, f.busybox);

    // Plain HTTP registry, not listed as insecure: TLS fails and the hint says what to do.
    let plain = Registry::on(storage.path(), "");
    match only_error(&[r(&format!("{}/library/busybox:1.36", plain.addr()))], &o) {
        FetchError::Tls { hint, endpoint, .. } => {
            assert_eq!(endpoint, format!("https://{}", plain.addr()));
            assert!(
                hint.contains(&format!("--insecure-registry {}", plain.addr())),
                "{hint}"
            );
        }
        other => panic!("{other}"),
    }
    // Nothing listening.
    let port = free_port();
    let err = only_error(
        &[r(&format!("127.0.0.1:{port}/library/busybox:1.36"))],
        &opts(cache.path(), &[format!("127.0.0.1:{port}")]),
    );
    assert!(matches!(err, FetchError::Connect { .. }), "{err}");
    // A missing CA file is reported before anything is fetched.
    let mut bad_ca = o.clone();
    bad_ca.ca_file = Some(p("absent.pem"));
    assert!(matches!(
        only_error(std::slice::from_ref(&reference), &bad_ca),
        FetchError::BadCaFile { .. }
    ));
}

// ---------------------------------------------------------------------------------------------
// Local sources

#[test]
fn local_oci_layouts_are_used_before_any_registry() {
    let f = Fixtures::make();
    let cache = tempfile::tempdir().unwrap();
    let mut o = Options::new(cache.path());
    o.sources = vec![
        format!("busybox={}", f.layout("busybox").display()).parse().unwrap(),
        format!("docker.io/library/app={}", f.layout("app").display())
            .parse()
            .unwrap(),
    ];
    // Both names are Docker Hub's: only a local match keeps these fetches off the network, and
    // a miss would be a Connect error to registry-1.docker.io, so the first assertion guards.
    let store = LocalStore::open(&o.sources[0]).unwrap();
    assert!(store.find(&r("busybox:1.36")).is_some());
    assert!(store.find(&r("busybox:1.35")).is_none());
    assert!(
        store.find(&r("quay.io/other/busybox:1.36")).is_none(),
        "a bare tag needs the source's name"
    );
    let unnamed = LocalStore::open(&LocalSource::new(f.layout("busybox"), None).unwrap()).unwrap();
    assert!(unnamed.find(&r("busybox:1.36")).is_none());
    assert!(
        unnamed.find(&r(&format!("busybox@{}", f.busybox))).is_some(),
        "digests match anywhere"
    );

    let images = fetch_all(&[r("busybox:1.36"), r("app:2.1")], &o, &bundle_format::Quiet).unwrap();
    assert_eq!(images[0].digest, f.busybox);
    assert_eq!(images[1].digest, f.app);
    assert_eq!(images[1].media_type, OCI_INDEX);
    assert_eq!(images[1].blobs.len(), 5);
    images.iter().for_each(assert_cached);

    // A blob of the layout that does not match its name is refused.
    let cache2 = tempfile::tempdir().unwrap();
    let layout = tempfile::tempdir().unwrap();
    run(Command::new("cp").arg("-a").arg(f.layout("busybox")).arg(layout.path()));
    let copy = layout.path().join("busybox");
    let blob = copy
        .join("blobs/sha256")
        .join(BASE_LAYER.strip_prefix("sha256:").unwrap());
    let mut bytes = fs::read(&blob).unwrap();
    bytes[100] ^= 1;
    fs::write(&blob, bytes).unwrap();
    let mut tampered = Options::new(cache2.path());
    tampered.sources = vec![format!("busybox={}", copy.display()).parse().unwrap()];
    assert!(matches!(
        only_error(&[r("busybox:1.36")], &tampered),
        FetchError::DigestMismatch { .. }
    ));
    assert!(leftovers(cache2.path()).is_empty());
}

#[test]
fn docker_and_oci_archives_made_by_skopeo() {
    let f = Fixtures::make();
    let skopeo = tool("skopeo", "skopeo");
    let dir = tempfile::tempdir().unwrap();
    let docker_tar = dir.path().join("busybox-docker.tar");
    let oci_tar = dir.path().join("app-oci.tar");
    run(Command::new(&skopeo)
        .args(["--insecure-policy", "copy", "-q"])
        .arg(format!("oci:{}:1.36", f.layout("busybox").display()))
        .arg(format!(
            "docker-archive:{}:docker.io/library/busybox:1.36",
            docker_tar.display()
        )));
    run(Command::new(&skopeo)
        .args(["--insecure-policy", "copy", "-q", "--all"])
        .arg(format!("oci:{}:2.1", f.layout("app").display()))
        .arg(format!("oci-archive:{}:2.1", oci_tar.display())));

    let cache = tempfile::tempdir().unwrap();
    let mut o = Options::new(cache.path());
    o.sources = vec![
        LocalSource::new(&docker_tar, None).unwrap(),
        format!("app={}", oci_tar.display()).parse().unwrap(),
    ];
    let busybox = r("busybox:1.36");
    let app = r("docker.io/library/app:2.1");
    assert!(
        LocalStore::open(&o.sources[0]).unwrap().find(&busybox).is_some(),
        "guard: no network fallback"
    );
    assert!(
        LocalStore::open(&o.sources[1]).unwrap().find(&app).is_some(),
        "guard: no network fallback"
    );

    let images = fetch_all(&[busybox.clone(), app], &o, &bundle_format::Quiet).unwrap();
    let d = &images[0];
    assert_eq!(d.media_type, DOCKER_MANIFEST);
    assert_eq!(d.platforms, vec!["linux/amd64"]);
    let m: serde_json::Value = serde_json::from_slice(&fs::read(&d.blobs[0].path).unwrap()).unwrap();
    assert_eq!(m["layers"][0]["mediaType"], DOCKER_LAYER);
    // The layer is stored uncompressed under its diff_id, as the config lists it.
    let config: serde_json::Value = serde_json::from_slice(&fs::read(&d.blobs[1].path).unwrap()).unwrap();
    assert_eq!(m["layers"][0]["digest"], config["rootfs"]["diff_ids"][0]);
    assert_cached(d);
    assert_eq!(images[1].digest, f.app);
    assert_cached(&images[1]);

    // Same archive, same manifest bytes: the written manifest is reproducible.
    let cache2 = tempfile::tempdir().unwrap();
    let mut o2 = o.clone();
    o2.cache_dir = cache2.path().to_path_buf();
    assert_eq!(one(std::slice::from_ref(&busybox), &o2).digest, d.digest);
}
