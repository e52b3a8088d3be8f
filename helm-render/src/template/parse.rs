//! The parser of Go's text/template: tokens to a tree of [`Node`]s, with `define` and
//! `block` bodies collected as named templates.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::lex::{lex, Tok, Token};
use super::TemplateError;

/// A list of nodes (a template body).
pub type List = Vec<Node>;

/// One node of a parsed template.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Text(String),
    Action(Pipe),
    If {
        pipe: Pipe,
        then: List,
        otherwise: List,
    },
    Range {
        pipe: Pipe,
        body: List,
        otherwise: List,
    },
    With {
        pipe: Pipe,
        body: List,
        otherwise: List,
    },
    Template {
        name: String,
        pipe: Option<Pipe>,
        line: usize,
    },
    Break(usize),
    Continue(usize),
}

/// A pipeline: optional variable declaration and commands joined by `|`.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipe {
    pub line: usize,
    pub decl: Vec<String>,
    /// `=` rather than `:=`.
    pub assign: bool,
    pub cmds: Vec<Cmd>,
}

/// One command: a function or value and its arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Cmd {
    pub args: Vec<Arg>,
}

/// An operand.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// `.a.b` on dot.
    Field(Vec<String>),
    /// `$x.a.b`.
    Variable(String, Vec<String>),
    /// A function name.
    Ident(String),
    /// `(pipe).a.b`, or any operand followed by fields.
    Chain(Box<Arg>, Vec<String>),
    Pipe(Box<Pipe>),
    Str(String),
    Number(crate::value::Value),
    Bool(bool),
    Nil,
    Dot,
}

/// A parsed file: its body and the templates it defines.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    pub body: List,
    pub defines: BTreeMap<String, Arc<List>>,
}

/// Nesting of control structures and parentheses beyond this is refused.
const MAX_NESTING: usize = 200;

/// Parses a template text.
pub fn parse(src: &str) -> Result<Parsed, TemplateError> {
    let toks = lex(src)?;
    let mut p = Parser {
        toks,
        pos: 0,
        defines: BTreeMap::new(),
        depth: 0,
        in_range: 0,
    };
    let (body, end) = p.list()?;
    if let Some(end) = end {
        return Err(TemplateError {
            line: end.1,
            message: format!("unexpected {{{{{}}}}}", end.0),
        });
    }
    Ok(Parsed {
        body,
        defines: p.defines,
    })
}

struct Parser {
    toks: Vec<Token>,
    pos: usize,
    defines: BTreeMap<String, Arc<List>>,
    depth: usize,
    in_range: usize,
}

