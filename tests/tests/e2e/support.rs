//! Shared fixtures: where the binaries are, keys, contexts, and building bundles.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bundle_format::layout::Trailer;

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the workspace")
        .to_path_buf()
}

fn bin_dir() -> PathBuf {
    std::env::var_os("DELIVERY_BIN_DIR").map_or_else(|| workspace().join("target/release"), PathBuf::from)
}

fn require(p: PathBuf) -> PathBuf {
    assert!(
        p.exists(),
        "{} is missing: build it first (./tests/run.sh does), or set DELIVERY_BIN_DIR / DELIVERY_STUB",
        p.display()
    );
    p
}

/// The `delivery` generator binary.
pub fn delivery() -> PathBuf {
    require(bin_dir().join("delivery"))
}

/// The stub to embed: the portable build (glibc 2.17), as shipped. `delivery build` refuses a
/// native stub, so a plain `cargo build` is not enough to run these tests.
pub fn stub() -> PathBuf {
    if let Some(p) = std::env::var_os("DELIVERY_STUB") {
        return require(PathBuf::from(p));
    }
    let portable = workspace().join("target/x86_64-unknown-linux-gnu/release/installer-stub");
    assert!(
        portable.exists(),
        "{} is missing: build the portable stub first (cargo zigbuild --release -p installer-stub \
         --target x86_64-unknown-linux-gnu.2.17; ./tests/run.sh does), or set DELIVERY_STUB",
        portable.display()
    );
    portable
}

/// Run a command with stdin closed, returning its output (never panics on a non-zero exit;
/// panics when it runs past [`command_deadline`]).
pub fn run(cmd: &mut Command) -> Output {
    run_with_stdin(cmd.stdin(Stdio::null()))
}

/// How long one command may run: `DELIVERY_E2E_COMMAND_TIMEOUT` seconds, 900 by default. A
/// command that hangs (an installer once deadlocked in `check`) fails its test with its output
/// so far, instead of holding CI until its time limit.
pub fn command_deadline() -> Duration {
    let secs = std::env::var("DELIVERY_E2E_COMMAND_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(900);
    Duration::from_secs(secs)
}

/// [`run`] with whatever stdin the command was given.
pub fn run_with_stdin(cmd: &mut Command) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = retry_busy(|| cmd.spawn());
    let collect = |pipe: Option<Box<dyn Read + Send>>| {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let reader = std::thread::spawn(move || {
            let Some(mut pipe) = pipe else { return };
            let mut buf = [0u8; 64 << 10];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        (seen, reader)
    };
    let (stdout, out_reader) = collect(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let (stderr, err_reader) = collect(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let limit = command_deadline();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} still ran after {} s (DELIVERY_E2E_COMMAND_TIMEOUT): killed. Output so far:\nstdout: {}\nstderr: {}",
                limit.as_secs(),
                String::from_utf8_lossy(&stdout.lock().unwrap()),
                String::from_utf8_lossy(&stderr.lock().unwrap())
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    out_reader.join().unwrap();
    err_reader.join().unwrap();
    let take = |v: Arc<Mutex<Vec<u8>>>| std::mem::take(&mut *v.lock().unwrap());
    Output {
        status,
        stdout: take(stdout),
        stderr: take(stderr),
    }
}

/// Run `start` again while it fails with ETXTBSY: a test thread that forks while another test
/// still holds its freshly written bundle open makes exec fail for a moment.
pub fn retry_busy<T>(mut start: impl FnMut() -> std::io::Result<T>) -> T {
    for _ in 0..100 {
        match start() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            result => return result.unwrap(),
        }
    }
    panic!("the bundle stayed busy (ETXTBSY) for 2 s");
}

/// Run and require success.
pub fn ok(cmd: &mut Command) -> Output {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}:\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A key pair in `dir`: (`PREFIX.key`, `PREFIX.pub`, `PREFIX.allowed_signers`).
pub struct Keys {
    pub private: PathBuf,
    pub public: PathBuf,
    pub allowed_signers: PathBuf,
}

pub fn keygen(dir: &Path, name: &str) -> Keys {
    let prefix = dir.join(name);
    ok(Command::new(delivery()).arg("keygen").arg("--out").arg(&prefix));
    let with = |ext: &str| PathBuf::from(format!("{}{ext}", prefix.display()));
    Keys {
        private: with(".key"),
        public: with(".pub"),
        allowed_signers: with(".allowed_signers"),
    }
}

/// `delivery build` with the test stub and a fixed SOURCE_DATE_EPOCH.
pub fn build(kubefile: &Path, context: Option<&Path>, key: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut cmd = Command::new(delivery());
    cmd.arg("build")
        .arg("-f")
        .arg(kubefile)
        .arg("--key")
        .arg(key)
        .arg("-o")
        .arg(out)
        .arg("--stub")
        .arg(stub());
    if let Some(c) = context {
        cmd.arg("--context").arg(c);
    }
    cmd.args(extra).env("SOURCE_DATE_EPOCH", "1700000000");
    run(&mut cmd)
}

pub fn build_ok(kubefile: &Path, context: Option<&Path>, key: &Path, out: &Path, extra: &[&str]) {
    let o = build(kubefile, context, key, out, extra);
    assert!(o.status.success(), "build failed: {}", stderr(&o));
}

/// Builds `kubefile` (context `context`) into `<work>/<name>` with a new vendor key in `work`,
/// busybox from the fixture layouts and a cache in `<work>/cache`: (bundle, public key).
pub fn build_with_busybox(kubefile: &Path, context: &Path, work: &Path, name: &str) -> (PathBuf, PathBuf) {
    let keys = keygen(work, "vendor");
    let out = work.join(name);
    let source = format!("busybox={}", fixture_layouts().join("busybox").display());
    let cache = work.join("cache");
    build_ok(
        kubefile,
        Some(context),
        &keys.private,
        &out,
        &["--image-source", &source, "--cache-dir", cache.to_str().unwrap()],
    );
    (out, keys.public)
}

/// The fixture OCI layouts (tests/fixtures/make-images.sh), made once per test process under
/// target/, where the demo's busybox image comes from.
pub fn fixture_layouts() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = workspace().join(format!("target/e2e-fixtures/{}", std::process::id()));
        ok(Command::new(workspace().join("tests/fixtures/make-images.sh")).arg(&dir));
        dir
    })
}

