//! Image lists and Kubernetes manifests: the files outside charts that name images.

use std::rc::Rc;

use super::yaml::{parse_yaml, Node, Value};
use super::{Certainty, DiscoverError, Scan};

pub(crate) fn is_image_list(name: &str) -> bool {
    name == "imageList" || name.ends_with(".images") || name.ends_with("images.txt")
}

pub(crate) fn is_yaml(name: &str) -> bool {
    name.ends_with(".yaml") || name.ends_with(".yml")
}

impl Scan<'_> {
    pub(super) fn image_list(&mut self, file: &str, text: &str) {
        for (i, line) in text.lines().enumerate() {
            // A reference never contains `#`, so everything from it on is a comment.
            let value = line.split('#').next().unwrap_or("").trim();
            if !value.is_empty() {
                self.record(value, file, i + 1, Certainty::Certain, || {
                    "fix or remove the line".into()
                });
            }
        }
    }

    /// Scan the Kubernetes documents of a YAML file; a file with none is skipped with a warning.
    pub(super) fn manifest(&mut self, file: &str, bytes: &[u8]) {
        let file_rc: Rc<str> = Rc::from(file);
        match parse_yaml(bytes, &file_rc, 0) {
            Ok(docs) => {
                let mut kubernetes = docs.iter().filter(|d| is_kubernetes(d)).peekable();
                if kubernetes.peek().is_none() {
                    if docs.iter().any(|d| !d.is_null()) {
                        self.warn(file, 1, NOT_KUBERNETES);
                    }
                    return;
                }
                for doc in kubernetes {
                    self.walk_manifest(doc, None);
                }
            }
            Err(DiscoverError::Yaml {
                line, column, message, ..
            }) if !looks_like_kubernetes(bytes) => {
                let message = format!("{NOT_KUBERNETES} (and not valid YAML at column {column}: {message})");
                self.warn(file, line, message);
            }
            Err(mut e) => {
                if let DiscoverError::Yaml { message, .. } = &mut e {
                    if bytes.windows(2).any(|w| w == b"{{") {
                        message
                            .push_str(" (the file holds `{{`: a Helm template whose chart's Chart.yaml is missing?)");
                    }
                }
                self.errors.push(e);
            }
        }
    }

    pub(super) fn walk_manifest(&mut self, node: &Node, parent_key: Option<&str>) {
        match &node.value {
            Value::Map(entries) => {
                if parent_key == Some("image") {
                    self.image_mapping_in(entries, parent_key, None);
                }
                for (k, v) in entries {
                    let key = k.as_str();
                    if key == Some("image") {
                        if let Value::Scalar { text, .. } = &v.value {
                            if v.is_null() || text.trim().is_empty() {
                                self.warn(&v.file, v.line, "`image` is empty; no image recorded");
                            } else {
                                self.record(text, &v.file, v.line, Certainty::Certain, || {
                                    "fix the `image:` value (a reference is lowercase, like `docker.io/library/nginx:1.25`)"
                                        .into()
                                });
                            }
                        }
                    }
                    if let (Some("args" | "command"), Value::Seq(items)) = (key, &v.value) {
                        self.operator_args(items);
                    }
                    if let (Some("env"), Value::Seq(items)) = (key, &v.value) {
                        self.operator_env(items);
                    }
                    self.walk_manifest(v, key);
                }
            }
            Value::Seq(items) => {
                for item in items {
                    self.walk_manifest(item, None);
                }
            }
            Value::Scalar { .. } => {}
        }
    }
}

const NOT_KUBERNETES: &str =
    "no Kubernetes object in this file (a YAML document with `apiVersion` and `kind`); not scanned for images";

/// A Kubernetes object (a mapping with `apiVersion` and `kind`), or a `List` of them.
fn is_kubernetes(doc: &Node) -> bool {
    let has = |k: &str| doc.get(k).and_then(Node::text).is_some_and(|t| !t.is_empty());
    has("apiVersion") && has("kind")
        || doc.get("kind").and_then(Node::text) == Some("List") && doc.get("items").is_some()
}

/// Whether a file that does not parse was meant as Kubernetes YAML: a line starts with
/// `apiVersion:` or `kind:`. A parse error in such a file is an error; elsewhere (a CI workflow,
/// a docker-compose file, docs) it is a warning.
fn looks_like_kubernetes(bytes: &[u8]) -> bool {
    bytes
        .split(|&b| b == b'\n')
        .any(|l| l.starts_with(b"apiVersion:") || l.starts_with(b"kind:"))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{f, found, Bundle};
    use super::*;

    #[test]
    fn files_without_kubernetes_objects_are_skipped_with_a_warning() {
        let workflow = "on: push\njobs:\n  test:\n    container:\n      image: ${{ matrix.image }}\n";
        let compose = "services:\n  web:\n    image: nginx:1.25\n";
        let mkdocs = "site_name: x\nnav:\n  - Home: index.md\n";
        let d = Bundle::new()
            .add(".github/workflows/ci.yml", workflow)
            .add("docker-compose.yml", compose)
            .add("mkdocs.yml", mkdocs)
            .add("empty.yaml", "# nothing\n")
            .ok();
        assert_eq!(found(&d), vec![]);
        let files: Vec<&str> = d.warnings.iter().map(|w| w.split(':').next().unwrap_or("")).collect();
        assert_eq!(files, [".github/workflows/ci.yml", "docker-compose.yml", "mkdocs.yml"]);
        assert!(
            d.warnings.iter().all(|w| w.contains("not scanned for images")),
            "{:?}",
            d.warnings
        );
    }

    #[test]
    fn parse_error_is_a_warning_unless_the_file_looks_like_kubernetes() {
        let broken_workflow = "on: push\njobs: [\n";
        let d = Bundle::new().add("ci.yml", broken_workflow).ok();
        assert_eq!(d.warnings.len(), 1, "{:?}", d.warnings);
        assert!(d.warnings[0].starts_with("ci.yml:3: "), "{:?}", d.warnings);

        let broken_manifest = "apiVersion: v1\nkind: Pod\nspec: [\n";
        let errors = Bundle::new().add("pod.yaml", broken_manifest).discover().unwrap_err();
        assert!(
            matches!(&errors[..], [DiscoverError::Yaml { line: 4, .. }]),
            "{:?}",
            errors.iter().map(|e| e.to_string()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn only_the_kubernetes_documents_of_a_file_are_scanned() {
        let mixed = "\
settings:
  image: docker.io/not/scanned:1
---
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Pod
    spec:
      containers:
        - image: docker.io/library/nginx:1.25
---
apiVersion: monitoring.coreos.com/v1
kind: Prometheus
spec:
  image: quay.io/prometheus/prometheus:v3.12.0
";
        let d = Bundle::new().add("m.yaml", mixed).ok();
        assert_eq!(
            found(&d),
            vec![
                f("docker.io/library/nginx:1.25", "m.yaml", 11),
                f("quay.io/prometheus/prometheus:v3.12.0", "m.yaml", 16),
            ]
        );
        assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    }

    #[test]
    fn image_lists_and_charts_keep_their_own_rules() {
        let d = Bundle::new()
            .add("lists/app.images", "docker.io/library/redis:7\n")
            .add("charts/c/Chart.yaml", "name: c\nappVersion: \"1.0\"\n")
            .add("charts/c/values.yaml", "image:\n  repository: acme/api\n")
            .ok();
        assert_eq!(
            found(&d),
            vec![
                f("docker.io/acme/api:1.0", "charts/c/values.yaml", 2),
                f("docker.io/library/redis:7", "lists/app.images", 1),
            ]
        );
    }
}
