//! The tree built from saphyr-parser's events: scalars with their text and style, sequences,
//! mappings with YAML 1.1 merge keys applied, aliases resolved (per document), under the caps on
//! nesting and on the nodes aliases expand to.

use std::collections::HashMap;
use std::rc::Rc;

use saphyr_parser::{Event, Parser, ScalarStyle};

use super::super::{DiscoverError, MAX_YAML_DEPTH, MAX_YAML_NODES};
use super::{Node, Value};

/// Parse every document of a YAML text; see [`parse_yaml`].
pub(super) fn parse_text(text: &str, file: &Rc<str>, layer: u32) -> Result<Vec<Node>, DiscoverError> {
    let error = |line: usize, column: usize, message: String| DiscoverError::Yaml {
        file: file.to_string(),
        line,
        column,
        message,
    };

    enum Frame {
        Seq {
            items: Vec<Node>,
            line: usize,
            anchor: usize,
            size: usize,
        },
        Map {
            entries: Vec<(Node, Node)>,
            key: Option<Node>,
            line: usize,
            anchor: usize,
            size: usize,
        },
    }
    let mut docs = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, (Node, usize)> = HashMap::new();
    let mut total = 0usize;
    let node = |value: Value, line: usize| Node {
        value,
        line,
        file: file.clone(),
        layer,
    };

    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| error(e.marker().line(), e.marker().col() + 1, e.info().to_string()))?;
        let line = span.start.line();
        let is_alias = matches!(event, Event::Alias(_));
        // A finished node with the number of nodes it stands for.
        let done: Option<(Node, usize)> = match event {
            Event::Scalar(text, style, anchor, tag) => {
                let plain = style == ScalarStyle::Plain && tag.is_none();
                let n = node(
                    Value::Scalar {
                        text: text.into_owned(),
                        plain,
                    },
                    line,
                );
                if anchor > 0 {
                    anchors.insert(anchor, (n.clone(), 1));
                }
                Some((n, 1))
            }
            Event::Alias(id) => {
                let (n, size) = anchors
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| error(line, span.start.col() + 1, "alias to an unknown anchor".into()))?;
                Some((n, size))
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if stack.len() >= MAX_YAML_DEPTH {
                    let message = format!("nested more than {MAX_YAML_DEPTH} levels deep");
                    return Err(error(line, span.start.col() + 1, message));
                }
                stack.push(match event {
                    Event::SequenceStart(..) => Frame::Seq {
                        items: Vec::new(),
                        line,
                        anchor,
                        size: 1,
                    },
                    _ => Frame::Map {
                        entries: Vec::new(),
                        key: None,
                        line,
                        anchor,
                        size: 1,
                    },
                });
                None
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (n, anchor, size) = match stack.pop().expect("the parser balances start and end events") {
                    Frame::Seq {
                        items,
                        line,
                        anchor,
                        size,
                    } => (node(Value::Seq(items), line), anchor, size),
                    Frame::Map {
                        entries,
                        line,
                        anchor,
                        size,
                        ..
                    } => (node(Value::Map(apply_merge_keys(entries)), line), anchor, size),
                };
                if anchor > 0 {
                    anchors.insert(anchor, (n.clone(), size));
                }
                Some((n, size))
            }
            Event::DocumentStart(_) => {
                anchors.clear(); // anchors do not cross documents
                None
            }
            _ => None,
        };
        let Some((n, size)) = done else { continue };
        // Only aliases multiply nodes beyond what the file spells out (a "billion laughs"
        // document); a large plain file is fine.
        if is_alias {
            total += size;
        }
        if total > MAX_YAML_NODES {
            let message = format!("expands to more than {MAX_YAML_NODES} nodes (through aliases?)");
            return Err(error(line, span.start.col() + 1, message));
        }
        match stack.last_mut() {
            None => docs.push(n),
            Some(Frame::Seq { items, size: s, .. }) => {
                *s += size;
                items.push(n);
            }
            Some(Frame::Map {
                entries, key, size: s, ..
            }) => {
                *s += size;
                match key.take() {
                    Some(k) => entries.push((k, n)),
                    None => *key = Some(n),
                }
            }
        }
    }
    Ok(docs)
}

/// YAML 1.1 merge keys (`<<: *defaults`), which Helm's and kubectl's parsers honour: keys of the
/// merged mappings are added unless the mapping sets them itself; earlier mappings win.
pub(super) fn apply_merge_keys(entries: Vec<(Node, Node)>) -> Vec<(Node, Node)> {
    let is_merge = |k: &Node| k.is_plain() && k.as_str() == Some("<<");
    if !entries
        .iter()
        .any(|(k, v)| is_merge(k) && matches!(v.value, Value::Map(_) | Value::Seq(_)))
    {
        return entries;
    }
    let mut own = Vec::new();
    let mut merged = Vec::new();
    for (k, v) in entries {
        match (is_merge(&k), v.value) {
            (true, Value::Map(m)) => merged.push(m),
            (true, Value::Seq(items)) => merged.extend(items.into_iter().filter_map(|i| match i.value {
                Value::Map(m) => Some(m),
                _ => None,
            })),
            (_, value) => own.push((k, Node { value, ..v })),
        }
    }
    for (k, v) in merged.into_iter().flatten() {
        if !own
            .iter()
            .any(|(ok, _)| ok.as_str().is_some() && ok.as_str() == k.as_str())
        {
            own.push((k, v));
        }
    }
    own
}
