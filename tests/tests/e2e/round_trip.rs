//! A bundle gives back exactly what went in, the same way every time, and customers can check
//! it with coreutils and OpenSSH alone.

use std::fs;
use std::process::{Command, Stdio};

use crate::support::*;

#[test]
fn larger_bundle_round_trips_every_entry_byte_for_byte() {
    let t = tempfile::tempdir().unwrap();
    let keys = keygen(t.path(), "vendor");
    let (kubefile, ctx) = larger_context(t.path(), 3);
    let bundle = t.path().join("larger.run");
    build_ok(&kubefile, Some(&ctx), &keys.private, &bundle, &[]);

    // Stored blobs are really stored (not recompressed), the rest really compressed.
    let tr = trailer(&bundle);
    assert!(tr.blobs_len() >= 9 << 20, "the three random layers are stored blobs");
    assert!(
        tr.stream_len() < 8 << 20,
        "the compressible part shrank: {} bytes",
        tr.stream_len()
    );

    let out = t.path().join("out");
    ok(Command::new(&bundle)
        .arg("extract")
        .arg("--to")
        .arg(&out)
        .arg("--key")
        .arg(&keys.public));
    assert_eq!(tree(&out), tree(&ctx), "extracted tree differs from the context");
    let top = fs::metadata(&out).unwrap();
    assert!(top.is_dir());

    // The manifest lists every entry with the digest of what was extracted.
    let listing = ok(Command::new(&bundle).args(["list", "--json"]));
    let lines: Vec<serde_json::Value> = String::from_utf8(listing.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), tree(&ctx).len());
    for l in &lines {
        let d = &l["data"];
        if d["type"] == "file" {
            let bytes = fs::read(out.join(d["path"].as_str().unwrap())).unwrap();
            assert_eq!(
                d["sha256"],
                bundle_format::Digest::of(&bytes).to_string(),
                "{}",
                d["path"]
            );
        }
    }
}

#[test]
fn two_builds_are_byte_identical() {
    let t = tempfile::tempdir().unwrap();
    let keys = keygen(t.path(), "vendor");
    let (kubefile, ctx) = larger_context(t.path(), 1);
    let (a, b) = (t.path().join("a.run"), t.path().join("b.run"));
    build_ok(&kubefile, Some(&ctx), &keys.private, &a, &[]);
    build_ok(&kubefile, Some(&ctx), &keys.private, &b, &[]);
    assert!(
        fs::read(&a).unwrap() == fs::read(&b).unwrap(),
        "same inputs and key gave different bundles"
    );
    // Without SOURCE_DATE_EPOCH the time comes from the inputs, not the clock.
    let run_without_epoch = |out: &std::path::Path| {
        let mut cmd = Command::new(delivery());
        cmd.arg("build")
            .arg("-f")
            .arg(&kubefile)
            .arg("--context")
            .arg(&ctx)
            .arg("--key")
            .arg(&keys.private);
        cmd.arg("-o")
            .arg(out)
            .arg("--stub")
            .arg(stub())
            .env_remove("SOURCE_DATE_EPOCH");
        ok(&mut cmd);
    };
    let (c, d) = (t.path().join("c.run"), t.path().join("d.run"));
    run_without_epoch(&c);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    run_without_epoch(&d);
    assert!(
        fs::read(&c).unwrap() == fs::read(&d).unwrap(),
        "the build clock leaked into the bundle"
    );
}

#[test]
fn demo_bundle_passes_sha256sum_ssh_keygen_and_both_verifiers() {
    let t = tempfile::tempdir().unwrap();
    let keys = keygen(t.path(), "vendor");
    let bundle = t.path().join("delivery.run");
    build_demo(&keys.private, &bundle);

    ok(Command::new("sha256sum")
        .arg("-c")
        .arg("delivery.run.sha256")
        .current_dir(t.path()));
    let ssh_verify = |file: &std::path::Path| {
        run_with_stdin(
            Command::new("ssh-keygen")
                .args(["-Y", "verify", "-f"])
                .arg(&keys.allowed_signers)
                .args(["-I", "vendor", "-n", "delivery", "-s"])
                .arg(t.path().join("delivery.run.sig"))
                .stdin(Stdio::from(fs::File::open(file).unwrap())),
        )
    };
    assert!(
        ssh_verify(&bundle).status.success(),
        "ssh-keygen rejected the good bundle"
    );
    ok(Command::new(delivery())
        .arg("verify")
        .arg(&bundle)
        .arg("--key")
        .arg(&keys.public));
    ok(Command::new(&bundle).arg("verify").arg("--key").arg(&keys.public));
    let fp = ok(Command::new("ssh-keygen").arg("-lf").arg(&keys.public));
    let fp = String::from_utf8(fp.stdout)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    ok(Command::new(&bundle).args(["verify", "--fingerprint", &fp]));

    let info = ok(Command::new(&bundle)
        .args(["info", "--json", "--key"])
        .arg(&keys.public));
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["data"]["name"], "demo");
    assert_eq!(info["data"]["version"], "1.0.0");
    assert_eq!(info["data"]["signer"], fp.as_str());
    assert_eq!(info["data"]["origin_checked"], true);
    assert_eq!(info["data"]["launch"]["apps"][0], "hello");

    // A tampered copy: both customer tools say no.
    let mut bytes = fs::read(&bundle).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0x01;
    let tampered = t.path().join("tampered.run");
    fs::write(&tampered, &bytes).unwrap();
    assert!(
        !ssh_verify(&tampered).status.success(),
        "ssh-keygen accepted a tampered bundle"
    );
    let sums = format!(
        "{}  tampered.run\n",
        fs::read_to_string(t.path().join("delivery.run.sha256"))
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
    );
    fs::write(t.path().join("tampered.run.sha256"), sums).unwrap();
    let o = run(Command::new("sha256sum")
        .arg("-c")
        .arg("tampered.run.sha256")
        .current_dir(t.path()));
    assert!(!o.status.success(), "sha256sum accepted a tampered bundle");
}

