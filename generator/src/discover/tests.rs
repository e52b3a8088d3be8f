//! Discovery over whole bundles: manifests, image lists and charts together.

use super::*;
use std::io::Write;

/// A build context in a temp dir: files written to disk and listed as the bundle's.
pub(super) struct Bundle {
    dir: tempfile::TempDir,
    pub(super) files: Vec<(String, PathBuf)>,
}

impl Bundle {
    pub(super) fn new() -> Self {
        Bundle {
            dir: tempfile::tempdir().unwrap(),
            files: Vec::new(),
        }
    }

    pub(super) fn add(&mut self, bundle_path: &str, content: impl AsRef<[u8]>) -> &mut Self {
        let path = self.dir.path().join(bundle_path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        self.files.push((bundle_path.to_string(), path));
        self
    }

    pub(super) fn discover(&self) -> Result<Discovery, Vec<DiscoverError>> {
        discover(&self.files, &[])
    }

    pub(super) fn ok(&self) -> Discovery {
        match self.discover() {
            Ok(d) => d,
            Err(errors) => panic!(
                "unexpected errors: {:#?}",
                errors.iter().map(|e| e.to_string()).collect::<Vec<_>>()
            ),
        }
    }
}

/// (normalised reference, file, line) of each image.
pub(super) fn found(d: &Discovery) -> Vec<(String, String, usize)> {
    d.images
        .iter()
        .map(|f| (f.reference.to_string(), f.file.clone(), f.line))
        .collect()
}

pub(super) fn f(reference: &str, file: &str, line: usize) -> (String, String, usize) {
    (reference.to_string(), file.to_string(), line)
}

fn r(s: &str) -> Reference {
    s.parse().unwrap()
}

/// A gzipped tar of `(path, contents)` members, in that order (as `helm package` writes them).
fn tgz(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    for (path, data) in members {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, path, *data).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

const SHA: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

#[test]
fn manifest_every_container_kind_with_the_value_line() {
    let manifest = format!(
        "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      initContainers:
        - name: init
          image: busybox:1.36
      containers:
        - name: web
          image: \"nginx:1.25\"
      ephemeralContainers:
        - name: debug
          image: registry.k8s.io/e2e-test-images/agnhost:2.47
---
apiVersion: batch/v1
kind: CronJob
metadata: {{name: job}}
spec:
  schedule: '@daily'
  jobTemplate:
    spec:
      template:
        spec:
          containers:
            - name: job
              image:
                quay.io/org/job@{SHA}
            - {{name: again, image: 'nginx:1.25'}}
---
apiVersion: example.com/v1
kind: Backup
spec:
  image: ghcr.io/acme/backup:v2
  imagePullPolicy: Always
"
    );
    let d = Bundle::new().add("manifests/app.yaml", manifest).ok();
    assert_eq!(
        found(&d),
        vec![
            f("docker.io/library/busybox:1.36", "manifests/app.yaml", 10),
            f("docker.io/library/nginx:1.25", "manifests/app.yaml", 13),
            f("ghcr.io/acme/backup:v2", "manifests/app.yaml", 36),
            f(&format!("quay.io/org/job@{SHA}"), "manifests/app.yaml", 30),
            f("registry.k8s.io/e2e-test-images/agnhost:2.47", "manifests/app.yaml", 16),
        ]
    );
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
}

#[test]
fn manifest_anchors_merge_keys_and_image_mappings() {
    let manifest = "\
defaults: &defaults
  image: alpine:3.19
a:
  <<: *defaults
b:
  image:
    repository: quay.io/prometheus/node-exporter
    tag: v1.7.0
c:
  image: ''
kind: Example
apiVersion: example.com/v1
";
    let d = Bundle::new().add("k8s/x.yml", manifest).ok();
    assert_eq!(
        found(&d),
        vec![
            f("docker.io/library/alpine:3.19", "k8s/x.yml", 2),
            f("quay.io/prometheus/node-exporter:v1.7.0", "k8s/x.yml", 7),
        ]
    );
    assert_eq!(d.warnings, vec!["k8s/x.yml:10: `image` is empty; no image recorded"]);
}

#[test]
fn image_lists_skip_comments_blank_lines_and_trailing_space() {
    let d = Bundle::new()
        .add(
            "imageList",
            "# images for the app\nnginx:1.25\n\n  registry.k8s.io/pause:3.9   # sandbox\n\t\nquay.io/a/b:v1 \r\n",
        )
        .add("extra/app.images", "busybox:1.36\n")
        .add("extra/more-images.txt", "alpine:3.19\n")
        .add("extra/notes.txt", "not-an-image: at all\n")
        .ok();
    assert_eq!(
        found(&d),
        vec![
            f("docker.io/library/alpine:3.19", "extra/more-images.txt", 1),
            f("docker.io/library/busybox:1.36", "extra/app.images", 1),
            f("docker.io/library/nginx:1.25", "imageList", 2),
            f("quay.io/a/b:v1", "imageList", 6),
            f("registry.k8s.io/pause:3.9", "imageList", 4),
        ]
    );
}

const REDIS_CHART: &str = "apiVersion: v2\nname: redis\nversion: 19.0.0\nappVersion: 7.2.4\n";
const REDIS_VALUES: &str = "\
image:
  registry: docker.io
  repository: bitnami/redis
  tag: 7.2.4-debian-12-r0
  digest: \"\"
  pullPolicy: IfNotPresent
metrics:
  enabled: false
  image:
    registry: docker.io
    repository: bitnami/redis-exporter
    tag: 1.58.0
volumePermissions:
  image:
    pullPolicy: IfNotPresent
";
const REDIS_TEMPLATE: &str = "\
apiVersion: apps/v1
kind: StatefulSet
spec:
  template:
    spec:
      containers:
        - name: redis
          image: {{ include \"common.images.image\" (dict \"imageRoot\" .Values.image \"global\" .Values.global) }}
";

#[test]
fn bitnami_chart_dir_with_override_that_changes_the_tag() {
    let d = Bundle::new()
        .add("charts/redis/Chart.yaml", REDIS_CHART)
        .add("charts/redis/values.yaml", REDIS_VALUES)
        .add("charts/redis/templates/statefulset.yaml", REDIS_TEMPLATE)
        .add("charts/redis.values.yaml", "# vendor settings\nimage:\n  tag: 7.2.5\n")
        .ok();
    assert_eq!(
        found(&d),
        vec![
            f("docker.io/bitnami/redis:7.2.5", "charts/redis.values.yaml", 3),
            f(
                "docker.io/bitnami/redis-exporter:1.58.0",
                "charts/redis/values.yaml",
                11
            ),
        ]
    );
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
}

#[test]
fn override_null_drops_and_digest_wins_over_tag() {
    let d = Bundle::new()
        .add("charts/redis/Chart.yaml", REDIS_CHART)
        .add("charts/redis/values.yaml", REDIS_VALUES)
        .add(
            "charts/redis.values.yaml",
            format!("metrics:\n  image: null\nimage:\n  digest: {SHA}\n"),
        )
        .ok();
    assert_eq!(
        found(&d),
        vec![f(
            &format!("docker.io/bitnami/redis@{SHA}"),
            "charts/redis.values.yaml",
            4
        )]
    );
}

#[test]
fn chart_archive_read_in_memory_with_override_and_nested_subchart() {
    let common = tgz(&[
        ("common/Chart.yaml", b"name: common\ntype: library\nversion: 2.0.0\n"),
        (
            "common/values.yaml",
            b"exampleValue: common-chart\nimage:\n  repository: bitnami/nested\n  tag: '1'\n",
        ),
    ]);
    let chart = tgz(&[
        ("redis/Chart.yaml", REDIS_CHART.as_bytes()),
        ("redis/values.yaml", REDIS_VALUES.as_bytes()),
        ("redis/templates/statefulset.yaml", REDIS_TEMPLATE.as_bytes()),
        (
            "redis/templates/job.yaml",
            b"spec:\n  containers:\n    - image: bitnami/os-shell:12\n",
        ),
        ("redis/charts/common-2.0.0.tgz", &common),
        (
            "redis/charts/sentinel/Chart.yaml",
            b"name: sentinel\nappVersion: 7.2.4\n",
        ),
        (
            "redis/charts/sentinel/values.yaml",
            b"image:\n  repository: bitnami/redis-sentinel\n",
        ),
        ("redis/README.md", b"image: not-scanned\n"),
    ]);
    let d = Bundle::new()
        .add("charts/redis-19.0.0.tgz", &chart)
        .add(
            "charts/redis-19.0.0.values.yaml",
            "image:\n  registry: harbor.corp:8443\n",
        )
        .add(
            "images/busybox.tgz",
            tgz(&[("manifest.json", b"[]"), ("blobs/sha256/aa", b"x")]),
        )
        .ok();
    let a = "charts/redis-19.0.0.tgz:redis/";
    assert_eq!(
        found(&d),
        vec![
            f(
                "docker.io/bitnami/nested:1",
                &format!("{a}charts/common-2.0.0.tgz:common/values.yaml"),
                3
            ),
            f("docker.io/bitnami/os-shell:12", &format!("{a}templates/job.yaml"), 3),
            f(
                "docker.io/bitnami/redis-exporter:1.58.0",
                &format!("{a}values.yaml"),
                11
            ),
            f(
                "docker.io/bitnami/redis-sentinel:7.2.4",
                &format!("{a}charts/sentinel/values.yaml"),
                2
            ),
            f(
                "harbor.corp:8443/bitnami/redis:7.2.4-debian-12-r0",
                "charts/redis-19.0.0.values.yaml",
                2
            ),
        ]
    );
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
}

#[test]
fn chart_archive_member_over_the_limit_is_skipped_with_a_warning() {
    let big = vec![b'#'; (MAX_CHART_MEMBER + 1) as usize];
    let chart = tgz(&[
        ("big/Chart.yaml", b"name: big\n"),
        ("big/templates/huge.yaml", &big),
        ("big/templates/small.yaml", b"image: alpine:3.19\n"),
    ]);
    let d = Bundle::new().add("charts/big-1.0.tgz", &chart).ok();
    assert_eq!(
        found(&d),
        vec![f(
            "docker.io/library/alpine:3.19",
            "charts/big-1.0.tgz:big/templates/small.yaml",
            1
        )]
    );
    assert_eq!(d.warnings.len(), 1, "{:?}", d.warnings);
    assert!(d.warnings[0].contains("big/templates/huge.yaml"), "{:?}", d.warnings);
}

#[test]
fn template_literals_outside_comments_and_without_template_actions() {
    let template = "\
spec:
  containers:
    - name: a
      image: \"docker.io/library/busybox:1.36\"
    - name: b
      image: {{ .Values.image.repository }}:{{ .Values.image.tag }}
    - name: c
      image: '{{ .Values.sidecar }}'
  # image: commented-out:1
{{/*
image: in-a-comment:1
*/}}
    - image: alpine:3.19  # pinned
      imagePullPolicy: Always
";
    let d = Bundle::new()
        .add("charts/app/Chart.yaml", "name: app\n")
        .add("charts/app/templates/deployment.yaml", template)
        .add(
            "charts/app/templates/_helpers.tpl",
            "{{- define \"x\" -}}\nimage: bitnami/os-shell:12-debian-12\n{{- end }}\n",
        )
        .add("charts/app/templates/NOTES.txt", "image: not-scanned:1\n")
        .ok();
    assert_eq!(
        found(&d),
        vec![
            f(
                "docker.io/bitnami/os-shell:12-debian-12",
                "charts/app/templates/_helpers.tpl",
                2
            ),
            f(
                "docker.io/library/alpine:3.19",
                "charts/app/templates/deployment.yaml",
                13
            ),
            f(
                "docker.io/library/busybox:1.36",
                "charts/app/templates/deployment.yaml",
                4
            ),
        ]
    );
}

#[test]
fn subchart_values_come_from_the_parent_under_its_alias_with_globals() {
    let parent_chart = "\
apiVersion: v2
name: app
appVersion: \"2.0\"
dependencies:
  - name: redis
    alias: cache
  - name: postgresql
";
    let parent_values = "\
global:
  imageRegistry: mirror.example.com
image:
  repository: example/app
  tag: \"\"
cache:
  image:
    tag: 7.4.0
postgresql:
  image:
    repository: bitnami/postgresql
";
    let d = Bundle::new()
        .add("charts/app/Chart.yaml", parent_chart)
        .add("charts/app/values.yaml", parent_values)
        .add("charts/app/charts/redis/Chart.yaml", REDIS_CHART)
        .add("charts/app/charts/redis/values.yaml", REDIS_VALUES)
        .ok();
    assert_eq!(
        found(&d),
        vec![
            // No `registry` key: global.imageRegistry does not apply; empty tag: appVersion.
            f("docker.io/example/app:2.0", "charts/app/values.yaml", 4),
            // The parent's tag (higher precedence) is where the reference changed.
            f("mirror.example.com/bitnami/redis:7.4.0", "charts/app/values.yaml", 8),
            f(
                "mirror.example.com/bitnami/redis-exporter:1.58.0",
                "charts/app/charts/redis/values.yaml",
                11
            ),
        ]
    );
    assert_eq!(d.warnings.len(), 1, "{:?}", d.warnings);
    assert!(d.warnings[0].starts_with("charts/app/Chart.yaml:1: dependency `postgresql` is not in charts/"));
}

#[test]
fn global_image_registry_from_the_override_file() {
    let d = Bundle::new()
        .add("charts/redis/Chart.yaml", REDIS_CHART)
        .add("charts/redis/values.yaml", REDIS_VALUES)
        .add("charts/redis.values.yaml", "global:\n  imageRegistry: 10.0.0.5:5000\n")
        .ok();
    assert_eq!(
        found(&d),
        vec![
            f(
                "10.0.0.5:5000/bitnami/redis:7.2.4-debian-12-r0",
                "charts/redis/values.yaml",
                3
            ),
            f(
                "10.0.0.5:5000/bitnami/redis-exporter:1.58.0",
                "charts/redis/values.yaml",
                11
            ),
        ]
    );
}

#[test]
fn numeric_tags_render_as_helm_renders_them() {
    let values = "\
image:
  repository: bitnami/redis
  tag: 7.2
exporter:
  image:
    repository: example/exporter
    tag: 1.10
quoted:
  image:
    repository: example/quoted
    tag: \"1.10\"
int:
  image:
    repository: example/int
    tag: 5
";
    let d = Bundle::new()
        .add("charts/x/Chart.yaml", "name: x\n")
        .add("charts/x/values.yaml", values)
        .ok();
    assert_eq!(
        found(&d),
        vec![
            f("docker.io/bitnami/redis:7.2", "charts/x/values.yaml", 2),
            f("docker.io/example/exporter:1.1", "charts/x/values.yaml", 6),
            f("docker.io/example/int:5", "charts/x/values.yaml", 14),
            f("docker.io/example/quoted:1.10", "charts/x/values.yaml", 10),
        ]
    );
    assert_eq!(d.warnings.len(), 1, "{:?}", d.warnings);
    assert!(
        d.warnings[0].starts_with("charts/x/values.yaml:7: tag `1.10` is a YAML number"),
        "{:?}",
        d.warnings
    );
}

#[test]
fn empty_or_missing_tag_defaults_to_app_version() {
    let values = "\
image:
  repository: acme/api
  tag: ''
worker:
  image:
    repository: acme/worker
pinned:
  image:
    repository: acme/pinned:1.0
";
    let d = Bundle::new()
        .add("charts/api/Chart.yaml", "name: api\nappVersion: v3.1.0\n")
        .add("charts/api/values.yaml", values)
        .ok();
    assert_eq!(
        found(&d),
        vec![
            f("docker.io/acme/api:v3.1.0", "charts/api/values.yaml", 2),
            f("docker.io/acme/pinned:1.0", "charts/api/values.yaml", 9),
            f("docker.io/acme/worker:v3.1.0", "charts/api/values.yaml", 6),
        ]
    );
}

#[test]
fn other_value_patterns_and_guesses() {
    let values = "\
image:
  registry: registry.gitlab.com
  image: gitlab-org/gitlab-runner
  tag: alpine-v16.9.0
sidecar:
  image:
    name: envoyproxy/envoy
    tag: v1.29.1
release:
  name: My Release
  tag: stable
kubectlImage: bitnami/kubectl:1.29
debugImage: Not An Image:x
baseImage: quay.io/prometheus/prometheus
plain: {image: 'busybox:1.36'}
templated:
  image: \"{{ .Values.global.registry }}/app:1\"
";
    let d = Bundle::new()
        .add("charts/r/Chart.yaml", "name: r\n")
        .add("charts/r/values.yaml", values)
        .ok();
    assert_eq!(
        found(&d),
        vec![
            f("docker.io/bitnami/kubectl:1.29", "charts/r/values.yaml", 12),
            f("docker.io/envoyproxy/envoy:v1.29.1", "charts/r/values.yaml", 7),
            f("docker.io/library/busybox:1.36", "charts/r/values.yaml", 15),
            f(
                "registry.gitlab.com/gitlab-org/gitlab-runner:alpine-v16.9.0",
                "charts/r/values.yaml",
                3
            ),
        ]
    );
    // `release` is a {name, tag} mapping that is no image, `debugImage` a bad guess,
    // `baseImage` has no tag, and the templated image cannot be resolved here: warnings.
    assert_eq!(d.warnings.len(), 4, "{:#?}", d.warnings);
    assert!(
        d.warnings[0].starts_with("charts/r/values.yaml:10: `My Release:stable` looks like an image"),
        "{:#?}",
        d.warnings
    );
    assert!(d.warnings[1].starts_with("charts/r/values.yaml:13: `Not An Image:x` looks like an image"));
    assert!(d.warnings[2].starts_with("charts/r/values.yaml:14: `baseImage: quay.io/prometheus/prometheus` has no tag"));
    assert!(d.warnings[3].starts_with("charts/r/values.yaml:17: `{{ .Values.global.registry }}/app:1` is a template"));
}

#[test]
fn malformed_yaml_is_an_error_with_line_and_column() {
    let bad = "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n    - name: a\n      image: [nginx\n";
    let errors = Bundle::new()
        .add("manifests/bad-flow.yaml", bad)
        .discover()
        .unwrap_err();
    assert_eq!(errors.len(), 1);
    match &errors[0] {
        DiscoverError::Yaml { file, line, column, .. } => {
            assert_eq!(file, "manifests/bad-flow.yaml");
            assert_eq!((*line, *column), (7, 1), "{}", errors[0]);
        }
        other => panic!("wrong error: {other}"),
    }
    let bad = "a: 1\nb:\n  c: 2\n d: 3\napiVersion: v1\n";
    let errors = Bundle::new().add("bad-indent.yml", bad).discover().unwrap_err();
    assert!(
        matches!(&errors[..], [DiscoverError::Yaml { line: 4, column: 2, .. }]),
        "{:?}",
        errors.iter().map(|e| e.to_string()).collect::<Vec<_>>()
    );
}

#[test]
fn uppercase_reference_is_a_bad_reference_with_its_line() {
    let manifest = "kind: Pod\nspec:\n  containers:\n    - name: web\n      image: Nginx:latest\napiVersion: v1\n";
    let errors = Bundle::new()
        .add("manifests/pod.yaml", manifest)
        .discover()
        .unwrap_err();
    match &errors[..] {
        [DiscoverError::BadReference {
            file,
            line,
            text,
            reason,
            hint,
        }] => {
            assert_eq!(
                (file.as_str(), *line, text.as_str()),
                ("manifests/pod.yaml", 5, "Nginx:latest")
            );
            assert!(reason.contains("invalid repository `library/Nginx`"), "{reason}");
            assert!(hint.contains("lowercase"), "{hint}");
        }
        other => panic!("wrong errors: {other:?}"),
    }
}

#[test]
fn all_errors_come_back_at_once() {
    let errors = Bundle::new()
        .add("a/bad.yaml", "apiVersion: v1\nkey: [unclosed\n")
        .add(
            "b/pod.yaml",
            "{apiVersion: v1, kind: Pod, image: Nginx:latest}\n---\n{apiVersion: v1, kind: Pod, image: nginx:1.25}\n---\n{apiVersion: v1, kind: Pod, image: 'x:-bad'}\n",
        )
        .add("c/imageList", "nginx:1.25\nexample.com:port/x\n")
        .add("charts/x/Chart.yaml", "name: x\n")
        .add("charts/x/values.yaml", "image:\n  repository: UPPER/case\n")
        .add("charts/x/templates/t.yaml", "image: \"Bad Ref\"\n")
        .add("charts/broken-1.0.tgz", b"not gzip at all")
        .discover()
        .unwrap_err();
    let at: Vec<(String, usize)> = errors
        .iter()
        .map(|e| match e {
            DiscoverError::Yaml { file, line, .. } | DiscoverError::BadReference { file, line, .. } => {
                (file.clone(), *line)
            }
            DiscoverError::Chart { file, .. } | DiscoverError::ChartArchive { file, .. } => (file.clone(), 0),
            other => panic!("unexpected {other}"),
        })
        .collect();
    let expected = [
        ("a/bad.yaml", 3),
        ("b/pod.yaml", 1),
        ("b/pod.yaml", 5),
        ("c/imageList", 2),
        ("charts/broken-1.0.tgz", 0),
        ("charts/x/templates/t.yaml", 1),
        ("charts/x/values.yaml", 2),
    ];
    assert_eq!(at, expected.map(|(f, l)| (f.to_string(), l)));
    let values_error = errors[6].to_string();
    assert!(
        values_error.contains("override `image` in `charts/x.values.yaml`"),
        "{values_error}"
    );
}

#[test]
fn ignored_images_are_dropped_and_unused_ignores_warned() {
    let mut b = Bundle::new();
    b.add(
        "m.yaml",
        "a:\n  image: nginx:1.25\nb:\n  image: docker.io/library/busybox:1.36\nkind: List\napiVersion: v1\n",
    );
    let d = discover(
        &b.files,
        &[r("docker.io/library/nginx:1.25"), r("quay.io/never/used:1")],
    )
    .unwrap();
    assert_eq!(found(&d), vec![f("docker.io/library/busybox:1.36", "m.yaml", 4)]);
    assert_eq!(
        d.warnings,
        vec!["--ignore-image quay.io/never/used:1: no file names this image"]
    );
}

#[test]
fn duplicates_keep_the_first_source_whatever_the_input_order() {
    let mut b = Bundle::new();
    b.add("z.yaml", "image: nginx:1.25\nkind: Pod\napiVersion: v1\n").add(
        "a.yaml",
        "x: 1\nimage: index.docker.io/library/nginx:1.25\nkind: Pod\napiVersion: v1\n",
    );
    b.files.reverse();
    let d = b.ok();
    assert_eq!(found(&d), vec![f("docker.io/library/nginx:1.25", "a.yaml", 2)]);
}

#[test]
fn unreadable_file_is_an_io_error_naming_both_paths() {
    let files = vec![("m.yaml".to_string(), PathBuf::from("/nonexistent/discover-test/m.yaml"))];
    let errors = discover(&files, &[]).unwrap_err();
    assert!(matches!(&errors[..], [DiscoverError::Io { file, .. }] if file == "m.yaml"));
}

#[test]
fn chart_errors_name_the_chart_file() {
    let errors = Bundle::new()
        .add("charts/noname/Chart.yaml", "version: 1.0.0\n")
        .add("charts/list/Chart.yaml", "name: list\n")
        .add("charts/list/values.yaml", "- a\n- b\n")
        .discover()
        .unwrap_err();
    let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert!(
        matches!(&errors[..], [DiscoverError::Chart { .. }, DiscoverError::Chart { .. }]),
        "{text:?}"
    );
    assert!(text[0].starts_with("charts/list/values.yaml:1: "), "{text:?}");
    assert!(
        text[1].starts_with("charts/noname/Chart.yaml: has no `name`"),
        "{text:?}"
    );
}

#[test]
fn a_large_plain_file_is_not_mistaken_for_an_alias_bomb() {
    // Regression: the node guard once counted every node, and a 10 MiB list failed the build.
    let mut big = String::from("apiVersion: v1\nkind: List\nitems:\n");
    for i in 0..400_000 {
        big.push_str(&format!("- {{name: s{i}, image: \"example.com/a:{}\"}}\n", i % 3));
    }
    let found = Bundle::new().add("manifests/big.yaml", big).discover().unwrap();
    assert_eq!(found.images.len(), 3);
}

#[test]
fn alias_bomb_and_deep_nesting_are_errors_not_hangs() {
    let mut bomb = String::from("apiVersion: v1\nkind: Bomb\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        bomb.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    let deep = format!(
        "{}{}\n",
        "[".repeat(MAX_YAML_DEPTH + 10),
        "]".repeat(MAX_YAML_DEPTH + 10)
    ) + "apiVersion: v1\n";
    let errors = Bundle::new()
        .add("bomb.yaml", bomb)
        .add("deep.yaml", deep)
        .discover()
        .unwrap_err();
    assert!(matches!(
        &errors[..],
        [DiscoverError::Yaml { .. }, DiscoverError::Yaml { .. }]
    ));
    assert!(errors[0].to_string().contains("nodes"), "{}", errors[0]);
    assert!(
        matches!(errors[1], DiscoverError::Yaml { line: 1, .. }),
        "{}",
        errors[1]
    );
}

#[test]
fn helm_template_outside_a_chart_hints_at_the_missing_chart_yaml() {
    let errors = Bundle::new()
        .add(
            "charts/app/templates/d.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-web\n",
        )
        .discover()
        .unwrap_err();
    assert!(errors[0].to_string().contains("Chart.yaml is missing"), "{}", errors[0]);
}

#[test]
fn crds_of_a_chart_are_plain_manifests() {
    let mut file = Vec::new();
    writeln!(
        file,
        "kind: CustomResourceDefinition\nspec:\n  image: ghcr.io/acme/operator:1.0\napiVersion: apiextensions.k8s.io/v1"
    )
    .unwrap();
    let d = Bundle::new()
        .add("c/Chart.yaml", "name: c\n")
        .add("c/crds/crd.yaml", file)
        .ok();
    assert_eq!(found(&d), vec![f("ghcr.io/acme/operator:1.0", "c/crds/crd.yaml", 3)]);
}

#[test]
fn binary_tgz_among_charts_is_a_chart_archive_error_in_plain_text() {
    // Gzip around bytes that are no tar: the tar reader's error quotes them.
    let mut garbage: Vec<u8> = (0..2048u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    garbage[..8].copy_from_slice(b"\x00\x01\xff\x1b[31m");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&garbage).unwrap();
    let errors = Bundle::new()
        .add("charts/not-a-chart.tgz", gz.finish().unwrap())
        .add("charts/not-gzip.tgz", [0u8, 159, 146, 150, 27, 0xff])
        .discover()
        .unwrap_err();
    assert_eq!(errors.len(), 2);
    for e in &errors {
        assert!(matches!(e, DiscoverError::ChartArchive { .. }), "{e}");
        let text = e.to_string();
        assert!(text.is_ascii() && !text.chars().any(|c| c.is_control()), "{text:?}");
        assert!(!text.contains("image reference"), "{text}");
        assert!(text.contains("helm package"), "{text}");
    }
}

// Charts rendered (the default of `delivery images` and `build`).

fn rendered(b: &Bundle, mode: ChartImages) -> Discovery {
    let options = RenderOptions {
        chart_images: mode,
        ..RenderOptions::default()
    };
    match discover_with(&b.files, &[], &options) {
        Ok(d) => d,
        Err(errors) => panic!("{:#?}", errors.iter().map(|e| e.to_string()).collect::<Vec<_>>()),
    }
}

fn helper_chart() -> Bundle {
    let mut b = Bundle::new();
    b.add("charts/ms/Chart.yaml", "apiVersion: v2\nname: ms\nversion: 1.0.0\nappVersion: 0.8.1\n")
        .add(
            "charts/ms/values.yaml",
            "image:\n  repository: registry.k8s.io/ms/ms\n  tag: \"\"\nresizer:\n  enabled: false\n  image: registry.k8s.io/autoscaling/addon-resizer:1.8.23\n",
        )
        .add(
            "charts/ms/templates/_helpers.tpl",
            "{{- define \"ms.image\" -}}\n{{ .Values.image.repository }}:{{ .Values.image.tag | default (printf \"v%s\" .Chart.AppVersion) }}\n{{- end }}\n",
        )
        .add(
            "charts/ms/templates/deployment.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\nspec:\n  template:\n    spec:\n      containers:\n        - name: ms\n          image: {{ include \"ms.image\" . }}\n        {{- if .Values.resizer.enabled }}\n        - name: resizer\n          image: {{ .Values.resizer.image }}\n        {{- end }}\n",
        );
    b
}

#[test]
fn a_rendered_chart_gives_the_name_its_helper_writes_and_leaves_disabled_parts_out() {
    let b = helper_chart();
    let d = rendered(&b, ChartImages::Rendered);
    assert_eq!(
        found(&d),
        vec![f(
            "registry.k8s.io/ms/ms:v0.8.1",
            "charts/ms/templates/deployment.yaml (rendered)",
            10
        )]
    );
    // The values scan guesses the tag from appVersion and carries the disabled resizer.
    let all = rendered(&b, ChartImages::All);
    let names: Vec<String> = all.images.iter().map(|f| f.reference.to_string()).collect();
    assert!(
        names.contains(&"registry.k8s.io/autoscaling/addon-resizer:1.8.23".to_string()),
        "{names:?}"
    );
    assert!(names.contains(&"registry.k8s.io/ms/ms:v0.8.1".to_string()), "{names:?}");
}

#[test]
fn the_vendors_values_beside_the_chart_enable_what_they_enable() {
    let mut b = helper_chart();
    b.add(
        "charts/ms.values.yaml",
        "resizer:\n  enabled: true\nimage:\n  tag: v9\n",
    );
    let names: Vec<String> = rendered(&b, ChartImages::Rendered)
        .images
        .iter()
        .map(|f| f.reference.to_string())
        .collect();
    assert_eq!(
        names,
        vec![
            "registry.k8s.io/autoscaling/addon-resizer:1.8.23",
            "registry.k8s.io/ms/ms:v9"
        ]
    );
}

#[test]
fn a_template_that_fails_is_a_warning_at_its_line_and_the_values_are_scanned_too() {
    let mut b = helper_chart();
    b.add(
        "charts/ms/templates/broken.yaml",
        "apiVersion: v1\nkind: ConfigMap\ndata:\n  x: {{ required \"set .Values.needed\" .Values.needed }}\n",
    );
    let d = rendered(&b, ChartImages::Rendered);
    assert!(
        d.warnings.iter().any(
            |w| w.starts_with("charts/ms/templates/broken.yaml:4: template not rendered")
                && w.contains("set .Values.needed")
        ),
        "{:#?}",
        d.warnings
    );
    let names: Vec<String> = d.images.iter().map(|f| f.reference.to_string()).collect();
    assert!(
        names.contains(&"registry.k8s.io/autoscaling/addon-resizer:1.8.23".to_string()),
        "{names:?}"
    );
}
