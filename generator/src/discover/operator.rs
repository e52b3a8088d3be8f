//! Operator images: references an operator pulls at run time that sit in no `image:` field, but
//! in its container's `args` / `command` (`--prometheus-config-reloader=quay.io/...:v0.92.0`,
//! `--engine-image longhornio/longhorn-engine:v1.6.0`) or in `env` values whose name mentions
//! IMAGE (`CSI_ATTACHER_IMAGE`, `RELATED_IMAGE_X`, Strimzi's `3.0.0=quay.io/...` lists).
//!
//! These are guesses: a value is taken only when it parses as a reference and names a registry
//! host or a tag or digest (so `--port=8080`, `--log-level=info`, `--config=/etc/x.yaml` and
//! `IMAGE_PULL_POLICY=Always` are not images); anything else is skipped silently.

use super::yaml::Node;
use super::{Certainty, Scan};
use bundle_format::reference::Reference;

impl Scan<'_> {
    /// The items of a container's `args` or `command` list.
    pub(super) fn operator_args(&mut self, items: &[Node]) {
        // (flag name that waits for its value in the next token, whether it names an image)
        let mut pending: Option<bool> = None;
        for item in items {
            let Some(text) = item.text() else {
                pending = None;
                continue;
            };
            for token in text.split_whitespace() {
                let token = token.trim_matches(['"', '\'']);
                if let Some(flag) = token.strip_prefix('-') {
                    let flag = flag.trim_start_matches('-');
                    pending = None;
                    match flag.split_once('=') {
                        Some((name, value)) => self.operator_value(value, flag_names_image(name), item),
                        None if !flag.is_empty() => pending = Some(flag_names_image(flag)),
                        None => {}
                    }
                } else if let Some(image_named) = pending.take() {
                    self.operator_value(token, image_named, item);
                }
            }
        }
    }

    /// The items of a container's `env` list: `{name, value}` mappings.
    pub(super) fn operator_env(&mut self, items: &[Node]) {
        for item in items {
            let name = item.get("name").and_then(Node::text).unwrap_or_default();
            if !name.to_ascii_lowercase().contains("image") {
                continue;
            }
            let Some(value) = item.get("value") else { continue };
            let Some(text) = value.text() else { continue };
            // One reference, or a list of `version=reference` entries (Strimzi's); in a block
            // scalar (whose line is that of its first line) each line is a line of the file.
            for (i, line) in text.lines().enumerate() {
                for entry in line.split([' ', '\t', ',', ';']) {
                    let entry = entry.split_once('=').map_or(entry, |(_, r)| r);
                    if looks_like_image(entry, true) {
                        self.record(entry, &value.file, value.line + i, Certainty::Guess, String::new);
                    }
                }
            }
        }
    }

    /// Record `value` as an image if it looks like one; `at` is the scalar it came from.
    fn operator_value(&mut self, value: &str, image_named: bool, at: &Node) {
        if looks_like_image(value, image_named) {
            self.record(value, &at.file, at.line, Certainty::Guess, String::new);
        }
    }
}

/// `--engine-image`, `--acme-http01-solver-image`, `--prometheus-config-reloader`'s kin that say so.
fn flag_names_image(name: &str) -> bool {
    name.to_ascii_lowercase().contains("image")
}