/// Which keyword closed a list: "end", "else" (with what follows in the action) and its line.
type End = (String, usize);

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.pos)
    }

    fn line(&self) -> usize {
        self.peek().or_else(|| self.toks.last()).map_or(1, |t| t.line)
    }

    fn err<T>(&self, m: impl Into<String>) -> Result<T, TemplateError> {
        Err(TemplateError {
            line: self.line(),
            message: m.into(),
        })
    }

    /// Takes the next token. Its kind is moved out (text tokens can be large), leaving a
    /// placeholder: the parser never reads a consumed token's kind again, only its line.
    fn next(&mut self) -> Option<Token> {
        let t = self.toks.get_mut(self.pos).map(|t| Token {
            kind: std::mem::replace(&mut t.kind, Tok::Comma),
            line: t.line,
            space_before: t.space_before,
        });
        self.pos += 1;
        t
    }

    fn expect_right(&mut self) -> Result<(), TemplateError> {
        match self.next() {
            Some(Token {
                kind: Tok::RightDelim, ..
            }) => Ok(()),
            _ => {
                self.pos = self.pos.saturating_sub(1);
                self.err("expected end of action")
            }
        }
    }

    /// Parses nodes until `{{end}}`/`{{else}}` (returned, not consumed beyond the keyword).
    fn list(&mut self) -> Result<(List, Option<End>), TemplateError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return self.err("template nesting too deep");
        }
        let mut out = Vec::new();
        let result = loop {
            let Some(tok) = self.next() else {
                break None;
            };
            match tok.kind {
                Tok::Text(s) => out.push(Node::Text(s)),
                Tok::LeftDelim => {
                    let line = tok.line;
                    if let Some(Token {
                        kind: Tok::Ident(kw), ..
                    }) = self.peek().cloned()
                    {
                        match kw.as_str() {
                            "end" => {
                                self.pos += 1;
                                self.expect_right()?;
                                break Some(("end".to_string(), line));
                            }
                            "else" => {
                                self.pos += 1;
                                break Some(("else".to_string(), line));
                            }
                            "if" | "range" | "with" => {
                                self.pos += 1;
                                out.push(self.control(&kw, line)?);
                                continue;
                            }
                            "define" if self.depth > 1 => {
                                // Go allows `define` only at the top level of a file.
                                return self.err("unexpected <define> in command");
                            }
                            "define" | "block" => {
                                self.pos += 1;
                                if let Some(n) = self.define(kw == "block", line)? {
                                    out.push(n);
                                }
                                continue;
                            }
                            "template" => {
                                self.pos += 1;
                                out.push(self.template(line)?);
                                continue;
                            }
                            "break" | "continue" => {
                                self.pos += 1;
                                if self.in_range == 0 {
                                    return self.err(format!("{{{{{kw}}}}} outside {{{{range}}}}"));
                                }
                                self.expect_right()?;
                                out.push(if kw == "break" {
                                    Node::Break(line)
                                } else {
                                    Node::Continue(line)
                                });
                                continue;
                            }
                            _ => {}
                        }
                    }
                    let pipe = self.pipeline(line, true)?;
                    self.expect_right()?;
                    out.push(Node::Action(pipe));
                }
                _ => return self.err("unexpected token outside action"),
            }
        };
        self.depth -= 1;
        Ok((out, result))
    }

    fn control(&mut self, kw: &str, line: usize) -> Result<Node, TemplateError> {
        let pipe = self.pipeline(line, true)?;
        self.expect_right()?;
        if kw == "range" {
            self.in_range += 1;
        }
        let (body, end) = self.list()?;
        if kw == "range" {
            self.in_range -= 1;
        }
        let otherwise = match end {
            Some((e, _)) if e == "end" => Vec::new(),
            Some((e, eline)) if e == "else" => {
                // `else if` / `else with` chain: parse as a nested control ending with the same end.
                if let Some(Token {
                    kind: Tok::Ident(k2), ..
                }) = self.peek().cloned()
                {
                    if (k2 == "if" && kw == "if") || (k2 == "with" && kw == "with") {
                        self.pos += 1;
                        let nested = self.control(&k2, eline)?;
                        vec![nested]
                    } else {
                        self.else_body(kw)?
                    }
                } else {
                    self.else_body(kw)?
                }
            }
            _ => {
                return Err(TemplateError {
                    line,
                    message: format!("unexpected EOF in {kw}"),
                })
            }
        };
        Ok(match kw {
            "if" => Node::If {
                pipe,
                then: body,
                otherwise,
            },
            "range" => Node::Range { pipe, body, otherwise },
            _ => Node::With { pipe, body, otherwise },
        })
    }

    fn else_body(&mut self, kw: &str) -> Result<List, TemplateError> {
        self.expect_right()?;
        let (body, end) = self.list()?;
        match end {
            Some((e, _)) if e == "end" => Ok(body),
            _ => self.err(format!("expected {{{{end}}}} after {{{{else}}}} in {kw}")),
        }
    }

    fn define(&mut self, block: bool, line: usize) -> Result<Option<Node>, TemplateError> {
        let name = match self.next().map(|t| t.kind) {
            Some(Tok::Str(s)) => s,
            _ => return self.err("define/block needs a quoted name"),
        };
        let pipe = if block { Some(self.pipeline(line, false)?) } else { None };
        self.expect_right()?;
        let saved = self.in_range;
        self.in_range = 0;
        let (body, end) = self.list()?;
        self.in_range = saved;
        match end {
            Some((e, _)) if e == "end" => {}
            _ => {
                return Err(TemplateError {
                    line,
                    message: format!("unexpected EOF in define {name:?}"),
                })
            }
        }
        self.defines.insert(name.clone(), Arc::new(body));
        Ok(block.then_some(Node::Template { name, pipe, line }))
    }

    fn template(&mut self, line: usize) -> Result<Node, TemplateError> {
        let name = match self.next().map(|t| t.kind) {
            Some(Tok::Str(s)) => s,
            _ => return self.err("template needs a quoted name"),
        };
        let pipe = if matches!(self.peek().map(|t| &t.kind), Some(Tok::RightDelim)) {
            None
        } else {
            Some(self.pipeline(line, false)?)
        };
        self.expect_right()?;
        Ok(Node::Template { name, pipe, line })
    }

    /// Parses a pipeline up to (not including) `}}` or `)`.
    fn pipeline(&mut self, line: usize, allow_decl: bool) -> Result<Pipe, TemplateError> {
        let mut pipe = Pipe {
            line,
            decl: Vec::new(),
            assign: false,
            cmds: Vec::new(),
        };
        if allow_decl {
            // `$x :=`, `$x =`, `$k, $v :=`.
            let save = self.pos;
            let mut vars = Vec::new();
            loop {
                match self.peek().map(|t| t.kind.clone()) {
                    Some(Tok::Variable(v)) => {
                        self.pos += 1;
                        vars.push(v);
                        match self.peek().map(|t| t.kind.clone()) {
                            Some(Tok::Comma) if vars.len() < 2 => {
                                self.pos += 1;
                                continue;
                            }
                            Some(Tok::Declare) => {
                                self.pos += 1;
                                pipe.decl = vars;
                                break;
                            }
                            Some(Tok::Assign) => {
                                self.pos += 1;
                                pipe.decl = vars;
                                pipe.assign = true;
                                break;
                            }
                            _ => {
                                self.pos = save;
                                break;
                            }
                        }
                    }
                    _ => {
                        self.pos = save;
                        break;
                    }
                }
            }
        }
        loop {
            let cmd = self.command()?;
            pipe.cmds.push(cmd);
            match self.peek().map(|t| &t.kind) {
                Some(Tok::Pipe) => {
                    self.pos += 1;
                }
                _ => break,
            }
        }
        Ok(pipe)
    }

    fn command(&mut self) -> Result<Cmd, TemplateError> {
        let mut args = Vec::new();
        loop {
            match self.peek().map(|t| &t.kind) {
                None => return self.err("unexpected EOF in action"),
                Some(Tok::RightDelim) | Some(Tok::RightParen) | Some(Tok::Pipe) => break,
                _ => {}
            }
            if !args.is_empty() && !self.peek().is_some_and(|t| t.space_before) {
                return self.err("missing space between operands");
            }
            args.push(self.operand()?);
        }
        if args.is_empty() {
            return self.err("missing value for command");
        }
        Ok(Cmd { args })
    }

    fn operand(&mut self) -> Result<Arg, TemplateError> {
        let Some(tok) = self.next() else {
            return self.err("unexpected EOF");
        };
        let base = match tok.kind {
            Tok::Field(f) => {
                let mut fields = vec![f];
                fields.extend(self.fields());
                return Ok(Arg::Field(fields));
            }
            Tok::Variable(v) => {
                let fields = self.fields();
                return Ok(Arg::Variable(v, fields));
            }
            Tok::Dot => Arg::Dot,
            Tok::Ident(i) => match i.as_str() {
                "true" => Arg::Bool(true),
                "false" => Arg::Bool(false),
                "nil" => Arg::Nil,
                _ => Arg::Ident(i),
            },
            Tok::Str(s) => Arg::Str(s),
            Tok::Char(c) => Arg::Number(crate::value::Value::Int(c as i64)),
            Tok::Number(n) => Arg::Number(parse_number(&n).ok_or_else(|| TemplateError {
                line: tok.line,
                message: format!("bad number syntax: {n:?}"),
            })?),
            Tok::LeftParen => {
                self.depth += 1;
                if self.depth > MAX_NESTING {
                    return self.err("parenthesis nesting too deep");
                }
                let p = self.pipeline(tok.line, true)?;
                self.depth -= 1;
                match self.next().map(|t| t.kind) {
                    Some(Tok::RightParen) => {}
                    _ => return self.err("unclosed left paren"),
                }
                Arg::Pipe(Box::new(p))
            }
            other => {
                return Err(TemplateError {
                    line: tok.line,
                    message: format!("unexpected {other:?} in operand"),
                })
            }
        };
        let fields = self.fields();
        if fields.is_empty() {
            Ok(base)
        } else {
            Ok(Arg::Chain(Box::new(base), fields))
        }
    }

    /// Field names directly attached (no space) to the previous operand.
    fn fields(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(Token {
            kind: Tok::Field(f),
            space_before: false,
            ..
        }) = self.peek()
        {
            out.push(f.clone());
            self.pos += 1;
        }
        out
    }
}

