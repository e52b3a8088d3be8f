//! Go's `fmt` for template values: `printf` verbs (`%s %d %v %q %t %f %e %g %x %X %o %c %%`
//! with flags, width and precision), `print`/`println` spacing, and `strconv.Quote`.

use crate::value::{format_float_g, to_str, Value};

/// `fmt.Sprintf`.
pub fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut argi = 0;
    let chars: Vec<char> = format.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '%' {
            out.push(c);
            i += 1;
            continue;
        }
        i += 1;
        let mut minus = false;
        let mut plus = false;
        let mut zero = false;
        let mut space = false;
        let mut sharp = false;
        while i < chars.len() {
            match chars[i] {
                '-' => minus = true,
                '+' => plus = true,
                '0' => zero = true,
                ' ' => space = true,
                '#' => sharp = true,
                _ => break,
            }
            i += 1;
        }
        let mut width: Option<usize> = None;
        if i < chars.len() && chars[i] == '*' {
            width = args
                .get(argi)
                .map(|a| crate::value::to_i64(a).clamp(0, 10_000) as usize);
            argi += 1;
            i += 1;
        } else {
            while i < chars.len() && chars[i].is_ascii_digit() {
                width = Some((width.unwrap_or(0) * 10 + chars[i] as usize - '0' as usize).min(10_000));
                i += 1;
            }
        }
        let mut prec: Option<usize> = None;
        if i < chars.len() && chars[i] == '.' {
            i += 1;
            let mut p = 0usize;
            while i < chars.len() && chars[i].is_ascii_digit() {
                p = (p * 10 + chars[i] as usize - '0' as usize).min(10_000);
                i += 1;
            }
            prec = Some(p);
        }
        let Some(&verb) = chars.get(i) else {
            out.push_str("%!(NOVERB)");
            break;
        };
        i += 1;
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(argi) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        argi += 1;
        let body = format_one(verb, arg, prec, plus, space, sharp);
        let padded = pad(&body, width, minus, zero && !minus && is_numeric_verb(verb, arg));
        out.push_str(&padded);
    }
    if argi < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> = args[argi..]
            .iter()
            .map(|a| format!("{}={}", a.type_name(), a.to_go_string()))
            .collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}

fn is_numeric_verb(verb: char, arg: &Value) -> bool {
    matches!(arg, Value::Int(_) | Value::Float(_))
        && matches!(verb, 'd' | 'f' | 'e' | 'g' | 'x' | 'X' | 'o' | 'v' | 'b')
}

fn pad(s: &str, width: Option<usize>, left: bool, zero: bool) -> String {
    let Some(w) = width else {
        return s.to_string();
    };
    let n = s.chars().count();
    if n >= w {
        return s.to_string();
    }
    let fill = w - n;
    if left {
        format!("{s}{}", " ".repeat(fill))
    } else if zero {
        let (sign, rest) = if s.starts_with('-') || s.starts_with('+') {
            s.split_at(1)
        } else {
            ("", s)
        };
        format!("{sign}{}{rest}", "0".repeat(fill))
    } else {
        format!("{}{s}", " ".repeat(fill))
    }
}

fn bad(verb: char, arg: &Value) -> String {
    format!("%!{verb}({}={})", arg.type_name(), arg.to_go_string())
}

