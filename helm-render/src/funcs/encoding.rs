//! Encodings and digests: JSON as Go's `encoding/json` writes it (sorted keys, `<>&`
//! escaped by `toJson`), `fromJson`, a best-effort `toToml`, base64/base32 and the
//! `sha*sum`/`adler32sum` digests.

use base64::Engine as _;

use super::{want, FnResult};
use crate::value::{format_float_json, to_str, Map, Value};

/// Dispatches the encoding functions; `None` when `name` is not one of them.
pub fn call(name: &str, a: &[Value]) -> Option<FnResult> {
    let arg = |i: usize| a.get(i).map(to_str).unwrap_or_default();
    let b64 = base64::engine::general_purpose::STANDARD;
    let r = match name {
        "b64enc" => want(name, a, 1).map(|_| Value::String(b64.encode(arg(0)))),
        "b64dec" => want(name, a, 1).map(|_| {
            Value::String(match b64.decode(arg(0)) {
                Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                Err(e) => e.to_string(),
            })
        }),
        "b32enc" => want(name, a, 1).map(|_| Value::String(base32(arg(0).as_bytes()))),
        "sha256sum" => want(name, a, 1).map(|_| {
            Value::String(hex(
                ring::digest::digest(&ring::digest::SHA256, arg(0).as_bytes()).as_ref()
            ))
        }),
        "sha512sum" => want(name, a, 1).map(|_| {
            Value::String(hex(
                ring::digest::digest(&ring::digest::SHA512, arg(0).as_bytes()).as_ref()
            ))
        }),
        "sha1sum" => want(name, a, 1).map(|_| {
            Value::String(hex(ring::digest::digest(
                &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
                arg(0).as_bytes(),
            )
            .as_ref()))
        }),
        "adler32sum" => want(name, a, 1).map(|_| Value::String(adler32(arg(0).as_bytes()).to_string())),
        _ => return None,
    };
    Some(r)
}

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

fn base32(data: &[u8]) -> String {
    const ALPHA: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    for chunk in data.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let n = buf.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        let chars = match chunk.len() {
            1 => 2,
            2 => 4,
            3 => 5,
            4 => 7,
            _ => 8,
        };
        for i in 0..8 {
            if i < chars {
                out.push(ALPHA[((n >> (35 - i * 5)) & 31) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Go's `json.Marshal` (with `html` escaping) or `MarshalIndent` with two spaces when
/// `indent` is given.
pub fn to_json(v: &Value, html: bool, indent: Option<usize>) -> String {
    let mut out = String::new();
    write_json(v, html, indent, &mut out);
    out
}

fn write_json(v: &Value, html: bool, indent: Option<usize>, out: &mut String) {
    let nl = |out: &mut String, level: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(level));
    };
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Float(f) => out.push_str(&format_float_json(*f)),
        Value::String(s) => json_str(s, html, out),
        Value::List(l) => {
            if l.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, x) in l.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if let Some(level) = indent {
                    nl(out, level + 1);
                }
                write_json(x, html, indent.map(|l| l + 1), out);
            }
            if let Some(level) = indent {
                nl(out, level);
            }
            out.push(']');
        }
        Value::Map(m) => write_json_map(m, html, indent, out),
        Value::Files(f) => {
            let m: Map = f.names().map(|n| (n.clone(), Value::str(f.get(n)))).collect();
            write_json_map(&m, html, indent, out);
        }
        Value::ApiVersions(a) => {
            let l = Value::List(a.iter().map(Value::str).collect());
            write_json(&l, html, indent, out);
        }
    }
}

fn write_json_map(m: &Map, html: bool, indent: Option<usize>, out: &mut String) {
    if m.is_empty() {
        out.push_str("{}");
        return;
    }
    out.push('{');
    for (i, (k, x)) in m.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if let Some(level) = indent {
            out.push('\n');
            out.push_str(&"  ".repeat(level + 1));
        }
        json_str(k, html, out);
        out.push(':');
        if indent.is_some() {
            out.push(' ');
        }
        write_json(x, html, indent.map(|l| l + 1), out);
    }
    if let Some(level) = indent {
        out.push('\n');
        out.push_str(&"  ".repeat(level));
    }
    out.push('}');
}

fn json_str(s: &str, html: bool, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' if html => out.push_str(&format!("\\u{:04x}", c as u32)),
            '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `fromJson`: numbers become float64 as Go's decoder makes them.
pub fn from_json(text: &str) -> Result<Value, serde_json::Error> {
    let v: serde_json::Value = serde_json::from_str(text)?;
    Ok(from_serde(v))
}

fn from_serde(v: serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Value::String(s),
        serde_json::Value::Array(a) => Value::List(a.into_iter().map(from_serde).collect()),
        serde_json::Value::Object(o) => Value::Map(o.into_iter().map(|(k, v)| (k, from_serde(v))).collect()),
    }
}

/// A best-effort TOML rendering of a map (scalars first, then tables).
pub fn to_toml(v: &Value) -> String {
    let mut out = String::new();
    if let Value::Map(m) = v {
        toml_table(m, "", &mut out);
    }
    out
}

fn toml_table(m: &Map, prefix: &str, out: &mut String) {
    for (k, v) in m {
        if !matches!(v, Value::Map(_)) {
            out.push_str(&format!("{k} = {}\n", toml_value(v)));
        }
    }
    for (k, v) in m {
        if let Value::Map(sub) = v {
            let name = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            out.push_str(&format!("\n[{name}]\n"));
            toml_table(sub, &name, out);
        }
    }
}

fn toml_value(v: &Value) -> String {
    match v {
        Value::String(s) => to_json(&Value::str(s.as_str()), false, None),
        Value::List(l) => format!("[{}]", l.iter().map(toml_value).collect::<Vec<_>>().join(", ")),
        Value::Null => "\"\"".into(),
        other => to_json(other, false, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::load;

    #[test]
    fn json_like_go() {
        let v = load("b: [1, 'x<y']\na: {c: null, d: 1.5}").unwrap();
        assert_eq!(
            to_json(&v, true, None),
            r#"{"a":{"c":null,"d":1.5},"b":[1,"x\u003cy"]}"#
        );
        assert_eq!(to_json(&v, false, None), r#"{"a":{"c":null,"d":1.5},"b":[1,"x<y"]}"#);
        assert_eq!(
            to_json(&load("a: [1]").unwrap(), true, Some(0)),
            "{\n  \"a\": [\n    1\n  ]\n}"
        );
        assert_eq!(from_json(r#"{"a":[1,2]}"#).unwrap(), load("a: [1, 2]").unwrap());
    }

    #[test]
    fn digests() {
        let c = |n: &str, s: &str| call(n, &[Value::str(s)]).unwrap().unwrap();
        assert_eq!(
            c("sha256sum", "abc"),
            Value::str("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert_eq!(c("adler32sum", "Wikipedia"), Value::str("300286872"));
        assert_eq!(c("b64enc", "hi"), Value::str("aGk="));
        assert_eq!(c("b64dec", "aGk="), Value::str("hi"));
        assert_eq!(c("b32enc", "hi"), Value::str("NBUQ===="));
    }
}
