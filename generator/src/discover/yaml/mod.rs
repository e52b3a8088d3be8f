//! YAML with positions: every node keeps its file, line and values precedence, aliases and
//! merge keys are resolved, and Helm's coalescing of values is [`merge`].
//!
//! Here: the tree ([`Node`]), [`merge`], and the entry points. Building the tree from
//! saphyr-parser's events is `tree.rs`; re-indenting the quoted scalars that saphyr-parser
//! refuses but kubectl and Helm read is `reindent.rs`.
//!
//! Why a tree of our own over parser events rather than a YAML crate's document type (issue 13):
//! - A scalar keeps its text as written and whether it was plain: `tag: 1.10` is the string
//!   `1.10` and a warning (a YAML number to Helm), where a typed tree (saphyr's `Yaml`,
//!   serde_yaml's `Value`) has already made it the float 1.1.
//! - Every node keeps its line, file and values layer, also after values files are merged;
//!   errors are at file:line:column from the parser's spans.
//! - Aliases are expanded under a node cap and nesting under a depth cap while the tree is
//!   built (`MAX_YAML_NODES`, `MAX_YAML_DEPTH`): a "billion laughs" chart fails fast
//!   instead of exhausting memory.
//! - It needs saphyr-parser only (serde_yaml is unmaintained), and the re-indenting retry works
//!   on the parser's error position.

mod reindent;
mod tree;

use std::rc::Rc;

use super::DiscoverError;
use reindent::{reindent_all_quoted, reindent_quoted, MAX_QUOTED_REINDENTS, QUOTED_INDENTATION};
use tree::parse_text;

/// A YAML node with where it came from. Values merged from several files keep each node's own
/// file and line.
#[derive(Debug, Clone)]
pub(super) struct Node {
    pub(super) value: Value,
    /// 1-based line of the node's first character.
    pub(super) line: usize,
    /// Bundle path of the file the node was read from.
    pub(super) file: Rc<str>,
    /// Precedence of the values file it came from; see [`values_layer`].
    pub(super) layer: u32,
}

#[derive(Debug, Clone)]
pub(super) enum Value {
    /// `plain`: written without quotes or tag, so YAML may resolve it to null, a number or a bool.
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    pub(super) fn empty_map(file: &Rc<str>) -> Node {
        Node {
            value: Value::Map(Vec::new()),
            line: 1,
            file: file.clone(),
            layer: 0,
        }
    }

    pub(super) fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// The text of a non-null scalar.
    pub(super) fn text(&self) -> Option<&str> {
        self.as_str().filter(|_| !self.is_null())
    }

    pub(super) fn is_plain(&self) -> bool {
        matches!(self.value, Value::Scalar { plain: true, .. })
    }

    pub(super) fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, plain: true } if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// The value of `key` in a mapping (the last one, if repeated).
    pub(super) fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .rev()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    pub(super) fn set(&mut self, key: &str, value: Node) {
        if let Value::Map(entries) = &mut self.value {
            match entries.iter_mut().find(|(k, _)| k.as_str() == Some(key)) {
                Some((_, v)) => *v = value,
                None => {
                    let k = Node {
                        value: Value::Scalar {
                            text: key.into(),
                            plain: true,
                        },
                        line: value.line,
                        file: value.file.clone(),
                        layer: value.layer,
                    };
                    entries.push((k, value));
                }
            }
        }
    }
}

/// Helm's coalescing of values: maps merge key by key, `over` wins, a null in `over` deletes.
pub(super) fn merge(base: Node, over: Node) -> Node {
    match (base.value, over.value) {
        (Value::Map(mut entries), Value::Map(over_entries)) => {
            for (k, v) in over_entries {
                let key = k.as_str().map(str::to_string);
                let at = entries
                    .iter()
                    .position(|(bk, _)| key.is_some() && bk.as_str() == key.as_deref());
                match (at, v.is_null()) {
                    (Some(i), true) => {
                        entries.remove(i);
                    }
                    (None, true) => {}
                    (Some(i), false) => {
                        let (bk, bv) = entries.remove(i);
                        entries.insert(i, (bk, merge(bv, v)));
                    }
                    (None, false) => entries.push((k, v)),
                }
            }
            Node {
                value: Value::Map(entries),
                ..base
            }
        }
        (_, over_value) => Node {
            value: over_value,
            ..over
        },
    }
}

/// The first document of a values file, which must be a mapping (or empty: `None`).
pub(super) fn parse_values(bytes: &[u8], file: &Rc<str>, layer: u32) -> Result<Option<Node>, DiscoverError> {
    let root = parse_yaml(bytes, file, layer)?.into_iter().next();
    match root {
        None => Ok(None),
        Some(n) if n.is_null() => Ok(None),
        Some(
            n @ Node {
                value: Value::Map(_), ..
            },
        ) => Ok(Some(n)),
        Some(n) => Err(DiscoverError::Chart {
            file: format!("{file}:{}", n.line),
            message: "values must be a mapping at the top".into(),
        }),
    }
}

