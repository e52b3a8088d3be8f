//! Sprig's string functions (`quote`, `trim*`, `indent`, `trunc`, `replace`, `split*`, case
//! conversions, `regex*`, ...) and Go's `html`/`js`/`urlquery` escapers.

use std::collections::HashMap;

use super::{want, want_at_least, FnResult, FuncError};
use crate::value::{to_i64, to_str, Map, Value};

/// Sprig's `strslice`: a list of strings from a list, a string or nil.
pub fn strslice(v: &Value) -> Vec<String> {
    match v {
        Value::List(l) => l.iter().filter(|x| !matches!(x, Value::Null)).map(to_str).collect(),
        Value::Null => Vec::new(),
        other => vec![to_str(other)],
    }
}

fn s(v: &str) -> FnResult {
    Ok(Value::str(v))
}

/// Dispatches the string functions; `None` when `name` is not one of them.
pub fn call(name: &str, a: &[Value]) -> Option<FnResult> {
    let arg = |i: usize| a.get(i).map(to_str).unwrap_or_default();
    let r = match name {
        "quote" => Ok(Value::String(
            a.iter()
                .filter(|v| !matches!(v, Value::Null))
                .map(|v| super::gofmt::quote(&to_str(v)))
                .collect::<Vec<_>>()
                .join(" "),
        )),
        "squote" => Ok(Value::String(
            a.iter()
                .filter(|v| !matches!(v, Value::Null))
                .map(|v| format!("'{}'", to_str(v)))
                .collect::<Vec<_>>()
                .join(" "),
        )),
        "cat" => Ok(Value::String(
            a.iter()
                .filter(|v| !matches!(v, Value::Null))
                .map(to_str)
                .collect::<Vec<_>>()
                .join(" "),
        )),
        // Sprig's strval prints nil with %v: "<nil>".
        "toString" => want(name, a, 1).map(|_| Value::String(a[0].to_go_string())),
        "trim" => want(name, a, 1).and_then(|_| s(arg(0).trim())),
        "trimAll" => want(name, a, 2).and_then(|_| {
            let cut = arg(0);
            s(arg(1).trim_matches(|c| cut.contains(c)))
        }),
        "trimPrefix" => want(name, a, 2).and_then(|_| {
            let (p, v) = (arg(0), arg(1));
            s(v.strip_prefix(p.as_str()).unwrap_or(&v))
        }),
        "trimSuffix" => want(name, a, 2).and_then(|_| {
            let (p, v) = (arg(0), arg(1));
            s(v.strip_suffix(p.as_str()).unwrap_or(&v))
        }),
        "upper" => want(name, a, 1).and_then(|_| s(&arg(0).to_uppercase())),
        "lower" => want(name, a, 1).and_then(|_| s(&arg(0).to_lowercase())),
        "title" => want(name, a, 1).and_then(|_| s(&title(&arg(0)))),
        "untitle" => want(name, a, 1).and_then(|_| s(&untitle(&arg(0)))),
        "swapcase" => want(name, a, 1).and_then(|_| {
            s(&arg(0)
                .chars()
                .map(|c| {
                    if c.is_uppercase() {
                        c.to_lowercase().collect::<String>()
                    } else {
                        c.to_uppercase().collect()
                    }
                })
                .collect::<String>())
        }),
        "repeat" => want(name, a, 2).and_then(|_| {
            let n = to_i64(&a[0]).max(0) as usize;
            let v = arg(1);
            if n.saturating_mul(v.len()) > 16 << 20 {
                return Err("repeat: output too large".into());
            }
            s(&v.repeat(n))
        }),
        "substr" => want(name, a, 3).and_then(|_| s(&substr(to_i64(&a[0]), to_i64(&a[1]), &arg(2)))),
        "trunc" => want(name, a, 2).and_then(|_| s(&trunc(to_i64(&a[0]), &arg(1)))),
        "abbrev" => want(name, a, 2).and_then(|_| {
            let w = to_i64(&a[0]);
            let v = arg(1);
            if w < 4 || v.chars().count() as i64 <= w {
                return s(&v);
            }
            let keep: String = v.chars().take(w as usize - 3).collect();
            s(&format!("{keep}..."))
        }),
        "abbrevboth" => want(name, a, 3).and_then(|_| s(&arg(2))),
        "nospace" => {
            want(name, a, 1).and_then(|_| s(&arg(0).chars().filter(|c| !c.is_whitespace()).collect::<String>()))
        }
        "initials" => want(name, a, 1).and_then(|_| {
            s(&arg(0)
                .split_whitespace()
                .filter_map(|w| w.chars().next())
                .collect::<String>())
        }),
        "replace" => want(name, a, 3).and_then(|_| {
            let (old, new, v) = (arg(0), arg(1), arg(2));
            if old.is_empty() {
                return s(&v);
            }
            s(&v.replace(&old, &new))
        }),
        "contains" => want(name, a, 2).map(|_| Value::Bool(arg(1).contains(&arg(0)))),
        "hasPrefix" => want(name, a, 2).map(|_| Value::Bool(arg(1).starts_with(&arg(0)))),
        "hasSuffix" => want(name, a, 2).map(|_| Value::Bool(arg(1).ends_with(&arg(0)))),
        "indent" => want(name, a, 2).and_then(|_| s(&indent(to_i64(&a[0]), &arg(1)))),
        "nindent" => want(name, a, 2).and_then(|_| s(&format!("\n{}", indent(to_i64(&a[0]), &arg(1))))),
        "wrap" => want(name, a, 2).and_then(|_| s(&wrap(to_i64(&a[0]), &arg(1), "\n"))),
        "wrapWith" => want(name, a, 3).and_then(|_| s(&wrap(to_i64(&a[0]), &arg(2), &arg(1)))),
        "split" => want(name, a, 2).map(|_| {
            let parts: Map = split(&arg(1), &arg(0), -1)
                .into_iter()
                .enumerate()
                .map(|(i, p)| (format!("_{i}"), Value::String(p)))
                .collect();
            Value::Map(parts)
        }),
        "splitn" => want(name, a, 3).map(|_| {
            let parts: Map = split(&arg(2), &arg(0), to_i64(&a[1]))
                .into_iter()
                .enumerate()
                .map(|(i, p)| (format!("_{i}"), Value::String(p)))
                .collect();
            Value::Map(parts)
        }),
        "splitList" => {
            want(name, a, 2).map(|_| Value::List(split(&arg(1), &arg(0), -1).into_iter().map(Value::String).collect()))
        }
        "join" => want(name, a, 2).map(|_| Value::String(strslice(&a[1]).join(&arg(0)))),
        "plural" => want(name, a, 3).map(|_| {
            if to_i64(&a[2]) == 1 {
                Value::String(arg(0))
            } else {
                Value::String(arg(1))
            }
        }),
        "camelcase" => want(name, a, 1).and_then(|_| s(&camel(&arg(0)))),
        "snakecase" => want(name, a, 1).and_then(|_| s(&snake(&arg(0), '_'))),
        "kebabcase" => want(name, a, 1).and_then(|_| s(&snake(&arg(0), '-'))),
        "shuffle" => want(name, a, 1).and_then(|_| s(&arg(0))),
        "regexMatch" | "mustRegexMatch" => {
            want(name, a, 2).and_then(|_| Ok(Value::Bool(regex(&arg(0))?.is_match(&arg(1)))))
        }
        "regexFind" | "mustRegexFind" => want(name, a, 2).and_then(|_| {
            Ok(Value::String(
                regex(&arg(0))?
                    .find(&arg(1))
                    .map(|m| m.as_str().to_string())
                    .unwrap_or_default(),
            ))
        }),
        "regexFindAll" | "mustRegexFindAll" => want(name, a, 3).and_then(|_| {
            let re = regex(&arg(0))?;
            let n = to_i64(&a[2]);
            let text = arg(1);
            let it = re.find_iter(&text).map(|m| Value::str(m.as_str()));
            Ok(Value::List(if n < 0 {
                it.collect()
            } else {
                it.take(n as usize).collect()
            }))
        }),
        "regexReplaceAll" | "mustRegexReplaceAll" => want(name, a, 3).and_then(|_| {
            Ok(Value::String(
                regex(&arg(0))?.replace_all(&arg(1), arg(2).as_str()).into_owned(),
            ))
        }),
        "regexReplaceAllLiteral" | "mustRegexReplaceAllLiteral" => want(name, a, 3).and_then(|_| {
            Ok(Value::String(
                regex(&arg(0))?
                    .replace_all(&arg(1), regex::NoExpand(&arg(2)))
                    .into_owned(),
            ))
        }),
        "regexSplit" | "mustRegexSplit" => want(name, a, 3).and_then(|_| {
            let re = regex(&arg(0))?;
            let n = to_i64(&a[2]);
            let text = arg(1);
            let parts: Vec<Value> = if n < 0 {
                re.split(&text).map(Value::str).collect()
            } else {
                re.splitn(&text, n as usize).map(Value::str).collect()
            };
            Ok(Value::List(parts))
        }),
        "regexQuoteMeta" => want(name, a, 1).and_then(|_| s(&regex::escape(&arg(0)))),
        "toStrings" => want(name, a, 1).map(|_| Value::List(strslice(&a[0]).into_iter().map(Value::String).collect())),
        "sortAlpha" => want(name, a, 1).map(|_| {
            let mut l = strslice(&a[0]);
            l.sort();
            Value::List(l.into_iter().map(Value::String).collect())
        }),
        "b64enc" | "b64dec" | "b32enc" | "b32dec" => return None,
        _ => return None,
    };
    let _ = want_at_least;
    Some(r)
}

