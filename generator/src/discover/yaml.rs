//! YAML with positions: every node keeps its file, line and values precedence, aliases and
//! merge keys are resolved, and Helm's coalescing of values is [`merge`].

use std::collections::HashMap;
use std::rc::Rc;

use saphyr_parser::{Event, Parser, ScalarStyle};

use super::{DiscoverError, MAX_YAML_DEPTH, MAX_YAML_NODES};

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

/// The message of saphyr-parser's scanner for a quoted scalar whose continuation lines sit left
/// of the block they are in.
const QUOTED_INDENTATION: &str = "invalid indentation in quoted scalar";
/// Quoted scalars re-indented one at a time, after [`reindent_all_quoted`], before the parser's
/// error is taken as it is.
const MAX_QUOTED_REINDENTS: usize = 100;

/// `text` with the continuation lines of the quoted scalar whose opening quote is at `line`
/// (1-based) and `column` (0-based, in characters) indented to at least the quote's column.
///
/// YAML 1.2 (6.3, line prefixes) wants them indented more than the block around them, and
/// saphyr-parser enforces it, but libyaml, go-yaml (kubectl, Helm) and PyYAML do not, and real
/// manifests rely on that (Calico's tigera-operator.yaml, Longhorn's questions.yaml). The
/// leading white space of a flow scalar's continuation line is never part of its value, so
/// adding spaces there changes no value and no line number. `None` when there is no quoted
/// scalar there.
fn reindent_quoted(text: &str, line: usize, column: usize) -> Option<String> {
    let line_start = if line <= 1 {
        0
    } else {
        text.match_indices('\n').nth(line - 2)?.0 + 1
    };
    let quote_at = line_start + text[line_start..].char_indices().nth(column)?.0;
    let quote = text[quote_at..].chars().next()?;
    if quote != '"' && quote != '\'' {
        return None;
    }
    let mut out = String::with_capacity(text.len() + 256);
    out.push_str(&text[..=quote_at]);
    let mut chars = text[quote_at + 1..].char_indices().peekable();
    let body_start = quote_at + 1;
    while let Some((i, c)) = chars.next() {
        out.push(c);
        match c {
            '\\' if quote == '"' => {
                if let Some(&(_, next)) = chars.peek() {
                    if next != '\n' && next != '\r' {
                        out.push(next);
                        chars.next();
                    }
                }
            }
            '\'' if quote == '\'' => {
                if chars.peek().is_some_and(|&(_, next)| next == '\'') {
                    out.push('\'');
                    chars.next();
                } else {
                    out.push_str(&text[body_start + i + 1..]);
                    return Some(out);
                }
            }
            '"' if quote == '"' => {
                out.push_str(&text[body_start + i + 1..]);
                return Some(out);
            }
            '\n' => {
                let rest = &text[body_start + i + 1..];
                let spaces = rest.len() - rest.trim_start_matches(' ').len();
                out.extend(std::iter::repeat_n(' ', column.saturating_sub(spaces)));
            }
            _ => {}
        }
    }
    None // unterminated: let the parser say so
}

/// `text` with the continuation lines of every multi-line quoted scalar indented to at least
/// its opening quote's column: [`reindent_quoted`] for the whole file in one pass. A quote opens
/// a scalar where a token starts (at the start of a line's content, or after `- `, `: `, `? `, or
/// `[`, `{`, `,` in a flow collection); comments and block scalars (`|`, `>`) are skipped. Only
/// used on a file the parser has already rejected; what it misses, [`reindent_quoted`] fixes.
fn reindent_all_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 1024);
    // A quoted scalar that goes on past its line: (quote, column continuation lines need).
    let mut open: Option<(char, usize)> = None;
    let mut flow_depth = 0usize;
    // Lines more indented than this (or blank) are a block scalar's content.
    let mut block_parent: Option<usize> = None;
    for line in text.split_inclusive('\n') {
        let indent = line.len() - line.trim_start_matches(' ').len();
        if let Some(parent) = block_parent {
            if line.trim().is_empty() || indent > parent {
                out.push_str(line);
                continue;
            }
            block_parent = None;
        }
        let mut line = line;
        if let Some((_, need)) = open {
            if indent < need && !line.trim().is_empty() {
                out.extend(std::iter::repeat_n(' ', need - indent));
            }
        } else {
            line = &line[indent..];
            out.push_str(&" ".repeat(indent));
        }
        let mut column = out.len() - out.rfind('\n').map_or(0, |i| i + 1);
        // The last character that is not white space, outside quotes (`None` at the line start).
        let mut prev: Option<char> = None;
        let mut code_end = line.len();
        let mut chars = line.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match open {
                Some(('"', _)) if c == '\\' => {
                    if let Some(&(_, next)) = chars.peek() {
                        if next != '\n' && next != '\r' {
                            chars.next();
                            column += 1;
                        }
                    }
                }
                Some((q, _)) if c == q => {
                    if q == '\'' && chars.peek().is_some_and(|&(_, n)| n == '\'') {
                        chars.next();
                        column += 1;
                    } else {
                        open = None;
                        prev = Some(c);
                    }
                }
                Some(_) => {}
                None => match c {
                    '#' if prev.is_none() || line[..i].ends_with([' ', '\t']) => {
                        code_end = i;
                        break;
                    }
                    '"' | '\'' if token_start(prev, flow_depth, &line[..i]) => open = Some((c, column)),
                    '[' | '{' if token_start(prev, flow_depth, &line[..i]) => {
                        flow_depth += 1;
                        prev = Some(c);
                    }
                    ']' | '}' if flow_depth > 0 => {
                        flow_depth -= 1;
                        prev = Some(c);
                    }
                    ' ' | '\t' | '\r' | '\n' => {}
                    _ => prev = Some(c),
                },
            }
            column += 1;
        }
        out.push_str(line);
        if open.is_none() && flow_depth == 0 && opens_block_scalar(&line[..code_end]) {
            block_parent = Some(indent);
        }
    }
    out
}

/// Whether a quote or flow bracket after `before` (the line so far) starts a token.
fn token_start(prev: Option<char>, flow_depth: usize, before: &str) -> bool {
    match prev {
        None => true,
        Some('-' | ':' | '?') => before.ends_with([' ', '\t']),
        Some('[' | '{' | ',') => flow_depth > 0,
        _ => false,
    }
}

/// Whether a line's code (comment removed) ends with a block scalar header (`|`, `>-`, `|2+`).
fn opens_block_scalar(code: &str) -> bool {
    let code = code.trim_end();
    let head = code.trim_end_matches(['-', '+', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    let Some(before) = head.strip_suffix(['|', '>']) else {
        return false;
    };
    before.is_empty() || before.ends_with([' ', '\t'])
}

/// Parse every document of a YAML text; see [`parse_yaml`].
fn parse_text(text: &str, file: &Rc<str>, layer: u32) -> Result<Vec<Node>, DiscoverError> {
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
