//! JSON-form arguments (`COPY ["my file", "dest/"]`, `CMDS ["a", "b"]`): a JSON array of strings,
//! with JSON's escapes, every unescaped character keeping the position of the text it came from.
//!
//! Why not serde_json, which the generator depends on anyway (issue 13): the strings are not the
//! end of the parse. COPY sources and RUN arguments are expanded afterwards (`${VERSION}` inside a
//! JSON string), and an expansion error must point at its own character in the Kubefile; serde_json
//! gives only the values. The array may also span lines joined by a trailing `\`, so serde_json's
//! line and column would be those of the joined text, not of the file. And its messages name JSON
//! tokens where ours say what was expected where (`expected `,` or `]`, found `b``), which the
//! Kubefile tests pin. What it accepts is JSON's grammar for an array of strings, no more: a test
//! checks it against serde_json.

use std::path::Path;

use super::words::{collect, PChar};
use super::{KubefileError, Pos};

/// A JSON string: its unescaped characters, each with the position of the source text
/// it came from, and the position of its opening quote.
pub(super) struct JsonString {
    pub(super) chars: Vec<PChar>,
    pub(super) pos: Pos,
}

/// True when the arguments are meant as a JSON array: `[` followed by `"` or `]`.
/// Anything else starting with `[` (a glob class, a `[ -f x ]` test) is shell form.
pub(super) fn is_json_form(chars: &[PChar]) -> bool {
    chars.first().is_some_and(|p| p.c == '[')
        && chars[1..]
            .iter()
            .find(|p| !p.c.is_whitespace())
            .is_some_and(|p| p.c == '"' || p.c == ']')
}

pub(super) fn parse_json_array(file: &Path, chars: &[PChar]) -> Result<Vec<JsonString>, KubefileError> {
    let text = collect(chars);
    let at = |i: usize| -> Pos {
        match chars.get(i) {
            Some(p) => p.pos,
            None => chars
                .last()
                .map_or(Pos::new(1, 1), |p| Pos::new(p.pos.line, p.pos.column + 1)),
        }
    };
    let fail = |i: usize, problem: String| -> KubefileError {
        err!(
            file,
            at(i),
            Json {
                problem,
                text: text.clone(),
            }
        )
    };
    let found = |i: usize| -> String {
        match chars.get(i) {
            Some(p) => format!("`{}`", p.c),
            None => "end of line".to_string(),
        }
    };
    let skip_ws = |i: &mut usize| {
        while *i < chars.len() && chars[*i].c.is_whitespace() {
            *i += 1;
        }
    };
    let mut i = 0;
    if chars.first().map(|p| p.c) != Some('[') {
        return Err(fail(0, format!("expected `[`, found {}", found(0))));
    }
    i += 1;
    let mut out = Vec::new();
    skip_ws(&mut i);
    if chars.get(i).map(|p| p.c) == Some(']') {
        i += 1;
    } else {
        loop {
            skip_ws(&mut i);
            if chars.get(i).map(|p| p.c) != Some('"') {
                return Err(fail(i, format!("expected a string, found {}", found(i))));
            }
            out.push(json_string(chars, &mut i).map_err(|(j, problem)| fail(j, problem))?);
            skip_ws(&mut i);
            match chars.get(i).map(|p| p.c) {
                Some(',') => i += 1,
                Some(']') => {
                    i += 1;
                    break;
                }
                _ => return Err(fail(i, format!("expected `,` or `]`, found {}", found(i)))),
            }
        }
    }
    skip_ws(&mut i);
    if i < chars.len() {
        return Err(fail(i, format!("unexpected {} after `]`", found(i))));
    }
    Ok(out)
}

