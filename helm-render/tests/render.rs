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

#[test]
fn global_registry_merge_and_digest_like_ingress_nginx() {
    let dir = fixture("global-registry-digest");
    let r = render_dir(&dir, &[]);
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    assert_eq!(
        images(&r),
        set(&[
            "registry.k8s.io/ingress-nginx/controller:v1.15.1@sha256:1111111111111111111111111111111111111111111111111111111111111111",
            "registry.k8s.io/ingress-nginx/kube-webhook-certgen:v1.6.9",
            "registry.k8s.io/ingress-nginx/opentelemetry:v2",
        ])
    );
    // A vendor override: a mirror registry for everything, the chroot variant, no webhook.
    let r = render_dir(
        &dir,
        &[
            "global:\n  image:\n    registry: mirror.local\ncontroller:\n  image:\n    chroot: true\n",
            "admissionWebhooks:\n  enabled: false\n",
        ],
    );
    assert_eq!(
        images(&r),
        set(&[
            "mirror.local/ingress-nginx/controller-chroot:v1.15.1@sha256:2222222222222222222222222222222222222222222222222222222222222222",
            "registry.k8s.io/ingress-nginx/opentelemetry:v2",
        ]),
        "a module's own registry wins over global in merge"
    );
}

#[test]
fn printf_helper_with_v_prefixed_app_version_like_kube_state_metrics() {
    let dir = fixture("printf-image-helper");
    let r = render_dir(&dir, &[]);
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    assert_eq!(
        images(&r),
        set(&["registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.20.0"])
    );
    let r = render_dir(
        &dir,
        &["global:\n  imageRegistry: mirror.local\n  imagePullSecrets: [{name: a}, b]\nimage:\n  tag: v9\n  sha: abc\n"],
    );
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    assert_eq!(
        images(&r),
        set(&["mirror.local/kube-state-metrics/kube-state-metrics:v9@abc"])
    );
    // `indent` also pads the empty first line the helper starts with, as in Helm.
    assert!(
        all_text(&r).contains("imagePullSecrets:        \n        - name: a\n        - name: b"),
        "{}",
        all_text(&r)
    );
}

#[test]
fn subcharts_alias_condition_library_and_globals() {
    let dir = fixture("subchart-alias-condition");
    let r = render_dir(&dir, &[]);
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    assert_eq!(r.skipped_subcharts, vec!["platform/charts/extra".to_string()]);
    let paths: Vec<&str> = r.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "platform/charts/jobs/templates/job.yaml",
            "platform/templates/deployment.yaml"
        ]
    );
    assert_eq!(
        images(&r),
        set(&["mirror.local/acme/platform:3.0", "mirror.local/acme/worker:2.0"])
    );
    let text = all_text(&r);
    for needle in [
        "note: 'release-name-note'",
        "jobs-tag: \"2.0\"",
        "value: \"hello from files\"",
        "value: \"1e+06\"",
        "containerPort: 8080",
        "a.conf: |\n    a=1",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from\n{text}");
    }
    assert!(!text.contains("ServiceMonitor") && !text.contains("admin"));

    // Enabling the optional subchart makes its `required` fail for that file only.
    let chart = ChartFiles::from_dir(&dir).unwrap();
    let opts = Options {
        api_versions: vec!["monitoring.coreos.com/v1".into()],
        values_overrides: vec![b"extra:\n  enabled: true\nglobal:\n  imageRegistry: ''\n".to_vec()],
        ..Options::default()
    };
    let r = render(&chart, &opts).unwrap();
    assert!(r.skipped_subcharts.is_empty());
    assert_eq!(r.failures.len(), 1, "{:?}", r.failures);
    let f = &r.failures[0];
    assert_eq!(
        (f.path.as_str(), f.line),
        ("platform/charts/extra/templates/pod.yaml", 8)
    );
    assert!(f.reason.contains("required: extra needs an image"), "{}", f.reason);
    assert_eq!(
        images(&r),
        set(&["docker.io/acme/platform:3.0", "docker.io/acme/worker:2.0"])
    );
    assert!(all_text(&r).contains("kind: ServiceMonitor"));
}

#[test]
fn chart_from_tgz_renders_like_the_directory() {
    let dir = fixture("printf-image-helper");
    let mut tar = tar::Builder::new(Vec::new());
    tar.append_dir_all("kube-state-metrics", &dir).unwrap();
    let raw = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &raw).unwrap();
    let tgz = gz.finish().unwrap();
    let from_tgz = render(&ChartFiles::from_tgz(tgz.as_slice()).unwrap(), &Options::default()).unwrap();
    let from_dir = render(&ChartFiles::from_dir(&dir).unwrap(), &Options::default()).unwrap();
    assert_eq!(from_tgz, from_dir);
}

#[test]
fn subchart_packed_as_tgz_in_charts_renders_with_parent_values() {
    let sub = fixture("printf-image-helper");
    let mut tar = tar::Builder::new(Vec::new());
    tar.append_dir_all("kube-state-metrics", &sub).unwrap();
    let raw = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &raw).unwrap();
    let mut chart = ChartFiles::default();
    chart.files.insert(
        "Chart.yaml".into(),
        b"apiVersion: v2\nname: stack\nversion: 1.0.0\ndependencies:\n- name: kube-state-metrics\n  version: 6.0.0\n  condition: kube-state-metrics.enabled\n".to_vec(),
    );
    chart.files.insert(
        "values.yaml".into(),
        b"global:\n  imageRegistry: mirror.local\nkube-state-metrics:\n  enabled: true\n  image:\n    tag: v2.99.0\n"
            .to_vec(),
    );
    chart
        .files
        .insert("charts/kube-state-metrics-6.0.0.tgz".into(), gz.finish().unwrap());
    let r = render(&chart, &Options::default()).unwrap();
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    assert_eq!(
        r.files[0].path,
        "stack/charts/kube-state-metrics/templates/deployment.yaml"
    );
    assert_eq!(
        images(&r),
        set(&["mirror.local/kube-state-metrics/kube-state-metrics:v2.99.0"])
    );
    let off = Options {
        values_overrides: vec![b"kube-state-metrics:\n  enabled: false\n".to_vec()],
        ..Options::default()
    };
    let r = render(&chart, &off).unwrap();
    assert!(r.files.is_empty());
    assert_eq!(r.skipped_subcharts, vec!["stack/charts/kube-state-metrics".to_string()]);
}
