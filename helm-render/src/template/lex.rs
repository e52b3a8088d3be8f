//! The lexer of Go's text/template: splits a template into text and action tokens,
//! applying `{{-`/`-}}` trimming and dropping `{{/* comments */}}`.

use super::TemplateError;

/// One token, with the 1-based line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub kind: Tok,
    pub line: usize,
    /// Whitespace precedes the token (within an action): `$x.a` chains, `$x .a` does not.
    pub space_before: bool,
}

/// The kinds of tokens.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Text(String),
    LeftDelim,
    RightDelim,
    /// `.Name` (a field), the name without the dot.
    Field(String),
    /// A lone `.`.
    Dot,
    /// `$name` or `$`.
    Variable(String),
    Ident(String),
    Str(String),
    Number(String),
    Char(char),
    Pipe,
    LeftParen,
    RightParen,
    Declare,
    Assign,
    Comma,
}

/// Tokenizes a template text.
pub fn lex(src: &str) -> Result<Vec<Token>, TemplateError> {
    let mut toks = Vec::new();
    let b = src.as_bytes();
    let mut pos = 0;
    let mut line = 1;
    let mut trim_next_text = false;
    while pos < b.len() {
        let start_delim = find(src, pos, "{{");
        let text_end = start_delim.unwrap_or(b.len());
        let mut text = &src[pos..text_end];
        if trim_next_text {
            text = text.trim_start_matches(is_space);
        }
        // Left trim marker: "{{- " trims the text before.
        let trim_left = start_delim
            .is_some_and(|d| src[d + 2..].starts_with('-') && src[d + 3..].starts_with(|c: char| is_space(c)));
        if trim_left {
            text = text.trim_end_matches(is_space);
        }
        if !text.is_empty() {
            toks.push(Token {
                kind: Tok::Text(text.to_string()),
                line,
                space_before: false,
            });
        }
        line += src[pos..text_end].matches('\n').count();
        let Some(d) = start_delim else {
            break;
        };
        pos = d + 2;
        if trim_left {
            pos += 2;
        }
        let action_line = line;
        // Comment?
        let rest = &src[pos..];
        // As in Go, a comment starts right after "{{" or "{{- ".
        if rest.starts_with("/*") {
            let cstart = pos;
            let Some(cend) = find(src, cstart + 2, "*/") else {
                return Err(TemplateError {
                    line,
                    message: "unclosed comment".into(),
                });
            };
            let mut p = cend + 2;
            let tail = &src[p..];
            let ws = tail.len() - tail.trim_start_matches(is_space).len();
            let (trim_right, skip) = if ws > 0 && tail[ws..].starts_with("-}}") {
                (true, ws + 3)
            } else if tail.starts_with("}}") {
                (false, 2)
            } else {
                return Err(TemplateError {
                    line,
                    message: "comment ends before closing delimiter".into(),
                });
            };
            line += src[pos..p].matches('\n').count();
            p += skip;
            pos = p;
            trim_next_text = trim_right;
            continue;
        }
        toks.push(Token {
            kind: Tok::LeftDelim,
            line: action_line,
            space_before: false,
        });
        let (next, trim_right) = lex_action(src, pos, &mut line, &mut toks)?;
        pos = next;
        trim_next_text = trim_right;
    }
    Ok(toks)
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn find(src: &str, from: usize, pat: &str) -> Option<usize> {
    src.get(from..)?.find(pat).map(|i| i + from)
}

/// Lexes inside `{{ ... }}`; returns the position after `}}` and whether it was `-}}`.
fn lex_action(
    src: &str,
    mut pos: usize,
    line: &mut usize,
    toks: &mut Vec<Token>,
) -> Result<(usize, bool), TemplateError> {
    let b = src.as_bytes();
    let mut space = false;
    let mut paren_depth = 0usize;
    loop {
        let err = |line: usize, m: &str| TemplateError {
            line,
            message: m.to_string(),
        };
        if pos >= b.len() {
            return Err(err(*line, "unclosed action"));
        }
        let c = b[pos];
        // Right delimiter, with optional trim marker " -}}".
        if c == b'}' && b.get(pos + 1) == Some(&b'}') {
            toks.push(Token {
                kind: Tok::RightDelim,
                line: *line,
                space_before: space,
            });
            return Ok((pos + 2, false));
        }
        if is_space(c as char) {
            if src[pos..].trim_start_matches(is_space).starts_with("-}}") && c != b'-' {
                let ws = src[pos..].len() - src[pos..].trim_start_matches(is_space).len();
                *line += src[pos..pos + ws].matches('\n').count();
                toks.push(Token {
                    kind: Tok::RightDelim,
                    line: *line,
                    space_before: true,
                });
                return Ok((pos + ws + 3, true));
            }
            if c == b'\n' {
                *line += 1;
            }
            space = true;
            pos += 1;
            continue;
        }
        let tok_line = *line;
        let push = |kind: Tok, toks: &mut Vec<Token>| {
            toks.push(Token {
                kind,
                line: tok_line,
                space_before: space,
            });
        };
        match c {
            b'|' => {
                push(Tok::Pipe, toks);
                pos += 1;
            }
            b'(' => {
                paren_depth += 1;
                push(Tok::LeftParen, toks);
                pos += 1;
            }
            b')' => {
                paren_depth = paren_depth.saturating_sub(1);
                push(Tok::RightParen, toks);
                pos += 1;
            }
            b',' => {
                push(Tok::Comma, toks);
                pos += 1;
            }
            b':' if b.get(pos + 1) == Some(&b'=') => {
                push(Tok::Declare, toks);
                pos += 2;
            }
            b'=' => {
                push(Tok::Assign, toks);
                pos += 1;
            }
            b'"' => {
                let (s, end) = lex_quoted(src, pos).ok_or_else(|| err(*line, "unterminated quoted string"))?;
                push(Tok::Str(s), toks);
                pos = end;
            }
            b'`' => {
                let end = find(src, pos + 1, "`").ok_or_else(|| err(*line, "unterminated raw quoted string"))?;
                let s = src[pos + 1..end].to_string();
                *line += s.matches('\n').count();
                push(Tok::Str(s), toks);
                pos = end + 1;
            }
            b'\'' => {
                let (s, end) = lex_char(src, pos).ok_or_else(|| err(*line, "bad character constant"))?;
                push(Tok::Char(s), toks);
                pos = end;
            }
            b'$' => {
                let end = ident_end(b, pos + 1);
                push(Tok::Variable(src[pos..end].to_string()), toks);
                pos = end;
            }
            b'.' => {
                if b.get(pos + 1).is_some_and(|c| c.is_ascii_digit()) {
                    let end = number_end(b, pos);
                    push(Tok::Number(src[pos..end].to_string()), toks);
                    pos = end;
                } else {
                    let end = ident_end(b, pos + 1);
                    if end == pos + 1 {
                        push(Tok::Dot, toks);
                    } else {
                        push(Tok::Field(src[pos + 1..end].to_string()), toks);
                    }
                    pos = end;
                }
            }
            b'0'..=b'9' | b'-' | b'+' => {
                let end = number_end(b, pos);
                if end == pos || (end == pos + 1 && (c == b'-' || c == b'+')) {
                    return Err(err(*line, &format!("unexpected {:?} in action", c as char)));
                }
                push(Tok::Number(src[pos..end].to_string()), toks);
                pos = end;
            }
            c if c == b'_' || c.is_ascii_alphabetic() || c >= 0x80 => {
                let end = ident_end(b, pos);
                let end = end.max(pos + 1);
                push(Tok::Ident(src[pos..end].to_string()), toks);
                pos = end;
            }
            _ => {
                let ch = src[pos..].chars().next().unwrap_or('?');
                return Err(err(*line, &format!("unexpected {ch:?} in action")));
            }
        }
        space = false;
    }
}

fn ident_end(b: &[u8], mut pos: usize) -> usize {
    while pos < b.len() && (b[pos] == b'_' || b[pos].is_ascii_alphanumeric() || b[pos] >= 0x80) {
        pos += 1;
    }
    pos
}

fn number_end(b: &[u8], mut pos: usize) -> usize {
    if pos < b.len() && (b[pos] == b'-' || b[pos] == b'+') {
        pos += 1;
    }
    while pos < b.len() {
        let c = b[pos];
        let exp_sign = (c == b'-' || c == b'+') && pos > 0 && matches!(b[pos - 1], b'e' | b'E' | b'p' | b'P');
        if c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || exp_sign {
            pos += 1;
        } else {
            break;
        }
    }
    pos
}

fn lex_quoted(src: &str, start: usize) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut chars = src[start + 1..].char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, start + 1 + i + 1)),
            '\n' => return None,
            '\\' => {
                let (_, e) = chars.next()?;
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    '\\' => out.push('\\'),
                    '"' => out.push('"'),
                    '\'' => out.push('\''),
                    'a' => out.push('\u{7}'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'v' => out.push('\u{b}'),
                    '0'..='7' => {
                        let mut v = e.to_digit(8)?;
                        for _ in 0..2 {
                            v = v * 8 + chars.next()?.1.to_digit(8)?;
                        }
                        out.push(char::from_u32(v)?);
                    }
                    'x' | 'u' | 'U' => {
                        let n = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let mut v = 0u32;
                        for _ in 0..n {
                            v = v.checked_mul(16)? + chars.next()?.1.to_digit(16)?;
                        }
                        out.push(char::from_u32(v)?);
                    }
                    _ => return None,
                }
            }
            c => out.push(c),
        }
    }
    None
}