#[test]
fn the_file_stream_opens_with_plain_zstd_and_tar() {
    // The README's recovery path: no delivery tools needed to get the files out.
    let t = tempfile::tempdir().unwrap();
    let keys = keygen(t.path(), "vendor");
    let (kubefile, ctx) = larger_context(t.path(), 1);
    let bundle = t.path().join("b.run");
    build_ok(&kubefile, Some(&ctx), &keys.private, &bundle, &[]);
    let tr = trailer(&bundle);
    let out = t.path().join("plain");
    fs::create_dir(&out).unwrap();
    let script = format!(
        "dd if='{}' iflag=skip_bytes,count_bytes skip={} count={} bs=4M status=none | zstd -dc | tar -x -C '{}'",
        bundle.display(),
        tr.stream_offset,
        tr.stream_len(),
        out.display()
    );
    ok(Command::new("bash").args(["-o", "pipefail", "-c", &script]));
    assert_eq!(
        fs::read(out.join("manifests/big.yaml")).unwrap(),
        fs::read(ctx.join("manifests/big.yaml")).unwrap()
    );
    assert_eq!(
        fs::read_link(out.join("bin/tool-alias")).unwrap().to_str(),
        Some("tool")
    );
}

#[test]
fn extract_refuses_a_non_empty_directory_and_converges_after_a_kill() {
    let t = tempfile::tempdir().unwrap();
    let keys = keygen(t.path(), "vendor");
    let bundle = t.path().join("delivery.run");
    build_demo(&keys.private, &bundle);
    let dest = t.path().join("dest");
    fs::create_dir(&dest).unwrap();
    fs::write(dest.join("keep"), b"user data").unwrap();
    let o = run(Command::new(&bundle).arg("extract").arg("--to").arg(&dest));
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert_eq!(fs::read(dest.join("keep")).unwrap(), b"user data");

    // What a killed extraction leaves behind is cleaned up by the next run.
    let partial = t.path().join(".dest.delivery-partial");
    fs::create_dir_all(partial.join("half")).unwrap();
    ok(Command::new(&bundle)
        .arg("extract")
        .arg("--to")
        .arg(&dest)
        .arg("--overwrite"));
    assert!(!partial.exists());
    assert!(!dest.join("keep").exists());
    assert!(dest.join("manifests/hello.yaml").exists());
}

#[test]
fn concurrent_extracts_into_one_destination_never_report_success_with_a_wrong_tree() {
    // Found by fuzzing: the second extract deleted the first's staging directory, and the
    // first then renamed an empty tree into place and reported success.
    let t = tempfile::tempdir().unwrap();
    let keys = keygen(t.path(), "vendor");
    let (kubefile, ctx) = larger_context(&t.path().join("big"), 24);
    let bundle = t.path().join("big.run");
    build_ok(&kubefile, Some(&ctx), &keys.private, &bundle, &[]);
    for overwrite in [false, true] {
        let dest = t.path().join(format!("dest-{overwrite}"));
        if overwrite {
            fs::create_dir_all(dest.join("old")).unwrap();
            fs::write(dest.join("old/file"), b"replaced").unwrap();
        }
        let racers: Vec<_> = (0..6)
            .map(|_| {
                let mut c = Command::new(&bundle);
                c.arg("extract").arg("--to").arg(&dest).arg("--key").arg(&keys.public);
                if overwrite {
                    c.arg("--overwrite");
                }
                crate::support::retry_busy(|| c.stderr(std::process::Stdio::piped()).spawn())
            })
            .collect();
        let mut won = 0;
        for r in racers {
            let o = r.wait_with_output().unwrap();
            if o.status.success() {
                won += 1;
                // Whoever reports success left the bundle's whole tree.
                assert_eq!(tree(&dest), tree(&ctx), "a successful extract left a wrong tree");
            } else {
                let err = stderr(&o);
                assert!(
                    err.contains("another extract into") || err.contains("exists and is not empty"),
                    "a loser fails with a clear message: {err}"
                );
            }
        }
        assert!(won >= 1, "no extract succeeded");
        assert_eq!(tree(&dest), tree(&ctx));
        // Nothing is left beside it: no staging directory, no lock file.
        let beside: Vec<String> = fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&format!(".dest-{overwrite}")))
            .collect();
        assert!(beside.is_empty(), "{beside:?}");
    }
}

