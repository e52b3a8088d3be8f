//! `FROM <base delivery.run>`: the new bundle carries the base's content, once the base's
//! signature was checked against `--base-key`.

use std::fs;
use std::process::Command;

use crate::support::*;

#[test]
fn a_bundle_built_from_a_base_holds_both_contents() {
    let t = tempfile::tempdir().unwrap();
    let platform = keygen(t.path(), "platform");
    let vendor = keygen(t.path(), "vendor");
    let (base_kubefile, base_ctx) = larger_context(&t.path().join("base"), 1);
    let base = t.path().join("base.run");
    build_ok(&base_kubefile, Some(&base_ctx), &platform.private, &base, &[]);

    let ctx = t.path().join("app");
    write(&ctx.join("manifests/app.yaml"), b"kind: Deployment\n", 0o644);
    write(&ctx.join("manifests/big.yaml"), b"overridden\n", 0o644);
    let kubefile = ctx.join("Kubefile");
    fs::write(
        &kubefile,
        "FROM ../base.run\nLABEL name=app\nCOPY manifests manifests\n",
    )
    .unwrap();
    let app = t.path().join("app.run");

    // The base must be verified, with the key the caller names.
    let o = build(&kubefile, None, &vendor.private, &app, &[]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("--base-key"), "{}", stderr(&o));
    let o = build(
        &kubefile,
        None,
        &vendor.private,
        &app,
        &["--base-key", vendor.public.to_str().unwrap()],
    );
    assert_eq!(
        code(&o),
        3,
        "a base signed by another key must fail verification: {}",
        stderr(&o)
    );
    assert!(!app.exists());

    build_ok(
        &kubefile,
        None,
        &vendor.private,
        &app,
        &["--base-key", platform.public.to_str().unwrap()],
    );
    let out = t.path().join("out");
    ok(Command::new(&app)
        .arg("extract")
        .arg("--to")
        .arg(&out)
        .arg("--key")
        .arg(&vendor.public));
    // Everything of the base, except what the app replaced, plus the app's own files.
    let mut expected = tree(&base_ctx);
    for e in &mut expected {
        if e.0 == "manifests/big.yaml" {
            e.3 = b"overridden\n".to_vec();
        }
    }
    expected.push(("manifests/app.yaml".into(), 'f', 0o644, b"kind: Deployment\n".to_vec()));
    expected.sort();
    assert_eq!(tree(&out), expected);
    // Stored blobs of the base stay stored.
    assert!(trailer(&app).blobs_len() >= 3 << 20);
    let info = ok(Command::new(&app).args(["info", "--json"]));
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["data"]["bases"][0]["name"], "larger");
}
