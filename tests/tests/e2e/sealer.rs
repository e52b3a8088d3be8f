//! Real inputs nobody here wrote: every case of `../shared/corpus/` (public sealer and sealos
//! Kubefiles, Helm charts, upstream manifests), built as written with the real `delivery`
//! (`build --dry-run`, since nothing can be fetched here) and checked with
//! `delivery images --json` against the case's TRUTH.txt: every `[default]` image by its exact
//! name, nothing beyond `[optional]`, no trap. A `FROM <sealer image>` is mapped with `--base`
//! to a small base bundle built here. Also: `delivery base add | list`, and the rules that keep
//! a sealer idiom from losing images in silence.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;

fn corpus() -> Option<PathBuf> {
    let dir = workspace().join("../shared/corpus");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("note: {} is absent: corpus cases skipped", dir.display());
        None
    }
}

struct Truth {
    default: BTreeSet<String>,
    optional: BTreeSet<String>,
    traps: BTreeSet<String>,
}

fn truth(path: &Path) -> Truth {
    let mut t = Truth {
        default: BTreeSet::new(),
        optional: BTreeSet::new(),
        traps: BTreeSet::new(),
    };
    let mut section = "";
    for line in fs::read_to_string(path).unwrap().lines() {
        let line = line.split('#').next().unwrap().trim();
        if line.starts_with('[') {
            section = line;
            continue;
        }
        if line.is_empty() || line.contains(' ') {
            continue; // "none: ..." prose
        }
        let set = match section {
            "[default]" => &mut t.default,
            "[optional]" => &mut t.optional,
            "[not-deployed-traps]" => &mut t.traps,
            _ => continue,
        };
        set.insert(line.to_string());
    }
    t
}

/// The FROM text of a Kubefile, when it is not `scratch`.
fn from_of(kubefile: &Path) -> Option<String> {
    let text = fs::read_to_string(kubefile).unwrap();
    let line = text
        .lines()
        .find(|l| l.trim_start().to_ascii_uppercase().starts_with("FROM "))?;
    let word = line.split_whitespace().nth(1)?.to_string();
    (!word.eq_ignore_ascii_case("scratch")).then_some(word)
}

struct Base {
    run: PathBuf,
    key: PathBuf,
    signing: PathBuf,
    _dir: tempfile::TempDir,
}

/// A small signed base bundle (a file under `manifests/`, no images), to stand for a sealer
/// cluster image.
fn small_base() -> Base {
    let dir = tempfile::tempdir().unwrap();
    let keys = keygen(dir.path(), "platform");
    let ctx = dir.path().join("base");
    write(
        &ctx.join("manifests/README"),
        b"the base's own manifests directory\n",
        0o644,
    );
    write(
        &ctx.join("Kubefile"),
        b"FROM scratch\nLABEL name=base version=1\nCOPY manifests manifests\n",
        0o644,
    );
    let run = dir.path().join("base.run");
    build_ok(&ctx.join("Kubefile"), None, &keys.private, &run, &[]);
    Base {
        run,
        key: keys.public,
        signing: keys.private,
        _dir: dir,
    }
}

fn images_json(out: &std::process::Output) -> BTreeSet<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["type"], "image", "{l}");
            v["data"]["reference"].as_str().unwrap().to_string()
        })
        .collect()
}