#[test]
fn without_a_key_a_per_user_key_is_created_once_and_announced() {
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    fs::create_dir(&home).unwrap();
    let ctx = t.path().join("ctx");
    write(&ctx.join("a.txt"), b"a\n", 0o644);
    fs::write(ctx.join("Kubefile"), "FROM scratch\nCOPY a.txt a.txt\n").unwrap();
    let build_without_key = |out: &std::path::Path| {
        run(Command::new(delivery())
            .arg("build")
            .arg("-f")
            .arg(ctx.join("Kubefile"))
            .arg("-o")
            .arg(out)
            .arg("--stub")
            .arg(stub())
            .env("HOME", &home)
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("DELIVERY_SIGNING_KEY"))
    };
    let first = build_without_key(&t.path().join("one.run"));
    assert!(first.status.success(), "{}", stderr(&first));
    let key = home.join(".config/delivery/signing.key");
    let public = home.join(".config/delivery/signing.pub");
    assert_eq!(fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    let fp = ok(Command::new("ssh-keygen").arg("-lf").arg(&public));
    let fp = String::from_utf8(fp.stdout)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    assert!(
        stderr(&first).contains("created a signing key") && stderr(&first).contains(&fp),
        "{}",
        stderr(&first)
    );
    ok(Command::new(t.path().join("one.run"))
        .arg("verify")
        .arg("--key")
        .arg(&public));

    // The second build reuses it, silently.
    let second = build_without_key(&t.path().join("two.run"));
    assert!(second.status.success());
    assert!(
        !stderr(&second).contains("created a signing key"),
        "{}",
        stderr(&second)
    );
    ok(Command::new(t.path().join("two.run"))
        .arg("verify")
        .arg("--fingerprint")
        .arg(&fp));
}

#[test]
fn dry_run_prints_the_plan_and_writes_nothing() {
    let t = tempfile::tempdir().unwrap();
    let keys = keygen(t.path(), "vendor");
    let (kubefile, ctx) = larger_context(t.path(), 1);
    let out = t.path().join("plan.run");
    let o = build(&kubefile, Some(&ctx), &keys.private, &out, &["--dry-run", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!out.exists(), "--dry-run wrote the bundle");
    let lines: Vec<serde_json::Value> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["type"], "bundle");
    assert_eq!(lines[0]["data"]["name"], "larger");
    let storage = |path: &str| {
        let e = lines
            .iter()
            .find(|l| l["data"]["path"] == path)
            .unwrap_or_else(|| panic!("{path} not planned"));
        e["data"]["storage"].as_str().unwrap().to_string()
    };
    assert_eq!(
        storage("images/blobs/layer0.tar.gz"),
        "stored",
        "random data is stored as is"
    );
    assert_eq!(storage("manifests/big.yaml"), "compressed");
    assert_eq!(lines.iter().filter(|l| l["type"] == "entry").count(), tree(&ctx).len());
}

#[test]
fn check_config_accepts_the_example_and_points_at_every_error() {
    let t = tempfile::tempdir().unwrap();
    let example = ok(Command::new(stub()).arg("init-config"));
    let good = t.path().join("cluster.toml");
    fs::write(&good, &example.stdout).unwrap();
    let o = ok(Command::new(stub())
        .args(["check-config", "--json", "--config"])
        .arg(&good));
    let hosts = String::from_utf8(o.stdout).unwrap().lines().count();
    assert_eq!(hosts, 5, "the example expands to five hosts");

    let bad = t.path().join("bad.toml");
    fs::write(&bad, "name = \"x\"\n[ssh]\npassword = \"hunter2\"\n[[hosts]]\naddresses = [\"10.0.0.9-10.0.0.2\"]\nroles = [\"mastr\"]\n").unwrap();
    let o = run(Command::new(stub()).args(["check-config", "--config"]).arg(&bad));
    assert_eq!(code(&o), 1);
    let err = stderr(&o);
    for at in ["bad.toml:3:1:", "bad.toml:5:14:", "bad.toml:6:10:"] {
        assert!(err.contains(at), "missing {at} in: {err}");
    }
}