/// Parses the JSON string whose opening quote is at `chars[*i]`; on error returns the
/// index of the problem and what it is.
pub(super) fn json_string(chars: &[PChar], i: &mut usize) -> Result<JsonString, (usize, String)> {
    let pos = chars[*i].pos;
    let open = *i;
    *i += 1;
    let mut out = Vec::new();
    loop {
        let Some(&PChar { c, pos: cpos }) = chars.get(*i) else {
            return Err((open, "unterminated string".to_string()));
        };
        match c {
            '"' => {
                *i += 1;
                return Ok(JsonString { chars: out, pos });
            }
            '\\' => {
                let esc = chars.get(*i + 1).map(|p| p.c);
                let simple = match esc {
                    Some('"') => Some('"'),
                    Some('\\') => Some('\\'),
                    Some('/') => Some('/'),
                    Some('b') => Some('\u{8}'),
                    Some('f') => Some('\u{c}'),
                    Some('n') => Some('\n'),
                    Some('r') => Some('\r'),
                    Some('t') => Some('\t'),
                    _ => None,
                };
                if let Some(s) = simple {
                    out.push(PChar { c: s, pos: cpos });
                    *i += 2;
                } else if esc == Some('u') {
                    let hi = json_hex4(chars, *i + 2)?;
                    let mut next = *i + 6;
                    let code = if (0xD800..0xDC00).contains(&hi) {
                        let lo_ok = chars.get(next).is_some_and(|p| p.c == '\\')
                            && chars.get(next + 1).is_some_and(|p| p.c == 'u');
                        let lo = if lo_ok { json_hex4(chars, next + 2)? } else { 0 };
                        if !(0xDC00..0xE000).contains(&lo) {
                            return Err((*i, "unpaired surrogate in `\\u` escape".to_string()));
                        }
                        next += 6;
                        0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                    } else if (0xDC00..0xE000).contains(&hi) {
                        return Err((*i, "unpaired surrogate in `\\u` escape".to_string()));
                    } else {
                        hi
                    };
                    let Some(ch) = char::from_u32(code) else {
                        return Err((*i, "invalid `\\u` escape".to_string()));
                    };
                    out.push(PChar { c: ch, pos: cpos });
                    *i = next;
                } else {
                    let shown = esc.map_or(String::new(), String::from);
                    return Err((*i, format!("invalid escape `\\{shown}`")));
                }
            }
            c if (c as u32) < 0x20 => {
                return Err((*i, "control character in string".to_string()));
            }
            c => {
                out.push(PChar { c, pos: cpos });
                *i += 1;
            }
        }
    }
}

pub(super) fn json_hex4(chars: &[PChar], start: usize) -> Result<u32, (usize, String)> {
    let mut v = 0u32;
    for k in start..start + 4 {
        let d = chars.get(k).and_then(|p| p.c.to_digit(16));
        let Some(d) = d else {
            return Err((k, "expected 4 hex digits in `\\u` escape".to_string()));
        };
        v = v * 16 + d;
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubefile::words::split_instructions;

    /// Our parser accepts exactly what serde_json accepts as an array of strings, with the same
    /// values: the reason to keep ours is positions, not a different grammar.
    #[test]
    fn accepts_what_serde_json_accepts_with_the_same_values() {
        let cases = [
            r#"[]"#,
            r#"[ ]"#,
            r#"["a"]"#,
            r#"["a", "b c", ""]"#,
            r#"["\"\\\/\b\f\n\r\t"]"#,
            r#"["\u00e9\ud83d\ude00", "\u0041"]"#,
            r#"["é ✓"]"#,
            r#"["a",]"#,
            r#"["a" "b"]"#,
            r#"["a", b]"#,
            r#"["\x"]"#,
            r#"["\u12G4"]"#,
            r#"["\ud83d"]"#,
            r#"["\ude00"]"#,
            r#"["\ud83d\u0041"]"#,
            r#"["a"] x"#,
            r#"["a""#,
            r#"["a", 1]"#,
            r#"[["a"]]"#,
            "[\"tab\there\"]",
        ];
        for case in cases {
            let ins = split_instructions(&format!("COPY {case}\n")).remove(0);
            let ours = parse_json_array(Path::new("Kubefile"), &ins.args)
                .map(|strings| strings.iter().map(|s| collect(&s.chars)).collect::<Vec<_>>());
            let theirs = serde_json::from_str::<Vec<String>>(case);
            match (&ours, &theirs) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{case}"),
                (Err(_), Err(_)) => {}
                _ => panic!("{case}: ours {ours:?}, serde_json {theirs:?}"),
            }
        }
    }

    #[test]
    fn each_character_keeps_its_position_across_joined_lines() {
        let ins = split_instructions("COPY [\"a\", \\\n  \"\\u0062c\"]\n").remove(0);
        let strings = parse_json_array(Path::new("Kubefile"), &ins.args).unwrap();
        assert_eq!(strings[1].pos, Pos::new(2, 3));
        let positions: Vec<Pos> = strings[1].chars.iter().map(|p| p.pos).collect();
        // `\u0062` is one character at its backslash; `c` follows the escape.
        assert_eq!(positions, [Pos::new(2, 4), Pos::new(2, 10)]);
    }
}
