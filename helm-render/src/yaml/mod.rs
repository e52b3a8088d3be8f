//! YAML to [`Value`] as Helm reads it through `sigs.k8s.io/yaml`: YAML 1.1 scalars
//! (`yes`/`on` are booleans), every number a float64, anchors and `<<` merge keys. The
//! write side, `toYaml`, is in `dump.rs`.

mod dump;

pub use dump::{quote_str, to_yaml};

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle};

use crate::value::{Map, Value};

/// A YAML text that could not be loaded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("yaml line {line}: {message}")]
pub struct YamlError {
    /// 1-based line of the problem.
    pub line: usize,
    pub message: String,
}

/// Nesting deeper than this is refused (hostile input).
const MAX_DEPTH: usize = 256;
/// Alias expansions beyond this are refused (billion laughs).
const MAX_NODES: usize = 2_000_000;

/// Loads the first document of a YAML text; an empty text is `Null`.
pub fn load(text: &str) -> Result<Value, YamlError> {
    Ok(load_all(text)?.into_iter().next().unwrap_or(Value::Null))
}

/// Loads the first document keeping numbers as their text, as Go does when it reads YAML
/// into string fields (Chart.yaml's `version: 1.10` stays "1.10").
pub fn load_text_numbers(text: &str) -> Result<Value, YamlError> {
    Ok(load_docs(text, true)?.into_iter().next().unwrap_or(Value::Null))
}

/// Loads every document of a YAML stream.
pub fn load_all(text: &str) -> Result<Vec<Value>, YamlError> {
    load_docs(text, false)
}

fn load_docs(text: &str, numbers_as_text: bool) -> Result<Vec<Value>, YamlError> {
    match load_docs_strict(text, numbers_as_text) {
        Ok(v) => Ok(v),
        Err(e) => match reindent_flow_closers(text) {
            Some(repaired) => load_docs_strict(&repaired, numbers_as_text).map_err(|_| e),
            None => Err(e),
        },
    }
}

/// Go's YAML parser accepts a flow collection whose closing `]`/`}` line is indented no
/// deeper than its key (`args: [` ... `]` under `args`); the YAML spec and saphyr do not.
/// Such a line holds only flow punctuation, whose indentation means nothing, so it is moved
/// to the previous line's indentation. `None` when there is no such line.
fn reindent_flow_closers(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len() + 64);
    let mut prev_indent = 0;
    let mut changed = false;
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let trimmed = body.trim_start();
        let indent = body.len() - trimmed.len();
        let closer = !trimmed.is_empty() && trimmed.chars().all(|c| matches!(c, ']' | '}' | ',' | ' '));
        if closer && indent <= prev_indent {
            out.extend(std::iter::repeat_n(' ', prev_indent + 1));
            out.push_str(&line[indent..]);
            changed = true;
            continue;
        }
        if !trimmed.is_empty() && !trimmed.starts_with('#') {
            prev_indent = indent;
        }
        out.push_str(line);
    }
    changed.then_some(out)
}

fn load_docs_strict(text: &str, numbers_as_text: bool) -> Result<Vec<Value>, YamlError> {
    let mut loader = Loader {
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
        nodes: 0,
        line: 1,
        numbers_as_text,
    };
    let mut docs = Vec::new();
    loop {
        match loader.next()? {
            None | Some(Event::StreamEnd) => break,
            Some(Event::DocumentStart(_)) => {
                let ev = loader.next()?.unwrap_or(Event::StreamEnd);
                let v = loader.node(ev, 0)?;
                docs.push(v);
            }
            Some(_) => {}
        }
    }
    Ok(docs)
}

struct Loader<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    /// Anchored values with their node counts (what an alias to them costs).
    anchors: HashMap<usize, (Value, usize)>,
    nodes: usize,
    line: usize,
    numbers_as_text: bool,
}