fn format_one(verb: char, arg: &Value, prec: Option<usize>, plus: bool, space: bool, sharp: bool) -> String {
    let sign = |neg: bool, s: String| {
        if neg {
            s
        } else if plus {
            format!("+{s}")
        } else if space {
            format!(" {s}")
        } else {
            s
        }
    };
    match verb {
        _ if matches!(arg, Value::Null) && verb != 'v' && verb != 'T' => format!("%!{verb}(<nil>)"),
        'v' => match arg {
            Value::String(s) if sharp => quote(s),
            Value::Int(i) => sign(*i < 0, i.to_string()),
            Value::Float(f) => sign(*f < 0.0, format_float_g(*f)),
            other => other.to_go_string(),
        },
        's' => match arg {
            Value::String(s) => truncate(s, prec),
            Value::Int(_) | Value::Float(_) | Value::Bool(_) => bad(verb, arg),
            // fmt applies the verb to each element.
            Value::List(l) => {
                let items: Vec<String> = l.iter().map(|v| format_one('s', v, prec, plus, space, sharp)).collect();
                format!("[{}]", items.join(" "))
            }
            Value::Map(m) => {
                let items: Vec<String> = m
                    .iter()
                    .map(|(k, v)| format!("{k}:{}", format_one('s', v, prec, plus, space, sharp)))
                    .collect();
                format!("map[{}]", items.join(" "))
            }
            other => truncate(&other.to_go_string(), prec),
        },
        'q' => match arg {
            Value::String(s) => {
                if sharp && !s.contains('`') {
                    format!("`{s}`")
                } else {
                    quote(s)
                }
            }
            Value::Int(i) => char::from_u32(*i as u32).map_or_else(|| bad(verb, arg), |c| format!("{c:?}")),
            Value::List(l) => {
                let items: Vec<String> = l.iter().map(|v| format_one('q', v, prec, plus, space, sharp)).collect();
                format!("[{}]", items.join(" "))
            }
            _ => bad(verb, arg),
        },
        't' => match arg {
            Value::Bool(b) => b.to_string(),
            _ => bad(verb, arg),
        },
        'd' => match arg {
            Value::Int(i) => sign(*i < 0, i.to_string()),
            Value::List(l) => {
                let items: Vec<String> = l.iter().map(|v| format_one('d', v, prec, plus, space, sharp)).collect();
                format!("[{}]", items.join(" "))
            }
            _ => bad(verb, arg),
        },
        'f' | 'F' | 'e' | 'E' | 'g' | 'G' => {
            let f = match arg {
                Value::Float(f) => *f,
                _ => return bad(verb, arg),
            };
            let s = match verb {
                'f' | 'F' => format!("{:.*}", prec.unwrap_or(6), f),
                'e' | 'E' => {
                    let s = go_exp(f, prec.unwrap_or(6));
                    if verb == 'E' {
                        s.to_uppercase()
                    } else {
                        s
                    }
                }
                'G' => format_float_g(f).to_uppercase(),
                _ => format_float_g(f),
            };
            sign(f < 0.0, s)
        }
        'x' | 'X' => {
            let s = match arg {
                Value::Int(i) => {
                    if *i < 0 {
                        format!("-{:x}", i.unsigned_abs())
                    } else {
                        format!("{i:x}")
                    }
                }
                Value::String(s) => s.bytes().map(|b| format!("{b:02x}")).collect(),
                Value::Float(f) => format!("{f}"),
                _ => return bad(verb, arg),
            };
            let s = if sharp { format!("0x{s}") } else { s };
            if verb == 'X' {
                s.to_uppercase()
            } else {
                s
            }
        }
        'o' => match arg {
            Value::Int(i) => format!("{i:o}"),
            _ => bad(verb, arg),
        },
        'b' => match arg {
            Value::Int(i) => format!("{i:b}"),
            _ => bad(verb, arg),
        },
        'c' => match arg {
            Value::Int(i) => char::from_u32(*i as u32).map_or_else(|| bad(verb, arg), |c| c.to_string()),
            _ => bad(verb, arg),
        },
        'T' => arg.type_name().to_string(),
        'U' => match arg {
            Value::Int(i) => format!("U+{:04X}", i),
            _ => bad(verb, arg),
        },
        _ => format!("%!{verb}({}={})", arg.type_name(), to_str(arg)),
    }
}

fn truncate(s: &str, prec: Option<usize>) -> String {
    match prec {
        Some(p) => s.chars().take(p).collect(),
        None => s.to_string(),
    }
}

fn go_exp(f: f64, prec: usize) -> String {
    let s = format!("{:.*e}", prec, f);
    match s.split_once('e') {
        Some((m, e)) => {
            let n: i32 = e.parse().unwrap_or(0);
            format!("{m}e{}{:02}", if n < 0 { '-' } else { '+' }, n.abs())
        }
        None => s,
    }
}

/// Go's `strconv.Quote`.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `fmt.Sprint`: spaces between operands when neither side is a string.
pub fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        let is_str = matches!(a, Value::String(_));
        if i > 0 && !is_str && !matches!(args[i - 1], Value::String(_)) {
            out.push(' ');
        }
        out.push_str(&a.to_go_string());
    }
    out
}

/// `fmt.Sprintln`: spaces between all operands and a newline.
pub fn sprintln(args: &[Value]) -> String {
    let parts: Vec<String> = args.iter().map(|a| a.to_go_string()).collect();
    format!("{}\n", parts.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs() {
        let s = |f: &str, a: Vec<Value>| sprintf(f, &a);
        assert_eq!(s("%s/%s:%s", vec!["a".into(), "b".into(), "c".into()]), "a/b:c");
        assert_eq!(
            s("%05d|%-4s|%4s", vec![Value::Int(42), "ab".into(), "ab".into()]),
            "00042|ab  |  ab"
        );
        assert_eq!(s("%v %v", vec![Value::Float(8080.0), Value::Null]), "8080 <nil>");
        assert_eq!(s("%q", vec!["a\"b".into()]), "\"a\\\"b\"");
        assert_eq!(
            s(
                "%.2f %t %x",
                vec![Value::Float(1.005), Value::Bool(true), Value::Int(255)]
            ),
            "1.00 true ff"
        );
        assert_eq!(s("%d", vec![Value::Float(1.0)]), "%!d(float64=1)");
        assert_eq!(s("%s", vec![]), "%!s(MISSING)");
        assert_eq!(s("v%s", vec!["1.2".into()]), "v1.2");
        assert_eq!(s("100%%", vec![]), "100%");
        assert_eq!(s("%s|%v", vec![Value::Null, Value::Null]), "%!s(<nil>)|<nil>");
        let m = crate::yaml::load("a: 2\ns: x").unwrap();
        assert_eq!(s("%s", vec![m]), "map[a:%!s(float64=2) s:x]");
        assert_eq!(
            s("%U %G", vec![Value::Int(65), Value::Float(0.00001234)]),
            "U+0041 1.234E-05"
        );
    }

    #[test]
    fn print_spacing() {
        assert_eq!(
            sprint(&[Value::Int(1), Value::Int(2), "a".into(), Value::Int(3)]),
            "1 2a3"
        );
        assert_eq!(sprintln(&["a".into(), Value::Int(1)]), "a 1\n");
    }
}
