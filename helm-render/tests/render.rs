//! Integration tests: the real charts of the shared corpus (read in place, skipped when the
//! corpus is absent) and hand-made fixture charts reproducing constructs of public charts.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use helm_render::{load_yaml, render, split_manifests, ChartFiles, Options, Rendered, Value};

fn corpus(rel: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/corpus")
        .join(rel);
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!("note: {} is absent; skipping", p.display());
        None
    }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// Every `image:` string value in the rendered YAML documents.
fn images(r: &Rendered) -> BTreeSet<String> {
    fn walk(v: &Value, out: &mut BTreeSet<String>) {
        match v {
            Value::Map(m) => {
                for (k, x) in m {
                    if k == "image" {
                        if let Value::String(s) = x {
                            out.insert(s.clone());
                        }
                    }
                    walk(x, out);
                }
            }
            Value::List(l) => l.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    for f in &r.files {
        for doc in split_manifests(&f.content) {
            match load_yaml(&doc) {
                Ok(d) => walk(&d, &mut out),
                Err(e) => panic!("{} does not parse as YAML: {e}\n{doc}", f.path),
            }
        }
    }
    out
}

fn render_dir(dir: &Path, overrides: &[&str]) -> Rendered {
    let chart = ChartFiles::from_dir(dir).expect("chart reads");
    let opts = Options {
        release_name: "release-name".into(),
        namespace: "default".into(),
        kube_version: "v1.35.1".into(),
        api_versions: Vec::new(),
        values_overrides: overrides.iter().map(|s| s.as_bytes().to_vec()).collect(),
    };
    let r = render(&chart, &opts).expect("chart loads");
    for f in &r.failures {
        eprintln!("FAILURE {}:{}: {}", f.path, f.line, f.reason);
    }
    r
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn all_text(r: &Rendered) -> String {
    r.files
        .iter()
        .map(|f| f.content.as_str())
        .collect::<Vec<_>>()
        .join("\n---\n")
}

#[test]
fn metrics_server_renders_the_v_prefixed_tag() {
    let Some(dir) = corpus("charts/C04-metrics-server/context/charts/metrics-server") else {
        return;
    };
    let r = render_dir(&dir, &[]);
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    assert_eq!(
        images(&r),
        set(&["registry.k8s.io/metrics-server/metrics-server:v0.8.1"])
    );
    let r = render_dir(&dir, &["addonResizer:\n  enabled: true\n"]);
    assert!(
        images(&r).contains("registry.k8s.io/autoscaling/addon-resizer:1.8.23"),
        "{:?}",
        images(&r)
    );
}

#[test]
fn cert_manager_renders_all_components() {
    let Some(dir) = corpus("charts/C02-cert-manager/context/charts/cert-manager") else {
        return;
    };
    let r = render_dir(&dir, &[]);
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    assert_eq!(
        images(&r),
        set(&[
            "quay.io/jetstack/cert-manager-controller:v1.19.6",
            "quay.io/jetstack/cert-manager-webhook:v1.19.6",
            "quay.io/jetstack/cert-manager-cainjector:v1.19.6",
            "quay.io/jetstack/cert-manager-startupapicheck:v1.19.6",
        ])
    );
    assert!(all_text(&r).contains("--acme-http01-solver-image=quay.io/jetstack/cert-manager-acmesolver:v1.19.6"));
}

#[test]
fn longhorn_renders_images_and_arguments() {
    let Some(dir) = corpus("charts/C06-longhorn/context/charts/longhorn") else {
        return;
    };
    let r = render_dir(&dir, &[]);
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    assert_eq!(
        images(&r),
        set(&["longhornio/longhorn-manager:v1.6.0", "longhornio/longhorn-ui:v1.6.0"]),
        "the chart writes no registry: Docker Hub is implied"
    );
    let text = all_text(&r);
    for needle in [
        "longhornio/longhorn-engine:v1.6.0",
        "longhornio/longhorn-instance-manager:v1.6.0",
        "longhornio/longhorn-share-manager:v1.6.0",
        "longhornio/backing-image-manager:v1.6.0",
        "longhornio/support-bundle-kit:v0.0.33",
        "longhornio/csi-attacher:v4.4.2",
        "longhornio/csi-provisioner:v3.6.2",
        "longhornio/csi-node-driver-registrar:v2.9.2",
        "longhornio/csi-resizer:v1.9.2",
        "longhornio/csi-snapshotter:v6.3.2",
        "longhornio/livenessprobe:v2.11.0",
    ] {
        assert!(text.contains(needle), "{needle} missing");
    }
}

#[test]
fn bitnami_postgresql_renders_through_the_common_library() {
    let Some(dir) = corpus("kubefiles/K14-sealos-bitnami-postgresql/context/charts/postgresql") else {
        return;
    };
    let r = render_dir(&dir, &[]);
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    assert_eq!(images(&r), set(&["docker.io/bitnami/postgresql:17.6.0-debian-12-r4"]));
    let r = render_dir(
        &dir,
        &["metrics:\n  enabled: true\nvolumePermissions:\n  enabled: true\n"],
    );
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    assert_eq!(
        images(&r),
        set(&[
            "docker.io/bitnami/postgresql:17.6.0-debian-12-r4",
            "docker.io/bitnami/postgres-exporter:0.17.1-debian-12-r16",
            "docker.io/bitnami/os-shell:12-debian-12-r51",
        ])
    );
}
