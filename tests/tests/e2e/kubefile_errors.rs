//! What a vendor sees for a bad Kubefile: the file, line and column, every error at once,
//! exit code 1 and no output file.

use std::fs;

use crate::support::*;

fn build_err(kubefile_text: &str, setup: impl Fn(&std::path::Path)) -> (i32, String, bool) {
    let t = tempfile::tempdir().unwrap();
    let keys = keygen(t.path(), "vendor");
    let ctx = t.path().join("ctx");
    fs::create_dir(&ctx).unwrap();
    fs::write(ctx.join("present.yaml"), "a: 1\n").unwrap();
    setup(t.path());
    let kubefile = ctx.join("Kubefile");
    fs::write(&kubefile, kubefile_text).unwrap();
    let out = t.path().join("out.run");
    let o = build(&kubefile, None, &keys.private, &out, &[]);
    (code(&o), stderr(&o), out.exists())
}

#[test]
fn unknown_instructions_are_all_reported_with_line_and_column() {
    let (code, err, written) = build_err(
        "FROM scratch\n# a comment\n  ENTRYPOINT apt-get update\nCOPY present.yaml x\nADD a b\n",
        |_| {},
    );
    assert_eq!(code, 1);
    assert!(!written);
    assert!(err.contains("Kubefile:3:3: unknown instruction `ENTRYPOINT`"), "{err}");
    assert!(err.contains("Kubefile:5:1: unknown instruction `ADD`"), "{err}");
}

#[test]
fn continuation_lines_keep_their_own_line_numbers() {
    let (code, err, _) = build_err(
        "FROM scratch\nLABEL a=1 \\\n  b=2\nCOPY present.yaml \\\n     ${UNDEFINED} dest\n",
        |_| {},
    );
    assert_eq!(code, 1);
    assert!(err.contains("Kubefile:5:6:"), "{err}");
}

#[test]
fn missing_and_escaping_sources_name_the_source() {
    let (code, err, written) = build_err("FROM scratch\nCOPY missing.yaml dest\n", |_| {});
    assert_eq!(code, 1);
    assert!(!written);
    assert!(err.contains("Kubefile:2:6:") && err.contains("missing.yaml"), "{err}");

    let (code, err, _) = build_err("FROM scratch\nCOPY ../secret.txt dest\n", |root| {
        fs::write(root.join("secret.txt"), "s").unwrap();
    });
    assert_eq!(code, 1);
    assert!(err.contains("Kubefile:2:6:"), "{err}");

    let (code, err, _) = build_err("FROM scratch\nCOPY link dest\n", |root| {
        fs::write(root.join("secret.txt"), "s").unwrap();
        std::os::unix::fs::symlink(root.join("secret.txt"), root.join("ctx/link")).unwrap();
    });
    assert_eq!(code, 1);
    assert!(err.contains("Kubefile:2:6:"), "{err}");
}

#[test]
fn from_must_come_first_and_launch_names_real_apps() {
    let (code, err, _) = build_err("COPY present.yaml x\nFROM scratch\n", |_| {});
    assert_eq!(code, 1);
    assert!(err.contains("Kubefile:1:1:"), "{err}");
    let (code, err, _) = build_err(
        "FROM scratch\nAPP web local://present.yaml\nLAUNCH [\"web\", \"db\"]\n",
        |_| {},
    );
    assert_eq!(code, 1);
    assert!(err.contains("Kubefile:3:"), "{err}");
    assert!(err.contains("db"), "{err}");
}

#[test]
fn build_args_and_arch_expand() {
    let t = tempfile::tempdir().unwrap();
    let keys = keygen(t.path(), "vendor");
    let ctx = t.path().join("ctx");
    write(&ctx.join("bin/arm64/tool"), b"arm tool", 0o755);
    write(&ctx.join("bin/amd64/tool"), b"amd tool", 0o755);
    let kubefile = ctx.join("Kubefile");
    fs::write(
        &kubefile,
        "ARG RELEASE=1.0\nFROM scratch\nLABEL version=${RELEASE}\nCOPY bin/${ARCH}/tool usr/bin/tool\n",
    )
    .unwrap();
    let out = t.path().join("b.run");
    build_ok(
        &kubefile,
        None,
        &keys.private,
        &out,
        &["--arch", "arm64", "--build-arg", "RELEASE=2.5"],
    );
    let dest = t.path().join("x");
    ok(std::process::Command::new(&out).arg("extract").arg("--to").arg(&dest));
    assert_eq!(fs::read(dest.join("usr/bin/tool")).unwrap(), b"arm tool");
    let info = ok(std::process::Command::new(&out).args(["info", "--json"]));
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["data"]["version"], "2.5");
}

#[test]
fn parse_errors_and_missing_sources_are_reported_together() {
    let (code, err, written) = build_err(
        "FROM scratch\nENTRYPOINT x\nCOPY missing.yaml dest/\nCOPY present.yaml x\nADD a b\n",
        |_| {},
    );
    assert_eq!(code, 1);
    assert!(!written);
    assert!(err.contains("Kubefile:2:1: unknown instruction `ENTRYPOINT`"), "{err}");
    assert!(err.contains("Kubefile:5:1: unknown instruction `ADD`"), "{err}");
    assert!(err.contains("Kubefile:3:6:") && err.contains("missing.yaml"), "{err}");
    assert!(err.contains("3 errors in"), "{err}");
}

#[test]
fn a_kubefile_that_is_not_utf8_is_an_error_at_line_and_column() {
    let t = tempfile::tempdir().unwrap();
    let keys = keygen(t.path(), "vendor");
    let kubefile = t.path().join("Kubefile");
    fs::write(&kubefile, b"FROM scratch\nLABEL maintainer=Jos\xe9\n").unwrap();
    let o = build(&kubefile, None, &keys.private, &t.path().join("x.run"), &[]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("Kubefile:2:21: the Kubefile is not UTF-8 text"),
        "{}",
        stderr(&o)
    );
}
