//! Re-indenting quoted scalars whose continuation lines sit left of their block: YAML 1.2 and
//! saphyr-parser refuse them, but libyaml, go-yaml (kubectl, Helm) and PyYAML read them, and real
//! manifests have them. Used only on a file the parser has already rejected for that reason.

/// The message of saphyr-parser's scanner for a quoted scalar whose continuation lines sit left
/// of the block they are in.
pub(super) const QUOTED_INDENTATION: &str = "invalid indentation in quoted scalar";
/// Quoted scalars re-indented one at a time, after [`reindent_all_quoted`], before the parser's
/// error is taken as it is.
pub(super) const MAX_QUOTED_REINDENTS: usize = 100;

/// `text` with the continuation lines of the quoted scalar whose opening quote is at `line`
/// (1-based) and `column` (0-based, in characters) indented to at least the quote's column.
///
/// YAML 1.2 (6.3, line prefixes) wants them indented more than the block around them, and
/// saphyr-parser enforces it, but libyaml, go-yaml (kubectl, Helm) and PyYAML do not, and real
/// manifests rely on that (Calico's tigera-operator.yaml, Longhorn's questions.yaml). The
/// leading white space of a flow scalar's continuation line is never part of its value, so
/// adding spaces there changes no value and no line number. `None` when there is no quoted
/// scalar there.
pub(super) fn reindent_quoted(text: &str, line: usize, column: usize) -> Option<String> {
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
pub(super) fn reindent_all_quoted(text: &str) -> String {
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