/// Compiled patterns by text, shared by all renders: charts call `regex*` with the same few
/// constant patterns over and over, and compiling one costs far more than matching it.
static REGEX_CACHE: std::sync::OnceLock<std::sync::Mutex<HashMap<String, regex::Regex>>> = std::sync::OnceLock::new();

/// Patterns kept at most (the cache starts over when full, so hostile charts cannot grow it).
const REGEX_CACHE_MAX: usize = 512;

fn regex(pat: &str) -> Result<regex::Regex, FuncError> {
    let cache = REGEX_CACHE.get_or_init(Default::default);
    if let Some(re) = cache.lock().ok().and_then(|c| c.get(pat).cloned()) {
        return Ok(re);
    }
    let re = regex::RegexBuilder::new(pat)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| format!("regexp: {e}"))?;
    if let Ok(mut c) = cache.lock() {
        if c.len() >= REGEX_CACHE_MAX {
            c.clear();
        }
        c.insert(pat.to_string(), re.clone());
    }
    Ok(re)
}

/// Go's `strings.SplitN` (n < 0: all).
fn split(v: &str, sep: &str, n: i64) -> Vec<String> {
    if n == 0 {
        return Vec::new();
    }
    if sep.is_empty() {
        let mut out: Vec<String> = v.chars().map(|c| c.to_string()).collect();
        if n > 0 && out.len() > n as usize {
            let rest: String = out[n as usize - 1..].concat();
            out.truncate(n as usize - 1);
            out.push(rest);
        }
        return out;
    }
    if n < 0 {
        v.split(sep).map(str::to_string).collect()
    } else {
        v.splitn(n as usize, sep).map(str::to_string).collect()
    }
}

