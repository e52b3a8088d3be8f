//! `toYaml` as Helm writes it through `sigs.k8s.io/yaml` (yaml.v2): keys sorted, block
//! style, two-space indent, lists not indented under their key, strings plain, quoted or
//! literal blocks as yaml.v2 picks, numbers as after Helm's JSON round trip.

use saphyr_parser::ScalarStyle;

use super::resolve_scalar;
use crate::value::{format_float_g, Map, Value};

/// `toYaml`: keys sorted, block style, two-space indent, lists not indented under their key,
/// no trailing newline (Helm trims it).
pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    dump(v, 0, &mut out);
    while out.ends_with('\n') {
        out.pop();
    }
    out
}

fn dump(v: &Value, indent: usize, out: &mut String) {
    match v {
        Value::Map(m) if !m.is_empty() => dump_map(m, indent, out),
        Value::List(l) if !l.is_empty() => dump_list(l, indent, out),
        Value::Files(f) => {
            let m: Map = f.names().map(|n| (n.clone(), Value::str(f.get(n)))).collect();
            dump(&Value::Map(m), indent, out);
        }
        other => {
            out.push_str(&scalar(other, indent));
            out.push('\n');
        }
    }
}

fn pad(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

fn is_block(v: &Value) -> bool {
    match v {
        Value::Map(m) => !m.is_empty(),
        Value::List(l) => !l.is_empty(),
        Value::Files(f) => !f.is_empty(),
        _ => false,
    }
}

fn dump_map(m: &Map, indent: usize, out: &mut String) {
    let mut first = true;
    for (k, v) in m {
        if !first {
            pad(out, indent);
        }
        first = false;
        out.push_str(&quote_str(k, indent));
        out.push(':');
        match v {
            Value::Map(_) | Value::Files(_) if is_block(v) => {
                out.push('\n');
                pad(out, indent + 2);
                dump(v, indent + 2, out);
            }
            Value::List(_) if is_block(v) => {
                out.push('\n');
                pad(out, indent);
                dump(v, indent, out);
            }
            _ => {
                out.push(' ');
                out.push_str(&scalar(v, indent + 2));
                out.push('\n');
            }
        }
    }
}

fn dump_list(l: &[Value], indent: usize, out: &mut String) {
    let mut first = true;
    for v in l {
        if !first {
            pad(out, indent);
        }
        first = false;
        out.push_str("- ");
        dump(v, indent + 2, out);
    }
}

fn scalar(v: &Value, indent: usize) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => yaml_float(*f),
        Value::String(s) => quote_str(s, indent),
        Value::Map(_) => "{}".into(),
        Value::List(_) => "[]".into(),
        Value::Files(_) => "{}".into(),
        Value::ApiVersions(a) => format!("[{}]", a.join(", ")),
    }
}

/// A float64 as it comes out of Helm's JSON round trip: integral values print as integers.
fn yaml_float(f: f64) -> String {
    if f.is_finite() && f == f.trunc() && f.abs() < 1e21 {
        format!("{}", f as i128)
    } else if f.is_nan() {
        ".nan".into()
    } else if f.is_infinite() {
        if f > 0.0 {
            "+.inf".into()
        } else {
            "-.inf".into()
        }
    } else {
        format_float_g(f)
    }
}

/// A string scalar in the style yaml.v2 picks: plain, single-quoted, literal block or
/// double-quoted.
pub fn quote_str(s: &str, indent: usize) -> String {
    if s.contains('\n') {
        if let Some(block) = literal_block(s, indent) {
            return block;
        }
        return double_quoted(s);
    }
    let resolves_other = !matches!(resolve_scalar(s, ScalarStyle::Plain, None), Value::String(_));
    if resolves_other || is_base60(s) {
        return double_quoted(s);
    }
    if plain_allowed(s) {
        return s.to_string();
    }
    if s.chars().all(|c| !c.is_control() || c == '\t') {
        return format!("'{}'", s.replace('\'', "''"));
    }
    double_quoted(s)
}

fn is_base60(s: &str) -> bool {
    // yaml.v2 quotes sexagesimal-looking strings such as "1:20".
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() > 1
        && parts[0]
            .trim_start_matches(['-', '+'])
            .bytes()
            .all(|c| c.is_ascii_digit())
        && !parts[0].trim_start_matches(['-', '+']).is_empty()
        && parts[1..]
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 2 && p.bytes().all(|c| c.is_ascii_digit()))
}

fn plain_allowed(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if s.starts_with(' ') || s.ends_with(' ') || s.starts_with('\t') || s.ends_with('\t') {
        return false;
    }
    let second = s.chars().nth(1);
    match first {
        '-' | '?' | ':' if second.is_none_or(|c| c == ' ') => return false,
        ',' | '[' | ']' | '{' | '}' | '#' | '&' | '*' | '!' | '|' | '>' | '\'' | '"' | '%' | '@' | '`' => {
            return false;
        }
        _ => {}
    }
    if s.contains(": ") || s.contains(" #") || s.ends_with(':') || s.starts_with("---") || s.starts_with("...") {
        return false;
    }
    !s.chars().any(|c| c.is_control() || c == '\u{feff}')
}

fn literal_block(s: &str, indent: usize) -> Option<String> {
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return None;
    }
    if s.split('\n').any(|l| l.ends_with(' ') || l.ends_with('\t')) {
        return None;
    }
    let trailing = s.len() - s.trim_end_matches('\n').len();
    let chomp = match trailing {
        0 => "-",
        1 => "",
        _ => "+",
    };
    let body = match trailing {
        0 => s,
        1 => &s[..s.len() - 1],
        _ => &s[..s.len() - 1],
    };
    let ind = if s.starts_with(' ') || s.starts_with('\n') {
        "2"
    } else {
        ""
    };
    let mut out = format!("|{ind}{chomp}");
    for line in body.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            out.extend(std::iter::repeat_n(' ', indent.max(2)));
            out.push_str(line);
        }
    }
    Some(out)
}

/// A YAML double-quoted string (JSON-compatible escapes).
fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::load;

    #[test]
    fn dump_matches_helm_style() {
        let v = load("b:\n  - x: 1\n    yy: 'true'\n  - plain\na: {}\nc: ''\nd: 'a: b'\ne: \"l1\\nl2\"\nf: 1000000\n")
            .unwrap();
        assert_eq!(
            to_yaml(&v),
            "a: {}\nb:\n- x: 1\n  yy: \"true\"\n- plain\nc: \"\"\nd: 'a: b'\ne: |-\n  l1\n  l2\nf: 1000000"
        );
    }

    #[test]
    fn round_trip() {
        let src = "a:\n  b:\n  - 1\n  - - x\n    - y\n  c: \"null\"\n";
        let v = load(src).unwrap();
        assert_eq!(load(&to_yaml(&v)).unwrap(), v);
    }
}