/// Build bundles/demo, its image taken from the fixture layout as `demo.sh` does.
pub fn build_demo(key: &Path, out: &Path) {
    let source = format!("busybox={}", fixture_layouts().join("busybox").display());
    let cache = out.with_extension("cache");
    let args = [
        "--image-source",
        &source,
        "--cache-dir",
        cache.to_str().expect("utf-8 temp path"),
    ];
    build_ok(&workspace().join("bundles/demo/Kubefile"), None, key, out, &args);
}

/// A deterministic pseudo-random byte generator (xorshift64*), for fixture content.
pub struct Noise(u64);

impl Noise {
    pub fn new(seed: u64) -> Self {
        Noise(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

pub fn write(path: &Path, bytes: &[u8], mode: u32) {
    fs::create_dir_all(path.parent().expect("fixture paths have parents")).expect("mkdir");
    fs::write(path, bytes).expect("write fixture");
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod fixture");
}

/// A context with every kind of entry: stored blobs (random), a multi-frame compressible file,
/// hundreds of small files, empty files, symlinks, odd modes, a long path and a non-ASCII name.
/// Returns the Kubefile path (outside the context).
pub fn larger_context(root: &Path, blob_mib: usize) -> (PathBuf, PathBuf) {
    let ctx = root.join("ctx");
    let mut noise = Noise::new(7);
    for i in 0..3 {
        write(
            &ctx.join(format!("images/blobs/layer{i}.tar.gz")),
            &noise.bytes(blob_mib << 20),
            0o644,
        );
    }
    // Compressible but not trivially: YAML-ish lines with varying numbers, ~10 MiB (3 frames).
    let mut yaml = String::new();
    let mut i = 0u64;
    while yaml.len() < 10 << 20 {
        i += 1;
        yaml.push_str(&format!(
            "- name: service-{i}\n  replicas: {}\n  version: \"{}\"\n",
            noise.next_u64() % 7,
            noise.next_u64() % 1000
        ));
    }
    write(&ctx.join("manifests/big.yaml"), yaml.as_bytes(), 0o644);
    for d in 0..20 {
        for f in 0..25 {
            let body = format!(
                "kind: ConfigMap\nmetadata: {{name: cm-{d}-{f}}}\ndata: {{x: \"{}\"}}\n",
                noise.next_u64()
            );
            write(
                &ctx.join(format!("manifests/dir{d:02}/cm{f:02}.yaml")),
                body.as_bytes(),
                0o644,
            );
        }
    }
    write(&ctx.join("bin/tool"), &noise.bytes(300_000), 0o755);
    write(&ctx.join("etc/secret.key"), b"not really secret\n", 0o600);
    write(&ctx.join("etc/empty"), b"", 0o644);
    let long = format!("deep/{}/{}/file-with-a-long-name.yaml", "a".repeat(80), "b".repeat(60));
    write(&ctx.join(long), b"long path\n", 0o644);
    write(&ctx.join("docs/café-ünïcode.txt"), "non-ASCII name\n".as_bytes(), 0o644);
    fs::create_dir_all(ctx.join("empty-dir")).expect("mkdir");
    std::os::unix::fs::symlink("../manifests/big.yaml", ctx.join("bin/link-to-yaml")).expect("symlink");
    std::os::unix::fs::symlink("tool", ctx.join("bin/tool-alias")).expect("symlink");
    let kubefile = root.join("Kubefile");
    fs::write(&kubefile, "FROM scratch\nLABEL name=larger version=2.0\nCOPY . .\n").expect("write Kubefile");
    (kubefile, ctx)
}

/// The trailer of a bundle on disk.
pub fn trailer(path: &Path) -> Trailer {
    let bytes = fs::read(path).expect("read bundle");
    let t: [u8; 64] = bytes[bytes.len() - 64..].try_into().expect("64 bytes");
    Trailer::decode(&t, (bytes.len() - 64) as u64).expect("a good trailer")
}

/// Every entry under `dir`, as (relative path, kind, mode, content or link target).
pub fn tree(dir: &Path) -> Vec<(String, char, u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("dir entry").path();
            let rel = p.strip_prefix(dir).expect("under dir").to_string_lossy().into_owned();
            let m = fs::symlink_metadata(&p).expect("lstat");
            let mode = m.permissions().mode() & 0o7777;
            if m.file_type().is_symlink() {
                out.push((
                    rel,
                    'l',
                    0,
                    fs::read_link(&p)
                        .expect("readlink")
                        .to_string_lossy()
                        .as_bytes()
                        .to_vec(),
                ));
            } else if m.is_dir() {
                out.push((rel, 'd', mode, Vec::new()));
                stack.push(p);
            } else {
                out.push((rel, 'f', mode, fs::read(&p).expect("read")));
            }
        }
    }
    out.sort();
    out
}