/// Sprig's `substr`.
fn substr(start: i64, end: i64, v: &str) -> String {
    let b = v.as_bytes();
    let len = b.len() as i64;
    let (from, to) = if start < 0 {
        (0, end.clamp(0, len))
    } else if end < 0 || end > len {
        (start.min(len), len)
    } else {
        (start.min(end), end)
    };
    String::from_utf8_lossy(&b[from as usize..to as usize]).into_owned()
}

/// Sprig's `trunc`: n >= 0 keeps the first n bytes, n < 0 the last -n.
fn trunc(n: i64, v: &str) -> String {
    let b = v.as_bytes();
    let len = b.len() as i64;
    if n < 0 && len + n > 0 {
        return String::from_utf8_lossy(&b[(len + n) as usize..]).into_owned();
    }
    if n >= 0 && len > n {
        return String::from_utf8_lossy(&b[..n as usize]).into_owned();
    }
    v.to_string()
}

/// Sprig's `indent`.
pub fn indent(n: i64, v: &str) -> String {
    let pad = " ".repeat(n.clamp(0, 10_000) as usize);
    format!("{pad}{}", v.replace('\n', &format!("\n{pad}")))
}

fn wrap(width: i64, v: &str, nl: &str) -> String {
    let width = width.max(1) as usize;
    let mut out = Vec::new();
    for line in v.split('\n') {
        let mut cur = String::new();
        for word in line.split(' ') {
            if !cur.is_empty() && cur.len() + 1 + word.len() > width {
                out.push(std::mem::take(&mut cur));
            } else if !cur.is_empty() {
                cur.push(' ');
            }
            cur.push_str(word);
        }
        out.push(cur);
    }
    out.join(nl)
}