/// Parse every document of a YAML stream into nodes, resolving aliases and `<<` merge keys.
pub(super) fn parse_yaml(bytes: &[u8], file: &Rc<str>, layer: u32) -> Result<Vec<Node>, DiscoverError> {
    let error = |line: usize, column: usize, message: String| DiscoverError::Yaml {
        file: file.to_string(),
        line,
        column,
        message,
    };
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let valid = &bytes[..e.valid_up_to()];
        let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = String::from_utf8_lossy(valid.rsplit(|&b| b == b'\n').next().unwrap_or(valid))
            .chars()
            .count()
            + 1;
        error(line, column, "not UTF-8".into())
    })?;
    let is_quoted_indentation = |r: &Result<Vec<Node>, DiscoverError>| matches!(r, Err(DiscoverError::Yaml { message, .. }) if message == QUOTED_INDENTATION);
    let first = parse_text(text, file, layer);
    if !is_quoted_indentation(&first) {
        return first;
    }
    // Re-indent every quoted scalar at once (re-parsing after each one is quadratic in a large
    // file), then, should that pass have missed one, one at a time where the parser stops.
    let mut text = reindent_all_quoted(text);
    for _ in 0..MAX_QUOTED_REINDENTS {
        match parse_text(&text, file, layer) {
            Err(DiscoverError::Yaml {
                line, column, message, ..
            }) if message == QUOTED_INDENTATION => match reindent_quoted(&text, line, column - 1) {
                Some(fixed) => text = fixed,
                None => break,
            },
            result => return result,
        }
    }
    first
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn parse(text: &str) -> Result<Vec<Node>, DiscoverError> {
        parse_yaml(text.as_bytes(), &Rc::from("f.yaml"), 0)
    }

    fn at<'n>(node: &'n Node, path: &[&str]) -> &'n Node {
        path.iter()
            .fold(node, |n, k| n.get(k).unwrap_or_else(|| panic!("no `{k}`")))
    }

    /// The shape of the CRD descriptions in Calico v3.22's tigera-operator.yaml that
    /// saphyr-parser rejects and kubectl accepts.
    const CRD_DESCRIPTION_LEFT_OF_ITS_KEY: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: things.example.com
spec:
  versions:
    - name: v1
      schema:
        openAPIV3Schema:
          properties:
            spec:
              description: "Spec of the thing. It is long
            and continues left of its key,
       even further left."
              type: object
            status:
              description: 'It''s single-quoted
          too'
"#;

    #[test]
    fn quoted_scalar_continuation_left_of_its_key_parses_as_kubectl_reads_it() {
        let docs = parse(CRD_DESCRIPTION_LEFT_OF_ITS_KEY).unwrap();
        let props = at(&docs[0], &["spec", "versions"]);
        let Value::Seq(items) = &props.value else {
            panic!("versions is a list")
        };
        let props = at(&items[0], &["schema", "openAPIV3Schema", "properties"]);
        let spec = at(props, &["spec", "description"]);
        assert_eq!(
            spec.text(),
            Some("Spec of the thing. It is long and continues left of its key, even further left.")
        );
        assert_eq!(spec.line, 12);
        assert_eq!(at(props, &["spec", "type"]).line, 15);
        let status = at(props, &["status", "description"]);
        assert_eq!(status.text(), Some("It's single-quoted too"));
        assert_eq!(status.line, 17);
    }

    #[test]
    fn one_pass_reindents_every_quoted_scalar_and_leaves_block_scalars_alone() {
        let text = r#"a:
  b: "one
 two"
  c: |
    not "a quoted
    scalar: "in a block
  d: 'it''s
x'
  e: [x, "in
 flow"]
  f: plain 'not quoted
  g: "x" # "comment
"#;
        let fixed = reindent_all_quoted(text);
        parse_text(&fixed, &Rc::from("f.yaml"), 0).unwrap();
        let lines: Vec<&str> = fixed.lines().collect();
        let original: Vec<&str> = text.lines().collect();
        assert_eq!(lines[2], "     two\"");
        assert_eq!(lines[3..6], original[3..6]);
        assert_eq!(lines[7], "     x'");
        assert_eq!(lines[9], "         flow\"]");
        assert_eq!(lines[10..], original[10..]);
        assert_eq!(fixed.lines().count(), text.lines().count());
    }

    #[test]
    fn many_misindented_scalars_in_a_large_file_parse_in_one_pass() {
        let mut text = String::new();
        for i in 0..300 {
            text.push_str(&format!(
                "---\napiVersion: v1\nkind: X\nspec:\n  a:\n    description: \"doc {i}\n  continues\"\n"
            ));
            for j in 0..100 {
                text.push_str(&format!("    k{j}: plain value {j}\n"));
            }
        }
        assert!(parse_text(&text, &Rc::from("f.yaml"), 0).is_err());
        let docs = parse(&text).unwrap();
        assert_eq!(docs.len(), 300);
        assert_eq!(
            at(&docs[299], &["spec", "a", "description"]).text(),
            Some("doc 299 continues")
        );
    }

    #[test]
    fn reindenting_keeps_escapes_and_escaped_line_breaks() {
        let text = "a:\n  b: \"x \\\" y\\\n z\\\\\"\n  c: 1\n";
        let docs = parse(text).unwrap();
        assert_eq!(at(&docs[0], &["a", "b"]).text(), Some("x \" yz\\"));
        assert_eq!(at(&docs[0], &["a", "c"]).line, 4);
    }

    #[test]
    fn unterminated_quoted_scalar_is_still_an_error() {
        let e = parse("a:\n  b: \"open\n c: 1\n").unwrap_err();
        assert!(matches!(e, DiscoverError::Yaml { line: 2, .. }), "{e}");
    }

    #[test]
    fn longhorn_questions_yaml_parses() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/corpus/charts/C06-longhorn/context/charts/longhorn/questions.yaml"
        );
        let Ok(bytes) = fs::read(path) else {
            return eprintln!("skipped: {path} is absent");
        };
        parse_yaml(&bytes, &Rc::from("questions.yaml"), 0).unwrap();
    }
}
