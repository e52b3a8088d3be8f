//! `toYaml` as Helm writes it through `sigs.k8s.io/yaml` (yaml.v2): keys sorted, block
//! style, two-space indent, lists not indented under their key, strings plain, quoted or
//! literal blocks as yaml.v2 picks, numbers as after Helm's JSON round trip.

use saphyr_parser::ScalarStyle;

use super::resolve_scalar;
use crate::value::{format_float_g, Map, Value};

/// yaml.v2 folds plain and single-quoted scalars at spaces once a line passes this column.
const BEST_WIDTH: usize = 80;

/// `toYaml`: keys sorted, block style, two-space indent, lists not indented under their key,
/// one trailing newline removed (Helm's `strings.TrimSuffix(s, "\n")`).
pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    dump(v, 0, &mut out);
    if out.ends_with('\n') {
        out.pop();
    }
    out
}

/// The column the next character written to `out` lands in.
fn column(out: &str) -> usize {
    out[out.rfind('\n').map_or(0, |i| i + 1)..].chars().count()
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
            let col = column(out);
            out.push_str(&scalar(other, indent, col));
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
                let col = column(out);
                out.push_str(&scalar(v, indent + 2, col));
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

fn scalar(v: &Value, indent: usize, col: usize) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => yaml_float(*f),
        Value::String(s) => quote_at(s, indent.max(2), Some(col)),
        Value::Map(_) => "{}".into(),
        Value::List(_) => "[]".into(),
        Value::Files(_) => "{}".into(),
        Value::ApiVersions(a) => format!("[{}]", a.join(", ")),
    }
}

/// A float64 as it comes out of Helm's JSON round trip: integral values print as integers.
fn yaml_float(f: f64) -> String {
    if f.is_finite() && f == f.trunc() && f.abs() < 1e21 {
        // Go's JSON writes the shortest digits, zero-padded: 12345678901234567000.
        format!("{f}")
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
    quote_at(s, indent, None)
}

/// [`quote_str`] for a scalar starting at column `col` (`None`: never fold, as for keys).
fn quote_at(s: &str, indent: usize, col: Option<usize>) -> String {
    if s.contains('\n') {
        if let Some(block) = literal_block(s, indent) {
            return block;
        }
        return double_quoted(s);
    }
    let resolves_other = !matches!(resolve_scalar(s, ScalarStyle::Plain, None), Value::String(_));
    if resolves_other || is_base60(s) || is_timestamp(s) {
        return double_quoted_at(s, col, indent);
    }
    // yaml.v2 writes anything with a non-printable character (tab included) double-quoted.
    if s.chars().any(|c| c.is_control() || c == '\u{feff}') {
        return double_quoted_at(s, col, indent);
    }
    if plain_allowed(s) {
        return fold(s, col, indent, false);
    }
    fold(&format!("'{}'", s.replace('\'', "''")), col, indent, true)
}

/// yaml.v2's line folding: a single space (not first or last) becomes a line break when the
/// column has passed [`BEST_WIDTH`].
fn fold(text: &str, col: Option<usize>, indent: usize, quoted: bool) -> String {
    let Some(mut column) = col else {
        return text.to_string();
    };
    if column + text.chars().count() <= BEST_WIDTH || !text.contains(' ') {
        return text.to_string();
    }
    let chars: Vec<char> = text.chars().collect();
    let (first, last) = if quoted {
        (1, chars.len() - 2)
    } else {
        (0, chars.len() - 1)
    };
    let mut out = String::with_capacity(text.len() + 8);
    let mut spaces = false;
    for (i, &c) in chars.iter().enumerate() {
        if c == ' ' {
            let next_space = chars.get(i + 1) == Some(&' ');
            if !spaces && column > BEST_WIDTH && !next_space && i > first && i < last {
                out.push('\n');
                out.extend(std::iter::repeat_n(' ', indent));
                column = indent;
                spaces = true;
                continue;
            }
            spaces = true;
        } else {
            spaces = false;
        }
        out.push(c);
        column += 1;
    }
    out
}

/// A YAML 1.1 timestamp (`2024-01-02`, `2024-01-02T10:00:00Z`), which yaml.v2 quotes.
fn is_timestamp(s: &str) -> bool {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(
            r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(([Tt]|[ \t]+)[0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(\.[0-9]*)?([ \t]*(Z|[-+][0-9]{1,2}(:[0-9]{2})?))?)?$",
        )
        .expect("constant regex is valid")
    })
    .is_match(s)
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

/// A double-quoted scalar folded as yaml.v2 does: past [`BEST_WIDTH`] a space becomes a
/// line break, and a following space is kept by escaping the break with `\`.
fn double_quoted_at(s: &str, col: Option<usize>, indent: usize) -> String {
    let plain = double_quoted(s);
    let Some(mut column) = col else {
        return plain;
    };
    if column + plain.chars().count() <= BEST_WIDTH {
        return plain;
    }
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::from("\"");
    column += 1;
    let mut spaces = false;
    for (i, &c) in chars.iter().enumerate() {
        if c == ' ' {
            if !spaces && column > BEST_WIDTH && i > 0 && i + 1 < chars.len() {
                out.push('\n');
                out.extend(std::iter::repeat_n(' ', indent));
                column = indent;
                if chars.get(i + 1) == Some(&' ') {
                    out.push('\\');
                    column += 1;
                }
                spaces = true;
                continue;
            }
            spaces = true;
        } else {
            spaces = false;
        }
        let esc = double_quoted(&c.to_string());
        let esc = &esc[1..esc.len() - 1];
        out.push_str(esc);
        column += esc.chars().count();
    }
    out.push('"');
    out
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

    #[test]
    fn matches_yaml_v2_details() {
        let s = |x: &str| to_yaml(&Value::str(x));
        assert_eq!(s("2024-01-02"), "\"2024-01-02\"");
        assert_eq!(s("a\tb"), "\"a\\tb\"");
        assert_eq!(s("0o17"), "\"0o17\"");
        assert_eq!(s("  lead\nx\n\n"), "|2+\n    lead\n  x\n");
        assert_eq!(to_yaml(&Value::Float(12345678901234567890.0)), "12345678901234567000");
        let long = "this is a very long string that goes past eighty characters in width so that yaml might fold it";
        let mut m = Map::new();
        m.insert("k".into(), Value::str(long));
        assert_eq!(
            to_yaml(&Value::Map(m)),
            "k: this is a very long string that goes past eighty characters in width so that yaml\n  might fold it"
        );
        let quoted =
            "tab\there and a very long string that goes past eighty characters in width so that yaml might fold";
        assert_eq!(
            s(quoted),
            "\"tab\\there and a very long string that goes past eighty characters in width so that\n  yaml might fold\""
        );
        // Folded output reads back as the same value.
        assert_eq!(load(&s(long)).unwrap(), Value::str(long));
        assert_eq!(load(&s(quoted)).unwrap(), Value::str(quoted));
    }
}