/// Go's `strings.Title`: upper-cases the first letter of each word.
fn title(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut prev_sep = true;
    for c in v.chars() {
        if prev_sep {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_sep = !(c.is_alphanumeric() || c == '_' || c == '\'');
    }
    out
}

fn untitle(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut prev_space = true;
    for c in v.chars() {
        if prev_space {
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
        prev_space = c.is_whitespace();
    }
    out
}

fn camel(v: &str) -> String {
    v.split(['_', ' ', '-'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            match c.next() {
                Some(f) => f.to_uppercase().chain(c).collect::<String>(),
                None => String::new(),
            }
        })
        .collect()
}

fn snake(v: &str, sep: char) -> String {
    let chars: Vec<char> = v.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c == '_' || c == '-' || c == ' ' {
            if !out.ends_with(sep) && !out.is_empty() {
                out.push(sep);
            }
            continue;
        }
        if c.is_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if (prev.is_lowercase() || prev.is_ascii_digit() || (prev.is_uppercase() && next_lower))
                && !out.ends_with(sep)
            {
                out.push(sep);
            }
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// Go's `template.HTMLEscapeString`.
pub fn html_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\'' => out.push_str("&#39;"),
            '"' => out.push_str("&#34;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Go's `template.JSEscapeString`.
pub fn js_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Go's `url.QueryEscape`.
pub fn query_escape(v: &str) -> String {
    let mut out = String::new();
    for b in v.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `expandenv` with an empty environment: `$VAR` and `${VAR}` become "".
pub fn expand_env(v: &str) -> String {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re =
        RE.get_or_init(|| regex::Regex::new(r"\$(\{[A-Za-z0-9_]*\}|[A-Za-z0-9_]+)").expect("constant regex is valid"));
    re.replace_all(v, "").into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str, a: Vec<Value>) -> Value {
        call(name, &a).unwrap().unwrap()
    }

    #[test]
    fn sprig_strings() {
        assert_eq!(
            c("trunc", vec![Value::Int(5), "hello world".into()]),
            Value::str("hello")
        );
        assert_eq!(
            c("trunc", vec![Value::Int(-5), "hello world".into()]),
            Value::str("world")
        );
        assert_eq!(c("trunc", vec![Value::Float(63.0), "abc".into()]), Value::str("abc"));
        assert_eq!(
            c("substr", vec![Value::Int(0), Value::Int(5), "hello world".into()]),
            Value::str("hello")
        );
        assert_eq!(c("trimSuffix", vec!["-".into(), "abc-".into()]), Value::str("abc"));
        assert_eq!(c("trimAll", vec!["$".into(), "$5.00$".into()]), Value::str("5.00"));
        assert_eq!(c("indent", vec![Value::Int(2), "a\nb".into()]), Value::str("  a\n  b"));
        assert_eq!(c("nindent", vec![Value::Int(2), "a".into()]), Value::str("\n  a"));
        assert_eq!(
            c("quote", vec!["a".into(), Value::Null, Value::Float(1.0)]),
            Value::str("\"a\" \"1\"")
        );
        assert_eq!(c("title", vec!["hello world".into()]), Value::str("Hello World"));
        assert_eq!(
            c("snakecase", vec!["HTTPServerName".into()]),
            Value::str("http_server_name")
        );
        assert_eq!(c("kebabcase", vec!["fooBar".into()]), Value::str("foo-bar"));
        assert_eq!(c("camelcase", vec!["http_server".into()]), Value::str("HttpServer"));
        assert_eq!(
            c("abbrev", vec![Value::Int(5), "hello world".into()]),
            Value::str("he...")
        );
    }

    #[test]
    fn splits_and_joins() {
        let m = c("split", vec![":".into(), "a:b".into()]);
        assert_eq!(m.path("_1"), Some(&Value::str("b")));
        assert_eq!(
            c("splitList", vec![",".into(), "a,b".into()]),
            Value::List(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            c(
                "join",
                vec!["-".into(), Value::List(vec!["a".into(), Value::Float(2.0)])]
            ),
            Value::str("a-2")
        );
    }

    #[test]
    fn regexes() {
        assert_eq!(
            c(
                "regexReplaceAll",
                vec!["a(x*)b".into(), "-ab-axxb-".into(), "${1}W".into()]
            ),
            Value::str("-W-xxW-")
        );
        assert_eq!(
            c("regexMatch", vec!["^v?[0-9]+".into(), "v12".into()]),
            Value::Bool(true)
        );
        assert_eq!(c("regexFind", vec!["[0-9]+".into(), "ab12cd".into()]), Value::str("12"));
        assert!(call("regexMatch", &["(".into(), "x".into()]).unwrap().is_err());
    }
}