fn lex_char(src: &str, start: usize) -> Option<(char, usize)> {
    let rest = &src[start + 1..];
    let end = rest.find('\'')?;
    let body = &rest[..end];
    let c = if let Some(esc) = body.strip_prefix('\\') {
        match esc {
            "n" => '\n',
            "t" => '\t',
            "\\" => '\\',
            "'" => '\'',
            _ => return None,
        }
    } else {
        let mut it = body.chars();
        let c = it.next()?;
        if it.next().is_some() {
            return None;
        }
        c
    };
    Some((c, start + 1 + end + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<Tok> {
        lex(s).unwrap().into_iter().map(|t| t.kind).collect()
    }

    #[test]
    fn trims_and_comments() {
        assert_eq!(
            kinds("a  {{- .x -}}  b{{/* c */}}d"),
            vec![
                Tok::Text("a".into()),
                Tok::LeftDelim,
                Tok::Field("x".into()),
                Tok::RightDelim,
                Tok::Text("b".into()),
                Tok::Text("d".into())
            ]
        );
        assert_eq!(
            kinds("x\n{{- /* c */ -}}\ny"),
            vec![Tok::Text("x".into()), Tok::Text("y".into())]
        );
    }

    #[test]
    fn action_tokens() {
        let k = kinds(r#"{{ $x := printf "%s-\n" .a.b | quote }}"#);
        assert_eq!(k[1], Tok::Variable("$x".into()));
        assert_eq!(k[2], Tok::Declare);
        assert_eq!(k[4], Tok::Str("%s-\n".into()));
        assert_eq!(k[5], Tok::Field("a".into()));
        assert_eq!(k[6], Tok::Field("b".into()));
        assert_eq!(kinds("{{ -1 }}")[1], Tok::Number("-1".into()));
    }

    #[test]
    fn lines_counted() {
        let t = lex("a\nb\n{{ .x }}\n{{\n.y }}").unwrap();
        let fields: Vec<usize> = t
            .iter()
            .filter(|t| matches!(t.kind, Tok::Field(_)))
            .map(|t| t.line)
            .collect();
        assert_eq!(fields, vec![3, 5]);
    }

    fn parse_comment_with_space_is_an_error() -> bool {
        super::super::parse("{{ /* c */ }}").is_err() && super::super::parse("{{-  /* c */ }}").is_err()
    }

    #[test]
    fn errors() {
        assert!(lex("{{ .x ").is_err());
        assert!(lex("{{ \"abc }}").is_err());
        assert!(lex("{{/* x ").is_err());
        assert!(parse_comment_with_space_is_an_error());
    }
}