impl<'a> Loader<'a> {
    fn next(&mut self) -> Result<Option<Event<'a>>, YamlError> {
        match self.parser.next_event() {
            None => Ok(None),
            Some(Ok((ev, span))) => {
                self.line = span.start.line();
                Ok(Some(ev))
            }
            Some(Err(e)) => Err(YamlError {
                line: e.marker().line(),
                message: e.info().to_string(),
            }),
        }
    }

    fn err(&self, message: &str) -> YamlError {
        YamlError {
            line: self.line,
            message: message.to_string(),
        }
    }

    fn count(&mut self, n: usize) -> Result<(), YamlError> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > MAX_NODES {
            return Err(self.err("document too large (alias expansion)"));
        }
        Ok(())
    }

    fn anchor(&mut self, id: usize, v: &Value) {
        if id > 0 {
            self.anchors.insert(id, (v.clone(), size(v, MAX_NODES + 1)));
        }
    }

    fn node(&mut self, ev: Event<'a>, depth: usize) -> Result<Value, YamlError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                let tag = tag.map(|t| t.suffix.clone());
                let mut v = resolve_scalar(&text, style, tag.as_deref());
                if self.numbers_as_text && matches!(v, Value::Float(_)) {
                    v = Value::str(text.as_ref());
                }
                self.anchor(anchor, &v);
                self.count(1)?;
                Ok(v)
            }
            Event::Alias(id) => {
                let n = self
                    .anchors
                    .get(&id)
                    .map(|(_, n)| *n)
                    .ok_or_else(|| self.err("unknown alias"))?;
                self.count(n)?;
                Ok(self.anchors.get(&id).map(|(v, _)| v.clone()).unwrap_or_default())
            }
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                loop {
                    let ev = self.next()?.ok_or_else(|| self.err("unexpected end in sequence"))?;
                    if matches!(ev, Event::SequenceEnd) {
                        break;
                    }
                    items.push(self.node(ev, depth + 1)?);
                }
                let v = Value::List(items);
                self.count(1)?;
                self.anchor(anchor, &v);
                Ok(v)
            }
            Event::MappingStart(anchor, _) => {
                let mut map = Map::new();
                let mut merged = Vec::new();
                loop {
                    let ev = self.next()?.ok_or_else(|| self.err("unexpected end in mapping"))?;
                    if matches!(ev, Event::MappingEnd) {
                        break;
                    }
                    let is_merge = matches!(&ev, Event::Scalar(t, ScalarStyle::Plain, _, _) if t == "<<");
                    let key = self.node(ev, depth + 1)?;
                    let vev = self.next()?.ok_or_else(|| self.err("unexpected end in mapping"))?;
                    let val = self.node(vev, depth + 1)?;
                    if is_merge {
                        match val {
                            Value::Map(m) => merged.push(m),
                            Value::List(l) => merged.extend(l.into_iter().filter_map(|v| match v {
                                Value::Map(m) => Some(m),
                                _ => None,
                            })),
                            _ => return Err(self.err("merge key needs a mapping")),
                        }
                        continue;
                    }
                    map.insert(key_string(&key), val);
                }
                for m in merged {
                    for (k, v) in m {
                        map.entry(k).or_insert(v);
                    }
                }
                let v = Value::Map(map);
                self.count(1)?;
                self.anchor(anchor, &v);
                Ok(v)
            }
            _ => Err(self.err("unexpected YAML event")),
        }
    }
}

/// Node count of a value, counting no further than `cap`.
fn size(v: &Value, cap: usize) -> usize {
    let mut n = 1;
    match v {
        Value::List(l) => {
            for x in l {
                if n >= cap {
                    break;
                }
                n += size(x, cap - n);
            }
        }
        Value::Map(m) => {
            for x in m.values() {
                if n >= cap {
                    break;
                }
                n += size(x, cap - n);
            }
        }
        _ => {}
    }
    n
}

fn key_string(key: &Value) -> String {
    match key {
        Value::Null => "null".to_string(),
        other => crate::value::to_str(other),
    }
}

/// Resolves a scalar the way yaml.v2 does (YAML 1.1), numbers becoming float64 as after
/// Helm's YAML-to-JSON step.
pub(crate) fn resolve_scalar(text: &str, style: ScalarStyle, tag: Option<&str>) -> Value {
    if let Some(tag) = tag {
        match tag {
            "str" | "binary" => return Value::str(text),
            "int" | "float" => {
                return text
                    .trim()
                    .parse::<f64>()
                    .map(Value::Float)
                    .unwrap_or_else(|_| Value::str(text));
            }
            "bool" => return Value::Bool(matches!(text, "true" | "True" | "TRUE" | "yes" | "on")),
            "null" => return Value::Null,
            _ => {}
        }
    }
    if style != ScalarStyle::Plain {
        return Value::str(text);
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Value::Bool(true);
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Value::Bool(false);
        }
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Value::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        _ => {}
    }
    if let Some(f) = parse_yaml_number(text) {
        return Value::Float(f);
    }
    Value::str(text)
}

