//! Image lists and Kubernetes manifests: the files outside charts that name images.

use std::rc::Rc;

use super::yaml::{parse_yaml, Node, Value};
use super::{Certainty, DiscoverError, Scan};

pub(super) fn is_image_list(name: &str) -> bool {
    name == "imageList" || name.ends_with(".images") || name.ends_with("images.txt")
}

pub(super) fn is_yaml(name: &str) -> bool {
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

    pub(super) fn manifest(&mut self, file: &str, bytes: &[u8]) {
        let file_rc: Rc<str> = Rc::from(file);
        match parse_yaml(bytes, &file_rc, 0) {
            Ok(docs) => {
                for doc in &docs {
                    self.walk_manifest(doc, None);
                }
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