/// A number literal: an int when it parses as one, else a float.
fn parse_number(s: &str) -> Option<crate::value::Value> {
    use crate::value::Value;
    if let Some(i) = crate::value::parse_go_int(s) {
        return Some(Value::Int(i));
    }
    let clean = s.replace('_', "");
    if let Some(f) = parse_hex_float(&clean) {
        return Some(Value::Float(f));
    }
    clean.parse::<f64>().ok().filter(|f| f.is_finite()).map(Value::Float)
}

/// Go's hexadecimal floating-point literal: `0x1p60`, `-0x1.8p-3`.
fn parse_hex_float(s: &str) -> Option<f64> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let body = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X"))?;
    let (mant, exp) = body.split_once(['p', 'P'])?;
    let exp: i32 = exp.parse().ok()?;
    let (int_part, frac_part) = mant.split_once('.').unwrap_or((mant, ""));
    let mut v = 0f64;
    for c in int_part.chars() {
        v = v * 16.0 + f64::from(c.to_digit(16)?);
    }
    let mut scale = 1.0 / 16.0;
    for c in frac_part.chars() {
        v += f64::from(c.to_digit(16)?) * scale;
        scale /= 16.0;
    }
    let v = v * 2f64.powi(exp.clamp(-1100, 1100));
    v.is_finite().then_some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_controls_and_defines() {
        let p = parse(r#"{{ define "x" }}X{{ end }}{{ if .a }}A{{ else if .b }}B{{ else }}C{{ end }}"#).unwrap();
        assert!(p.defines.contains_key("x"));
        assert_eq!(p.body.len(), 1);
        match &p.body[0] {
            Node::If { otherwise, .. } => assert!(matches!(otherwise[0], Node::If { .. })),
            n => panic!("{n:?}"),
        }
    }

    #[test]
    fn parses_decls_and_chains() {
        let p = parse(r#"{{ range $k, $v := .m }}{{ (index $v 0).name }}{{ end }}"#).unwrap();
        match &p.body[0] {
            Node::Range { pipe, body, .. } => {
                assert_eq!(pipe.decl, vec!["$k", "$v"]);
                match &body[0] {
                    Node::Action(p) => assert!(matches!(p.cmds[0].args[0], Arg::Chain(..))),
                    n => panic!("{n:?}"),
                }
            }
            n => panic!("{n:?}"),
        }
    }

    #[test]
    fn number_literals() {
        use crate::value::Value;
        assert_eq!(parse_number("0x1p60"), Some(Value::Float(2f64.powi(60))));
        assert_eq!(parse_number("1e18"), Some(Value::Float(1e18)));
        assert_eq!(parse_number("0x1F"), Some(Value::Int(31)));
        assert_eq!(parse_number("-2"), Some(Value::Int(-2)));
        assert_eq!(parse_number("1_000"), Some(Value::Int(1000)));
        assert_eq!(parse_number("1.5"), Some(Value::Float(1.5)));
        assert_eq!(parse_number("1x"), None);
    }

    #[test]
    fn errors_have_lines() {
        let e = parse("a\n\n{{ if .x }}").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(parse("{{ end }}").is_err());
        assert!(parse("{{ break }}").is_err());
        assert!(parse("{{ if 1 }}{{ define \"x\" }}{{ end }}{{ end }}").is_err());
        assert!(parse("{{ .a.b(c) }}").is_err());
    }
}