/// A YAML 1.1 int or float literal as yaml.v2 accepts it.
fn parse_yaml_number(text: &str) -> Option<f64> {
    let b = text.as_bytes();
    let first = *b.first()?;
    if !(first.is_ascii_digit() || first == b'-' || first == b'+' || first == b'.') {
        return None;
    }
    let body = text.trim_start_matches(['-', '+']);
    if body.is_empty() {
        return None;
    }
    let neg = text.starts_with('-');
    let plain = body.replace('_', "");
    let int = if let Some(h) = plain.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()
    } else if let Some(oct) = plain.strip_prefix("0o") {
        i64::from_str_radix(oct, 8).ok()
    } else if let Some(bin) = plain.strip_prefix("0b") {
        i64::from_str_radix(bin, 2).ok()
    } else if plain.len() > 1 && plain.starts_with('0') && plain.bytes().all(|c| c.is_ascii_digit()) {
        i64::from_str_radix(&plain[1..], 8).ok()
    } else if plain.bytes().all(|c| c.is_ascii_digit()) {
        return plain.parse::<f64>().ok().map(|f| if neg { -f } else { f });
    } else {
        None
    };
    if let Some(i) = int {
        let f = i as f64;
        return Some(if neg { -f } else { f });
    }
    // Floats: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
    let (mant, exp) = match plain.find(['e', 'E']) {
        Some(i) => (&plain[..i], Some(&plain[i + 1..])),
        None => (plain.as_str(), None),
    };
    let mut parts = mant.splitn(2, '.');
    let ip = parts.next().unwrap_or("");
    let fp = parts.next();
    let ok_ip = ip.bytes().all(|c| c.is_ascii_digit());
    let ok_fp = fp.is_none_or(|f| f.bytes().all(|c| c.is_ascii_digit()));
    if !ok_ip || !ok_fp || (ip.is_empty() && fp.is_none_or(|f| f.is_empty())) {
        return None;
    }
    if let Some(e) = exp {
        let e = e.trim_start_matches(['-', '+']);
        if e.is_empty() || !e.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
    }
    text.replace('_', "").parse::<f64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_floats_and_yes_is_bool() {
        let v = load("port: 8080\nratio: 7.10\non: yes\nname: '01'\nhex: 0x10\nver: 1.2.3\nnn: ~").unwrap();
        let m = v.as_map().unwrap();
        assert_eq!(m["port"], Value::Float(8080.0));
        assert_eq!(m["ratio"], Value::Float(7.1));
        assert_eq!(m["true"], Value::Bool(true));
        assert_eq!(m["name"], Value::str("01"));
        assert_eq!(m["hex"], Value::Float(16.0));
        assert_eq!(m["ver"], Value::str("1.2.3"));
        assert_eq!(m["nn"], Value::Null);
    }

    #[test]
    fn anchors_and_merge_keys() {
        let v = load("base: &b\n  a: 1\n  b: 2\nderived:\n  <<: *b\n  b: 3\n").unwrap();
        let d = v.path("derived").unwrap().as_map().unwrap();
        assert_eq!(d["a"], Value::Float(1.0));
        assert_eq!(d["b"], Value::Float(3.0));
    }

    #[test]
    fn bad_yaml_is_an_error_with_line() {
        let e = load("a: 1\nb: [\n").unwrap_err();
        assert!(e.line >= 2, "{e}");
    }

    #[test]
    fn alias_expansion_bomb_is_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        assert!(load(&text).is_err());
    }

    #[test]
    fn flow_closer_at_key_indentation_is_accepted_as_go_does() {
        let v = load("vault:\n  server:\n    args: [\n      \"server\",\n      \"-dev\"\n    ]\n    x: 1\n").unwrap();
        assert_eq!(
            v.path("vault.server.args"),
            Some(&Value::List(vec!["server".into(), "-dev".into()]))
        );
        assert_eq!(v.path("vault.server.x"), Some(&Value::Float(1.0)));
    }

    #[test]
    fn multi_docs() {
        assert_eq!(load_all("a: 1\n---\nb: 2\n").unwrap().len(), 2);
    }
}