#[test]
fn every_corpus_case_builds_as_written_and_lists_exactly_its_images() {
    let Some(corpus) = corpus() else { return };
    let base = small_base();
    let mut cases: Vec<PathBuf> = Vec::new();
    for group in ["charts", "manifests", "kubefiles"] {
        for e in fs::read_dir(corpus.join(group)).unwrap() {
            let dir = e.unwrap().path();
            if dir.join("TRUTH.txt").exists() && dir.join("context/Kubefile").exists() {
                cases.push(dir);
            }
        }
    }
    cases.sort();
    assert!(cases.len() >= 5, "corpus has only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let kubefile = case.join("context/Kubefile");
        let mut extra: Vec<String> = vec!["--base-key".into(), base.key.to_str().unwrap().into()];
        if let Some(from) = from_of(&kubefile) {
            extra.push("--base".into());
            extra.push(format!("{from}={}", base.run.display()));
        }
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();

        let mut args = vec!["--dry-run"];
        args.extend(&extra);
        let o = build(&kubefile, None, &base.signing, &case.join("unused.run"), &args);
        if code(&o) != 0 {
            failures.push(format!("{name}: build --dry-run failed:\n{}", stderr(&o)));
            continue;
        }
        let o = run(Command::new(delivery())
            .args(["images", "--json", "-f"])
            .arg(&kubefile)
            .args(&extra));
        if code(&o) != 0 {
            failures.push(format!("{name}: images failed:\n{}", stderr(&o)));
            continue;
        }
        let found = images_json(&o);
        let t = truth(&case.join("TRUTH.txt"));
        let missing: Vec<_> = t.default.difference(&found).collect();
        let extra_found: Vec<_> = found
            .iter()
            .filter(|f| !t.default.contains(*f) && !t.optional.contains(*f))
            .collect();
        let traps: Vec<_> = found.intersection(&t.traps).collect();
        if !missing.is_empty() || !extra_found.is_empty() || !traps.is_empty() {
            failures.push(format!(
                "{name}: missing {missing:?}, not in the truth {extra_found:?}, traps {traps:?}\n{}",
                stderr(&o)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

#[test]
fn from_a_sealer_image_resolves_through_base_or_the_store_and_says_both_ways_out() {
    let t = tempfile::tempdir().unwrap();
    let base = small_base();
    let ctx = t.path().join("app");
    write(
        &ctx.join("manifest.yaml"),
        b"apiVersion: v1\nkind: Pod\nmetadata: {name: z}\nspec:\n  containers:\n    - name: z\n      image: docker.io/bitnami/zookeeper:3.7.0\n",
        0o644,
    );
    // sealer's zookeeper app, as its catalogue writes it
    write(
        &ctx.join("Kubefile"),
        b"FROM registry.example/sealer-apps/openebs-localpv:2.11.0\nRUN mkdir zookeeper\nCOPY manifest.yaml zookeeper\nCMD kubectl apply -f zookeeper/manifest.yaml",
        0o644,
    );
    let kubefile = ctx.join("Kubefile");
    let store = t.path().join("store");
    let store_arg = ["--base-store", store.to_str().unwrap()];

    // Unresolved: an error at the FROM's line and column, with both ways out.
    let o = build(
        &kubefile,
        None,
        &base.signing,
        &t.path().join("x.run"),
        &["--dry-run", store_arg[0], store_arg[1]],
    );
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("Kubefile:1:6: FROM `registry.example/sealer-apps/openebs-localpv:2.11.0`"),
        "{err}"
    );
    assert!(
        err.contains("--base registry.example/sealer-apps/openebs-localpv:2.11.0=FILE"),
        "{err}"
    );
    assert!(err.contains("delivery base add FILE --key KEY --name"), "{err}");
    // `images` still lists the Kubefile's own, and says the base's are missing.
    let o = ok(Command::new(delivery())
        .args(["images", "--json", "-f"])
        .arg(&kubefile)
        .args(store_arg));
    assert_eq!(
        images_json(&o),
        BTreeSet::from(["docker.io/bitnami/zookeeper:3.7.0".to_string()])
    );
    assert!(stderr(&o).contains("images of base"), "{}", stderr(&o));

    // The store: add (verified against the key), list, and the build resolves by name.
    let other = keygen(t.path(), "other");
    let o = run(Command::new(delivery())
        .args(["base", "add"])
        .arg(&base.run)
        .arg("--key")
        .arg(&other.public)
        .args(store_arg));
    assert_eq!(code(&o), 3, "a base signed by another key is refused: {}", stderr(&o));
    ok(Command::new(delivery())
        .args(["base", "add"])
        .arg(&base.run)
        .arg("--key")
        .arg(&base.key)
        .args(["--name", "registry.example/sealer-apps/openebs-localpv:2.11.0"])
        .args(store_arg));
    let o = ok(Command::new(delivery()).args(["base", "list"]).args(store_arg));
    let list = String::from_utf8_lossy(&o.stdout);
    assert!(
        list.contains("registry.example/sealer-apps/openebs-localpv:2.11.0"),
        "{list}"
    );
    assert!(list.contains("base:1"), "{list}");

    let out = t.path().join("app.run");
    // Nothing is fetched here: the image is left out explicitly.
    build_ok(
        &kubefile,
        None,
        &base.signing,
        &out,
        &[
            store_arg[0],
            store_arg[1],
            "--ignore-image",
            "docker.io/bitnami/zookeeper:3.7.0",
        ],
    );
    // RUN made zookeeper/ a directory, so the manifest went inside, as in sealer; the base's
    // files are there too.
    let o = ok(Command::new(&out).args(["list", "--json", "--key"]).arg(&base.key));
    let listing = String::from_utf8_lossy(&o.stdout);
    assert!(listing.contains("\"zookeeper/manifest.yaml\""), "{listing}");
    assert!(listing.contains("\"manifests/README\""), "{listing}");

    // --no-run refuses RUN, at its line.
    let o = build(
        &kubefile,
        None,
        &base.signing,
        &out,
        &["--dry-run", "--no-run", store_arg[0], store_arg[1]],
    );
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("Kubefile:2:1: RUN refused by --no-run"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn copy_into_a_sealer_rootfs_directory_never_loses_the_image_list() {
    let t = tempfile::tempdir().unwrap();
    let keys = keygen(t.path(), "k");
    let ctx = t.path().join("ctx");
    write(&ctx.join("imageList"), b"quay.io/calico/node:v3.22.1\n", 0o644);
    write(
        &ctx.join("tigera-operator.yaml"),
        b"apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        - name: o\n          image: quay.io/tigera/operator:v1.25.3\n",
        0o644,
    );
    write(&ctx.join("list.txt"), b"quay.io/calico/cni:v3.22.1\n", 0o644);
    write(
        &ctx.join("Kubefile"),
        b"FROM scratch\nCOPY imageList manifests\nCOPY tigera-operator.yaml manifests\nCOPY imageList etc/images-for-later\n",
        0o644,
    );
    let o = ok(Command::new(delivery())
        .args(["images", "--json", "-f"])
        .arg(ctx.join("Kubefile")));
    assert_eq!(
        images_json(&o),
        BTreeSet::from([
            "quay.io/calico/node:v3.22.1".to_string(),
            "quay.io/tigera/operator:v1.25.3".to_string()
        ])
    );
    // The copy renamed to a name discovery does not read is a warning at its line.
    let err = stderr(&o);
    assert!(
        err.contains("Kubefile:4:1: imageList looks like an image list but lands at etc/images-for-later"),
        "{err}"
    );

    // A bundle whose YAML names no image at all says so loudly.
    write(
        &ctx.join("cm.yaml"),
        b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
        0o644,
    );
    write(&ctx.join("Kubefile"), b"FROM scratch\nCOPY cm.yaml manifests\n", 0o644);
    let o = build(
        &ctx.join("Kubefile"),
        None,
        &keys.private,
        &t.path().join("x.run"),
        &["--dry-run"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("none of them names a container image"),
        "{}",
        stderr(&o)
    );
}

/// `python3 -m http.server` on loopback serving `dir`, killed on drop, and its port.
fn file_server(dir: &Path) -> (crate::images::Daemon, u16) {
    let port = crate::images::free_port();
    let daemon = crate::images::Daemon::spawn(
        Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
                "--directory",
            ])
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    );
    crate::images::wait_for("http.server", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    (daemon, port)
}

fn sha256_hex(bytes: &[u8]) -> String {
    let mut h = bundle_format::digest::Hasher::new();
    h.update(bytes);
    h.finish().hex()
}

#[test]
fn url_sources_are_downloaded_pinned_and_recorded() {
    let t = tempfile::tempdir().unwrap();
    let keys = keygen(t.path(), "k");
    let served = t.path().join("served");
    let app_yaml = b"apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        - name: a\n          image: example.com/team/app:1.0\n";
    let web_yaml =
        b"apiVersion: v1\nkind: Pod\nspec:\n  containers:\n    - name: w\n      image: example.com/team/web:2.0\n";
    write(&served.join("app.yaml"), app_yaml, 0o644);
    write(&served.join("web.yaml"), web_yaml, 0o644);
    let (_server, port) = file_server(&served);
    let base = format!("http://127.0.0.1:{port}");
    let ctx = t.path().join("ctx");
    let kubefile = ctx.join("Kubefile");
    let write_kubefile = |web_pin: &str| {
        write(
            &kubefile,
            format!(
                "FROM scratch\nCOPY {base}/app.yaml manifests\nAPP web {base}/web.yaml#sha256={web_pin}\nLAUNCH web\n"
            )
            .as_bytes(),
            0o644,
        )
    };
    write_kubefile(&sha256_hex(web_yaml));

    let o = ok(Command::new(delivery()).args(["images", "--json", "-f"]).arg(&kubefile));
    assert_eq!(
        images_json(&o),
        BTreeSet::from([
            "example.com/team/app:1.0".to_string(),
            "example.com/team/web:2.0".to_string()
        ])
    );
    // The unpinned one is named with its digest, so the vendor can pin it.
    assert!(
        stderr(&o).contains(&format!("#sha256={}", sha256_hex(app_yaml))),
        "{}",
        stderr(&o)
    );

    let o = build(
        &kubefile,
        None,
        &keys.private,
        &t.path().join("x.run"),
        &["--dry-run", "--require-checksums"],
    );
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("Kubefile:2:6: `http://127.0.0.1"), "{}", stderr(&o));
    assert!(stderr(&o).contains("--require-checksums"), "{}", stderr(&o));

    let out = t.path().join("app.run");
    let ignore = [
        "--ignore-image",
        "example.com/team/app:1.0",
        "--ignore-image",
        "example.com/team/web:2.0",
    ];
    build_ok(&kubefile, None, &keys.private, &out, &ignore);
    let o = ok(Command::new(&out).args(["info", "--json", "--key"]).arg(&keys.public));
    let info: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let downloads = info["data"]["downloads"].as_array().unwrap();
    assert_eq!(downloads.len(), 2, "{info}");
    assert!(downloads
        .iter()
        .any(|d| d["url"] == format!("{base}/web.yaml") && d["sha256"] == sha256_hex(web_yaml)));
    let o = ok(Command::new(&out).args(["list", "--json", "--key"]).arg(&keys.public));
    let listing = String::from_utf8_lossy(&o.stdout);
    assert!(listing.contains("\"manifests/app.yaml\""), "{listing}");
    assert!(listing.contains("\"application/apps/web/web.yaml\""), "{listing}");

    // A pin that does not match fails with both digests, and writes nothing.
    write_kubefile(&"0".repeat(64));
    let o = build(&kubefile, None, &keys.private, &t.path().join("y.run"), &ignore);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains(&sha256_hex(web_yaml)), "{}", stderr(&o));
    assert!(stderr(&o).contains("Kubefile:3:9"), "{}", stderr(&o));
    assert!(!t.path().join("y.run").exists());
}
