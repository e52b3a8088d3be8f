//! The Kubefile's lexical layer: physical lines joined into instructions, and shell-form words
//! with quotes, escapes and variable expansion, every character keeping its position in the
//! original text for error messages. JSON-form arrays are `json_array.rs`.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::Path;

use super::{KubefileError, Pos};

/// A character of the original text with its position.
#[derive(Debug, Clone, Copy)]
pub(super) struct PChar {
    pub(super) c: char,
    pub(super) pos: Pos,
}

/// One instruction after joining continuation lines.
pub(super) struct Instruction {
    pub(super) keyword: String,
    pub(super) at: Pos,
    /// The arguments, trimmed, each character with its original position.
    pub(super) args: Vec<PChar>,
}

pub(super) fn collect(chars: &[PChar]) -> String {
    chars.iter().map(|p| p.c).collect()
}

pub(super) fn trim(chars: &[PChar]) -> &[PChar] {
    let start = chars.iter().position(|p| !p.c.is_whitespace()).unwrap_or(chars.len());
    let end = chars
        .iter()
        .rposition(|p| !p.c.is_whitespace())
        .map_or(start, |i| i + 1);
    &chars[start..end.max(start)]
}

pub(super) fn split_instructions(text: &str) -> Vec<Instruction> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    let mut current: Vec<PChar> = Vec::new();
    for (idx, line) in text.lines().enumerate() {
        let chars: Vec<PChar> = line
            .chars()
            .enumerate()
            .map(|(i, c)| PChar {
                c,
                pos: Pos::new(idx + 1, i + 1),
            })
            .collect();
        match chars.iter().find(|p| !p.c.is_whitespace()) {
            None => continue,
            Some(p) if p.c == '#' => continue,
            Some(_) => {}
        }
        let end = chars
            .iter()
            .rposition(|p| p.c != ' ' && p.c != '\t')
            .map_or(0, |i| i + 1);
        if end > 0 && chars[end - 1].c == '\\' {
            current.extend_from_slice(&chars[..end - 1]);
            continue;
        }
        current.extend_from_slice(&chars);
        out.extend(make_instruction(std::mem::take(&mut current)));
    }
    // A continuation on the last line just ends the instruction.
    out.extend(make_instruction(current));
    out
}

pub(super) fn make_instruction(chars: Vec<PChar>) -> Option<Instruction> {
    let chars = trim(&chars);
    let first = chars.first()?;
    let kw_end = chars.iter().position(|p| p.c.is_whitespace()).unwrap_or(chars.len());
    Some(Instruction {
        keyword: collect(&chars[..kw_end]),
        at: first.pos,
        args: trim(&chars[kw_end..]).to_vec(),
    })
}

// ---------------------------------------------------------------------------------------
// Words, quotes and variables

/// A shell-form word after quote removal and expansion.
pub(super) struct Word {
    pub(super) text: String,
    pub(super) pos: Pos,
    /// Index just past the word in the argument characters.
    pub(super) end: usize,
}

/// Expands variables and splits shell-form arguments into words.
pub(super) struct Expander<'a> {
    pub(super) file: &'a Path,
    pub(super) env: &'a BTreeMap<String, String>,
    pub(super) args: &'a BTreeMap<String, String>,
    /// What references have produced in the whole Kubefile so far (see [`MAX_EXPANDED_TOTAL`]).
    pub(super) expanded: &'a Cell<usize>,
}

/// The longest value a variable expansion may produce.
pub(crate) const MAX_EXPANDED: usize = 1 << 20;
/// The most that variable references may produce in one Kubefile, all instructions together:
/// without it, 10,000 `LABEL` lines of four 256 KiB references each ask for 10 GiB.
pub(crate) const MAX_EXPANDED_TOTAL: usize = 16 << 20;

pub(super) fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

pub(super) fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

pub(super) fn is_var_name(s: &str) -> bool {
    let mut cs = s.chars();
    cs.next().is_some_and(is_name_start) && cs.all(is_name_char)
}