/// Whether an operator's flag or env value is an image reference: it parses, and it has a
/// registry host or a tag or digest. A value of a flag or variable not named like an image must
/// also have a `/` (a repository path), so that `0.0.0.0:8080` and `localhost:9090` are not
/// taken for `library/0.0.0.0:8080`; one without a `/` must not be a host and port.
fn looks_like_image(value: &str, image_named: bool) -> bool {
    if value.is_empty() || value.parse::<Reference>().is_err() {
        return false;
    }
    if !value.contains('/') {
        // `--image-registry=localhost:5000`, `registry.example.com:5000`: a host and port.
        let name = value.split([':', '@']).next().unwrap_or(value);
        if name == "localhost" || name.contains('.') {
            return false;
        }
    }
    let (first, _) = value.split_once('/').unwrap_or(("", value));
    let host = first.contains(['.', ':']) || first == "localhost";
    let last = value.rsplit('/').next().unwrap_or(value);
    let tagged = last.contains(':') || value.contains('@');
    (host || tagged) && (image_named || value.contains('/'))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{f, found, Bundle};
    use super::*;

    /// An operator Deployment in the shape of kube-prometheus's, cert-manager's and Longhorn's.
    const OPERATOR: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: operator
spec:
  template:
    spec:
      containers:
        - name: operator
          image: quay.io/prometheus-operator/prometheus-operator:v0.92.0
          args:
            - --kubelet-service=kube-system/kubelet
            - --prometheus-config-reloader=quay.io/prometheus-operator/prometheus-config-reloader:v0.92.0
            - --acme-http01-solver-image=quay.io/jetstack/cert-manager-acmesolver:v1.19.6
            - --log-level=info
            - --config=/etc/x.yaml
            - --port=8080
            - --secure-listen-address=0.0.0.0:8443
            - --upstream=http://127.0.0.1:8081/
            - --engine-image
            - longhornio/longhorn-engine:v1.6.0
            - --namespace
            - longhorn-system
            - --bad-image=Not/A:Reference
          command:
            - sh
            - -c
            - exec manager --helper-image docker.io/library/busybox:1.36 --v 2
          env:
            - name: CSI_ATTACHER_IMAGE
              value: longhornio/csi-attacher:v4.4.2
            - name: RELATED_IMAGE_PAUSE
              value: "registry.k8s.io/pause:3.9"
            - name: IMAGE_PULL_POLICY
              value: Always
            - name: OPERATOR_NAME
              value: quay.io/not/an-image-variable:1.0
            - name: STRIMZI_KAFKA_IMAGES
              value: |
                3.0.0=quay.io/strimzi/kafka:0.28.0-kafka-3.0.0
                3.1.0=quay.io/strimzi/kafka:0.28.0-kafka-3.1.0
            - name: MORE_IMAGES
              value: "a=docker.io/x/a:1, b=docker.io/x/b:2;c=docker.io/x/c:3"
            - name: POD_IMAGE
              valueFrom:
                fieldRef:
                  fieldPath: metadata.name
"#;

    #[test]
    fn operator_args_command_and_env_images_with_their_lines() {
        let d = Bundle::new().add("m/operator.yaml", OPERATOR).ok();
        let mut expected = vec![
            f(
                "quay.io/prometheus-operator/prometheus-operator:v0.92.0",
                "m/operator.yaml",
                10,
            ),
            f(
                "quay.io/prometheus-operator/prometheus-config-reloader:v0.92.0",
                "m/operator.yaml",
                13,
            ),
            f(
                "quay.io/jetstack/cert-manager-acmesolver:v1.19.6",
                "m/operator.yaml",
                14,
            ),
            f("docker.io/longhornio/longhorn-engine:v1.6.0", "m/operator.yaml", 21),
            f("docker.io/library/busybox:1.36", "m/operator.yaml", 28),
            f("docker.io/longhornio/csi-attacher:v4.4.2", "m/operator.yaml", 31),
            f("registry.k8s.io/pause:3.9", "m/operator.yaml", 33),
            f("quay.io/strimzi/kafka:0.28.0-kafka-3.0.0", "m/operator.yaml", 40),
            f("quay.io/strimzi/kafka:0.28.0-kafka-3.1.0", "m/operator.yaml", 41),
            f("docker.io/x/a:1", "m/operator.yaml", 43),
            f("docker.io/x/b:2", "m/operator.yaml", 43),
            f("docker.io/x/c:3", "m/operator.yaml", 43),
        ];
        expected.sort();
        assert_eq!(found(&d), expected);
        assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    }

    #[test]
    fn operator_rules_apply_to_kubernetes_documents_only() {
        let compose = "services:\n  web:\n    command: [\"--x-image=quay.io/a/b:1\"]\n";
        let d = Bundle::new().add("docker-compose.yml", compose).ok();
        assert_eq!(found(&d), vec![]);
    }

    #[test]
    fn image_values_need_a_host_or_a_tag_and_unnamed_ones_a_path() {
        for (value, image_named) in [
            ("quay.io/prometheus-operator/prometheus-config-reloader:v0.92.0", false),
            ("quay.io/jetstack/cert-manager-acmesolver", false),
            ("longhornio/longhorn-engine:v1.6.0", false),
            (
                "registry.k8s.io/pause@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                false,
            ),
            ("localhost:5000/x", false),
            ("busybox:1.36", true),
        ] {
            assert!(looks_like_image(value, image_named), "{value}");
        }
        for (value, image_named) in [
            ("info", false),
            ("/etc/x.yaml", false),
            ("8080", false),
            ("0.0.0.0:8080", false),
            ("127.0.0.1:9100", false),
            ("http://127.0.0.1:8081/", false),
            ("kube-system/kubelet", false),
            ("busybox:1.36", false),
            ("Always", true),
            ("always", true),
            ("IfNotPresent", true),
            ("longhornio/longhorn-engine", true),
            ("localhost:5000", true),
            ("registry.example.com:5000", true),
            ("quay.io", true),
            ("", true),
        ] {
            assert!(!looks_like_image(value, image_named), "{value}");
        }
    }
}