impl Expander<'_> {
    pub(super) fn lookup(&self, name: &str) -> Option<&String> {
        self.env.get(name).or_else(|| self.args.get(name))
    }

    /// Splits `chars` into words at unquoted whitespace.
    pub(super) fn words(&self, chars: &[PChar]) -> Result<Vec<Word>, KubefileError> {
        let mut out = Vec::new();
        let mut i = 0;
        loop {
            while i < chars.len() && chars[i].c.is_whitespace() {
                i += 1;
            }
            if i >= chars.len() {
                return Ok(out);
            }
            let pos = chars[i].pos;
            let text = self.word(chars, &mut i, true)?;
            out.push(Word { text, pos, end: i });
        }
    }

    /// All of `chars` as one word (whitespace kept), with quotes and escapes processed.
    pub(super) fn whole(&self, chars: &[PChar]) -> Result<String, KubefileError> {
        let mut i = 0;
        self.word(chars, &mut i, false)
    }

    pub(super) fn word(&self, chars: &[PChar], i: &mut usize, split: bool) -> Result<String, KubefileError> {
        let mut out = String::new();
        while *i < chars.len() {
            let PChar { c, pos } = chars[*i];
            match c {
                c if split && c.is_whitespace() => break,
                '\\' => match chars.get(*i + 1) {
                    Some(next) => {
                        out.push(next.c);
                        *i += 2;
                    }
                    None => {
                        out.push('\\');
                        *i += 1;
                    }
                },
                '\'' => {
                    let close = chars[*i + 1..].iter().position(|p| p.c == '\'');
                    let Some(close) = close else {
                        return Err(err!(
                            self.file,
                            pos,
                            UnterminatedQuote {
                                quote: '\'',
                                text: collect(&chars[*i..]),
                            }
                        ));
                    };
                    out.extend(chars[*i + 1..*i + 1 + close].iter().map(|p| p.c));
                    *i += close + 2;
                }
                '"' => {
                    let open = *i;
                    *i += 1;
                    loop {
                        match chars.get(*i).map(|p| p.c) {
                            None => {
                                return Err(err!(
                                    self.file,
                                    pos,
                                    UnterminatedQuote {
                                        quote: '"',
                                        text: collect(&chars[open..]),
                                    }
                                ))
                            }
                            Some('"') => {
                                *i += 1;
                                break;
                            }
                            Some('\\') if chars.get(*i + 1).is_some_and(|n| matches!(n.c, '"' | '\\' | '$')) => {
                                out.push(chars[*i + 1].c);
                                *i += 2;
                            }
                            Some('$') => self.dollar(chars, i, &mut out, true)?,
                            Some(c) => {
                                out.push(c);
                                *i += 1;
                            }
                        }
                    }
                }
                '$' => self.dollar(chars, i, &mut out, true)?,
                c => {
                    out.push(c);
                    *i += 1;
                }
            }
        }
        Ok(out)
    }

    /// Expands `chars` where only `$` references and `\$` (plus `\}` inside a default) are
    /// special: used for JSON strings and `${NAME:-default}` words.
    pub(super) fn plain(&self, chars: &[PChar], in_default: bool) -> Result<String, KubefileError> {
        let mut out = String::new();
        let mut i = 0;
        while i < chars.len() {
            match chars[i].c {
                '\\' if chars
                    .get(i + 1)
                    .is_some_and(|n| n.c == '$' || (in_default && (n.c == '}' || n.c == '\\'))) =>
                {
                    out.push(chars[i + 1].c);
                    i += 2;
                }
                '$' => self.dollar(chars, &mut i, &mut out, false)?,
                c => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        Ok(out)
    }

    /// Expands the reference starting at the `$` at `chars[*i]`. In a shell-form word
    /// (`shell`), the word of `${NAME:-word}` has its quotes and escapes processed as Docker
    /// does (`${NAME:-"x y"}` is `x y`); in a JSON string only `$` and `\\}` are special.
    pub(super) fn dollar(
        &self,
        chars: &[PChar],
        i: &mut usize,
        out: &mut String,
        shell: bool,
    ) -> Result<(), KubefileError> {
        let start = *i;
        let before = out.len();
        self.dollar_unchecked(chars, i, out, shell)?;
        let total = self.expanded.get().saturating_add(out.len().saturating_sub(before));
        self.expanded.set(total);
        // `ARG B=${A}${A}` doubles a value per line: forty lines would ask for terabytes.
        let problem = if out.len() > MAX_EXPANDED {
            format!("the value expands to more than {} MiB", MAX_EXPANDED >> 20)
        } else if total > MAX_EXPANDED_TOTAL {
            format!(
                "the Kubefile's variables expand to more than {} MiB in all",
                MAX_EXPANDED_TOTAL >> 20
            )
        } else {
            return Ok(());
        };
        Err(KubefileError::BadVariable {
            file: self.file.to_path_buf(),
            line: chars[start].pos.line,
            column: chars[start].pos.column,
            problem,
            text: collect(&chars[start..(*i).min(start + 64)]),
        })
    }

    fn dollar_unchecked(
        &self,
        chars: &[PChar],
        i: &mut usize,
        out: &mut String,
        shell: bool,
    ) -> Result<(), KubefileError> {
        let start = *i;
        let at = chars[start].pos;
        match chars.get(start + 1).map(|p| p.c) {
            Some('{') => {
                let name_start = start + 2;
                let mut j = name_start;
                while j < chars.len() && is_name_char(chars[j].c) {
                    j += 1;
                }
                let name = collect(&chars[name_start..j]);
                let check_name = |text: String| -> Result<(), KubefileError> {
                    if name.is_empty() {
                        Err(err!(
                            self.file,
                            at,
                            BadVariable {
                                problem: "empty variable name".to_string(),
                                text,
                            }
                        ))
                    } else if !is_var_name(&name) {
                        Err(err!(
                            self.file,
                            at,
                            BadVariable {
                                problem: format!("invalid variable name `{name}`"),
                                text,
                            }
                        ))
                    } else {
                        Ok(())
                    }
                };
                match chars.get(j).map(|p| p.c) {
                    Some('}') => {
                        let text = collect(&chars[start..=j]);
                        check_name(text.clone())?;
                        let Some(value) = self.lookup(&name) else {
                            return Err(err!(self.file, at, UndefinedVariable { name, text }));
                        };
                        out.push_str(value);
                        *i = j + 1;
                        Ok(())
                    }
                    Some(':') if chars.get(j + 1).is_some_and(|p| p.c == '-' || p.c == '+') => {
                        let op = chars[j + 1].c;
                        let body = j + 2;
                        let mut k = body;
                        let mut depth = 0usize;
                        loop {
                            match chars.get(k).map(|p| p.c) {
                                None => {
                                    return Err(err!(
                                        self.file,
                                        at,
                                        BadVariable {
                                            problem: "unterminated `${`".to_string(),
                                            text: collect(&chars[start..]),
                                        }
                                    ))
                                }
                                Some('\\') => k += 2,
                                Some('$') if chars.get(k + 1).is_some_and(|p| p.c == '{') => {
                                    depth += 1;
                                    k += 2;
                                }
                                Some('}') if depth == 0 => break,
                                Some('}') => {
                                    depth -= 1;
                                    k += 1;
                                }
                                Some(_) => k += 1,
                            }
                        }
                        check_name(collect(&chars[start..=k]))?;
                        let set = self.lookup(&name).filter(|v| !v.is_empty());
                        match (op, set) {
                            ('-', Some(v)) => out.push_str(v),
                            ('-', None) | ('+', Some(_)) if shell => {
                                out.push_str(&self.word(&chars[body..k], &mut 0, false)?)
                            }
                            ('-', None) | ('+', Some(_)) => out.push_str(&self.plain(&chars[body..k], true)?),
                            _ => {}
                        }
                        *i = k + 1;
                        Ok(())
                    }
                    None => Err(err!(
                        self.file,
                        at,
                        BadVariable {
                            problem: "unterminated `${`".to_string(),
                            text: collect(&chars[start..]),
                        }
                    )),
                    Some(_) => {
                        let end = chars[j..]
                            .iter()
                            .position(|p| p.c == '}')
                            .map_or(chars.len(), |e| j + e + 1);
                        let text = collect(&chars[start..end]);
                        check_name(text.clone())?;
                        Err(err!(
                            self.file,
                            at,
                            BadVariable {
                                problem: "unsupported variable syntax".to_string(),
                                text,
                            }
                        ))
                    }
                }
            }
            Some(c) if is_name_start(c) => {
                let mut j = start + 1;
                while j < chars.len() && is_name_char(chars[j].c) {
                    j += 1;
                }
                let name = collect(&chars[start + 1..j]);
                let Some(value) = self.lookup(&name) else {
                    return Err(err!(
                        self.file,
                        at,
                        UndefinedVariable {
                            text: format!("${name}"),
                            name,
                        }
                    ));
                };
                out.push_str(value);
                *i = j;
                Ok(())
            }
            _ => {
                out.push('$');
                *i += 1;
                Ok(())
            }
        }
    }
}
