//! Kubefile parsing: turns the text of a Kubefile into a [`Kubefile`], checking every
//! instruction and reporting all the errors of a file at once ([`KubefileErrors`]), each
//! with the `file:line:column` of the offending token in the original text. This module
//! never touches the file system: resolving COPY/APP sources against the build context is
//! the job of `context.rs`.
//!
//! # Kubefile reference
//!
//! A Kubefile is a sealer-style, Dockerfile-like list of instructions, one per line:
//!
//! ```text
//! # Build with: delivery build -f Kubefile --build-arg VERSION=1.2.0
//! ARG VERSION=1.0.0
//! FROM scratch
//! ENV CLUSTER_NAME=demo REGISTRY="registry.local:5000"
//! LABEL org.example.version=${VERSION} maintainer="ops team"
//! COPY images/${ARCH}/ images/
//! COPY ["charts/nginx", "charts/redis", "charts/"]
//! APP nginx local://apps/nginx/values.yaml local://apps/nginx/chart
//! APP redis local://apps/redis
//! LAUNCH ["nginx", "redis"]
//! ```
//!
//! ## Lexical rules
//!
//! - One instruction per line: a keyword followed by its arguments. Keywords are
//!   case-insensitive (`copy` is `COPY`).
//! - Blank lines are ignored, and so are comment lines: lines whose first non-blank
//!   character is `#`. A `#` anywhere else is an ordinary character.
//! - A line ending in `\` (optionally followed by blanks) continues on the next line; the
//!   backslash is removed and the lines are joined as they are. Blank lines and comment
//!   lines inside a continuation are skipped, as Docker does. Positions in errors always
//!   refer to the original line and column (1-based, counted in characters).
//! - Shell-form arguments are split into words at whitespace. `"..."` groups a word in
//!   which `\"`, `\\` and `\$` are escapes and variables are expanded; `'...'` groups a
//!   word taken literally; outside quotes `\` makes the next character literal.
//! - JSON form: arguments that start with `[` followed by `"` or `]` are a JSON array of
//!   strings (standard JSON escapes), e.g. `COPY ["my file", "dest/"]`. A malformed array
//!   is an error at the offending column.
//! - Variables: `$NAME`, `${NAME}` and `${NAME:-default}` (the default is used when `NAME`
//!   is unset or empty; `${NAME:+word}` gives `word` when it is set and non-empty) are
//!   expanded in the arguments of every instruction except `CMD` and `CMDS`, whose
//!   commands are run by a shell at install time and are kept verbatim. `\$` is a literal
//!   `$`, and so is a `$` not followed by a name or `{`. The variables are the ARGs
//!   declared so far (plus the predefined `ARCH`) and the ENVs set so far; ENV wins over
//!   an ARG of the same name. Using an undefined variable is an error at its `$`.
//!
//! ## Instructions
//!
//! - `FROM scratch` or `FROM <path to a base delivery.run>`: exactly one per file, with
//!   exactly one argument; only ARG may come before it. `scratch` is case-insensitive.
//!   Example: `FROM ../base/kubernetes-${ARCH}.run`.
//! - `ARG <name>` or `ARG <name>=<default>` (several per line allowed): declares a build
//!   argument. `--build-arg name=value` overrides the default; an ARG with neither is an
//!   error. A `--build-arg` the Kubefile does not declare is a warning. `ARCH` is
//!   predefined as the target architecture (e.g. `amd64`) and only `--build-arg ARCH=...`
//!   changes it (a default in `ARG ARCH=...` is ignored with a warning). Names are
//!   letters, digits and `_`, not starting with a digit. Example: `ARG VERSION=1.0.0`.
//! - `ENV <key>=<value> [<key>=<value> ...]` or the legacy `ENV <key> <value with spaces>`:
//!   environment of the install-time commands, also usable as variables further down.
//!   Example: `ENV KUBECONFIG=/etc/kubernetes/admin.conf MODE="high availability"`.
//! - `LABEL <key>=<value> [<key>=<value> ...]`: metadata of the bundle.
//!   Example: `LABEL org.example.version=1.0.0`.
//! - `COPY <src> [<src> ...] <dest>` or `COPY ["<src>", ..., "<dest>"]`: copies files or
//!   directories (glob patterns allowed) from the build context into the bundle. Flags
//!   such as `--chown` or `--from` are not supported. Example: `COPY manifests/*.yaml etc/`.
//! - `APP <name> local://<path> [local://<path> ...]`: defines an application whose files
//!   are copied to `application/apps/<name>/`. Names match `[a-z0-9][a-z0-9-_.]*` and are
//!   unique; only the `local://` scheme (a path in the build context) is supported.
//!   Example: `APP nginx local://apps/nginx`.
//! - `LAUNCH ["<app>", ...]` or `LAUNCH <app> [<app> ...]`: the apps to launch at install
//!   time, in order; each must be defined by an APP somewhere in the file.
//!   Example: `LAUNCH ["calico", "nginx"]`.
//! - `CMD` / `CMDS`: shell commands run at install time, either a JSON array of commands
//!   (`CMDS ["kubectl apply -f a.yaml", "kubectl apply -f b.yaml"]`) or the shell form,
//!   where the rest of the instruction is one command (`CMD kubectl get nodes`).
//!
//! A file has at most one of LAUNCH, CMD and CMDS. Any other instruction (ADD, RUN,
//! KUBEVERSION, CNI, ...) is an error.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

/// The instructions a Kubefile may use, in the order the reference lists them.
pub const INSTRUCTIONS: &[&str] = &["FROM", "ARG", "ENV", "LABEL", "COPY", "APP", "LAUNCH", "CMD", "CMDS"];

/// A position in the original Kubefile text: 1-based line, and 1-based column counted in
/// characters of that line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    pub fn new(line: usize, column: usize) -> Self {
        Pos { line, column }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A parsed, fully expanded Kubefile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kubefile {
    pub path: PathBuf,
    /// FROM
    pub base: Base,
    /// Final ARG values after `--build-arg`, including the predefined `ARCH`.
    pub args: BTreeMap<String, String>,
    pub env: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub copies: Vec<Copy>,
    pub apps: Vec<App>,
    pub launch: Option<Launch>,
    /// Problems that do not stop the build, e.g. an undeclared `--build-arg`.
    pub warnings: Vec<String>,
}

/// What the bundle is built on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    /// `FROM scratch`
    Scratch,
    /// `FROM <path to a base delivery.run>` (the path as written, after expansion).
    Bundle { path: String, at: Pos },
}

/// One COPY instruction: sources and destination after expansion, each with the position
/// of its token (for a JSON string, its opening quote). `at` is the COPY keyword.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    pub sources: Vec<(String, Pos)>,
    pub dest: (String, Pos),
    pub at: Pos,
}

/// One APP instruction; `sources` are the paths with `local://` stripped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    pub name: String,
    pub sources: Vec<(String, Pos)>,
    pub at: Pos,
}

/// What the installer runs: apps to launch (LAUNCH) or shell commands (CMD/CMDS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launch {
    Apps { names: Vec<String>, at: Pos },
    Cmds { cmds: Vec<String>, at: Pos },
}

/// One problem in a Kubefile. Every variant carries the Kubefile path and the 1-based
/// line and column of the offending token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KubefileError {
    #[error("{file}:{line}:{column}: unknown instruction `{keyword}`\n  hint: {hint}")]
    UnknownInstruction {
        file: PathBuf,
        line: usize,
        column: usize,
        keyword: String,
        hint: String,
    },
    #[error(
        "{file}:{line}:{column}: Kubefile has no FROM instruction\n  hint: start it with `FROM scratch` or `FROM <path to a base delivery.run>` (only ARG may come before FROM)"
    )]
    MissingFrom { file: PathBuf, line: usize, column: usize },
    #[error(
        "{file}:{line}:{column}: second FROM instruction `FROM {text}`; the first is on line {first_line}\n  hint: a Kubefile builds one bundle from exactly one base; remove one of them"
    )]
    DuplicateFrom {
        file: PathBuf,
        line: usize,
        column: usize,
        text: String,
        first_line: usize,
    },
    #[error(
        "{file}:{line}:{column}: {keyword} before FROM\n  hint: only ARG may come before FROM; move this instruction below the FROM line"
    )]
    BeforeFrom {
        file: PathBuf,
        line: usize,
        column: usize,
        keyword: String,
    },
    #[error("{file}:{line}:{column}: {instruction} {problem}: `{text}`\n  hint: expected {usage}")]
    BadArguments {
        file: PathBuf,
        line: usize,
        column: usize,
        instruction: &'static str,
        problem: String,
        text: String,
        usage: &'static str,
    },
    #[error("{file}:{line}:{column}: invalid {what} `{name}`\n  hint: {rule}")]
    InvalidName {
        file: PathBuf,
        line: usize,
        column: usize,
        what: &'static str,
        name: String,
        rule: &'static str,
    },
    #[error(
        "{file}:{line}:{column}: {instruction} key must not be empty: `{text}`\n  hint: write `{instruction} key=value`"
    )]
    EmptyKey {
        file: PathBuf,
        line: usize,
        column: usize,
        instruction: &'static str,
        text: String,
    },
    #[error(
        "{file}:{line}:{column}: ARG `{name}` has no value\n  hint: give it a default (`ARG {name}=value`) or pass `--build-arg {name}=value`"
    )]
    MissingArgValue {
        file: PathBuf,
        line: usize,
        column: usize,
        name: String,
    },
    #[error(
        "{file}:{line}:{column}: undefined variable `{name}` in `{text}`\n  hint: declare it with ARG or ENV above this line, or give a default: `${{{name}:-default}}`"
    )]
    UndefinedVariable {
        file: PathBuf,
        line: usize,
        column: usize,
        name: String,
        text: String,
    },
    #[error(
        "{file}:{line}:{column}: {problem} in `{text}`\n  hint: variables are written `$NAME`, `${{NAME}}` or `${{NAME:-default}}`; write `\\$` for a literal `$`"
    )]
    BadVariable {
        file: PathBuf,
        line: usize,
        column: usize,
        problem: String,
        text: String,
    },
    #[error(
        "{file}:{line}:{column}: unterminated {quote} quote in `{text}`\n  hint: close the quote, or escape it with `\\`"
    )]
    UnterminatedQuote {
        file: PathBuf,
        line: usize,
        column: usize,
        quote: char,
        text: String,
    },
    #[error("{file}:{line}:{column}: {instruction} flag `{flag}` is not supported\n  hint: {hint}")]
    UnsupportedFlag {
        file: PathBuf,
        line: usize,
        column: usize,
        instruction: &'static str,
        flag: String,
        hint: &'static str,
    },
    #[error(
        "{file}:{line}:{column}: APP source `{text}` uses the unsupported scheme `{scheme}`\n  hint: only local:// sources (paths in the build context) are supported"
    )]
    UnsupportedScheme {
        file: PathBuf,
        line: usize,
        column: usize,
        scheme: String,
        text: String,
    },
    #[error(
        "{file}:{line}:{column}: APP source `{text}` has no scheme\n  hint: write `local://{text}` for a path in the build context"
    )]
    MissingScheme {
        file: PathBuf,
        line: usize,
        column: usize,
        text: String,
    },
    #[error(
        "{file}:{line}:{column}: APP `{name}` is already defined at {file}:{first_line}:{first_column}\n  hint: app names must be unique; rename or merge one of them"
    )]
    DuplicateApp {
        file: PathBuf,
        line: usize,
        column: usize,
        name: String,
        first_line: usize,
        first_column: usize,
    },
    #[error("{file}:{line}:{column}: LAUNCH names app `{name}`, which no APP defines\n  hint: {hint}")]
    UnknownApp {
        file: PathBuf,
        line: usize,
        column: usize,
        name: String,
        hint: String,
    },
    #[error(
        "{file}:{line}:{column}: {instruction} conflicts with the {first_instruction} on line {first_line}\n  hint: a Kubefile has at most one of LAUNCH, CMD and CMDS; merge them into one"
    )]
    DuplicateLaunch {
        file: PathBuf,
        line: usize,
        column: usize,
        instruction: &'static str,
        first_instruction: &'static str,
        first_line: usize,
    },
    #[error(
        "{file}:{line}:{column}: malformed JSON array: {problem} in `{text}`\n  hint: write a JSON array of double-quoted strings, e.g. [\"a\", \"b\"]"
    )]
    Json {
        file: PathBuf,
        line: usize,
        column: usize,
        problem: String,
        text: String,
    },
}

impl KubefileError {
    /// The position of the offending token.
    pub fn pos(&self) -> Pos {
        use KubefileError::*;
        match self {
            UnknownInstruction { line, column, .. }
            | MissingFrom { line, column, .. }
            | DuplicateFrom { line, column, .. }
            | BeforeFrom { line, column, .. }
            | BadArguments { line, column, .. }
            | InvalidName { line, column, .. }
            | EmptyKey { line, column, .. }
            | MissingArgValue { line, column, .. }
            | UndefinedVariable { line, column, .. }
            | BadVariable { line, column, .. }
            | UnterminatedQuote { line, column, .. }
            | UnsupportedFlag { line, column, .. }
            | UnsupportedScheme { line, column, .. }
            | MissingScheme { line, column, .. }
            | DuplicateApp { line, column, .. }
            | UnknownApp { line, column, .. }
            | DuplicateLaunch { line, column, .. }
            | Json { line, column, .. } => Pos::new(*line, *column),
        }
    }
}

/// All the errors of one Kubefile, sorted by position. Displays one error after another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubefileErrors(pub Vec<KubefileError>);

impl KubefileErrors {
    pub fn iter(&self) -> std::slice::Iter<'_, KubefileError> {
        self.0.iter()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for KubefileErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for KubefileErrors {}

impl<'a> IntoIterator for &'a KubefileErrors {
    type Item = &'a KubefileError;
    type IntoIter = std::slice::Iter<'a, KubefileError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Parses `text`, the contents of the Kubefile at `path` (used in messages only).
/// `build_args` are the `--build-arg` values; `arch` is the predefined `ARCH`.
pub fn parse(
    path: &Path,
    text: &str,
    build_args: &BTreeMap<String, String>,
    arch: &str,
) -> Result<Kubefile, KubefileErrors> {
    let mut p = Parser::new(path, build_args, arch);
    let instructions = split_instructions(text);
    let has_from = instructions.iter().any(|i| i.keyword.eq_ignore_ascii_case("FROM"));
    for ins in &instructions {
        p.instruction(ins, has_from);
    }
    p.finish()
}

// ---------------------------------------------------------------------------------------
// Physical lines -> instructions

/// A character of the original text with its position.
#[derive(Debug, Clone, Copy)]
struct PChar {
    c: char,
    pos: Pos,
}

/// One instruction after joining continuation lines.
struct Instruction {
    keyword: String,
    at: Pos,
    /// The arguments, trimmed, each character with its original position.
    args: Vec<PChar>,
}

fn collect(chars: &[PChar]) -> String {
    chars.iter().map(|p| p.c).collect()
}

fn trim(chars: &[PChar]) -> &[PChar] {
    let start = chars.iter().position(|p| !p.c.is_whitespace()).unwrap_or(chars.len());
    let end = chars
        .iter()
        .rposition(|p| !p.c.is_whitespace())
        .map_or(start, |i| i + 1);
    &chars[start..end.max(start)]
}

fn split_instructions(text: &str) -> Vec<Instruction> {
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

fn make_instruction(chars: Vec<PChar>) -> Option<Instruction> {
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

macro_rules! err {
    ($file:expr, $pos:expr, $variant:ident { $($field:ident $(: $value:expr)?),* $(,)? }) => {
        KubefileError::$variant {
            file: $file.to_path_buf(),
            line: $pos.line,
            column: $pos.column,
            $($field $(: $value)?),*
        }
    };
}

/// A shell-form word after quote removal and expansion.
struct Word {
    text: String,
    pos: Pos,
    /// Index just past the word in the argument characters.
    end: usize,
}

/// Expands variables and splits shell-form arguments into words.
struct Expander<'a> {
    file: &'a Path,
    env: &'a BTreeMap<String, String>,
    args: &'a BTreeMap<String, String>,
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn is_var_name(s: &str) -> bool {
    let mut cs = s.chars();
    cs.next().is_some_and(is_name_start) && cs.all(is_name_char)
}

impl Expander<'_> {
    fn lookup(&self, name: &str) -> Option<&String> {
        self.env.get(name).or_else(|| self.args.get(name))
    }

    /// Splits `chars` into words at unquoted whitespace.
    fn words(&self, chars: &[PChar]) -> Result<Vec<Word>, KubefileError> {
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
    fn whole(&self, chars: &[PChar]) -> Result<String, KubefileError> {
        let mut i = 0;
        self.word(chars, &mut i, false)
    }

    fn word(&self, chars: &[PChar], i: &mut usize, split: bool) -> Result<String, KubefileError> {
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
                            Some('$') => self.dollar(chars, i, &mut out)?,
                            Some(c) => {
                                out.push(c);
                                *i += 1;
                            }
                        }
                    }
                }
                '$' => self.dollar(chars, i, &mut out)?,
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
    fn plain(&self, chars: &[PChar], in_default: bool) -> Result<String, KubefileError> {
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
                '$' => self.dollar(chars, &mut i, &mut out)?,
                c => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        Ok(out)
    }

    /// Expands the reference starting at the `$` at `chars[*i]`.
    fn dollar(&self, chars: &[PChar], i: &mut usize, out: &mut String) -> Result<(), KubefileError> {
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

// ---------------------------------------------------------------------------------------
// JSON arrays

/// A JSON string: its unescaped characters, each with the position of the source text
/// it came from, and the position of its opening quote.
struct JsonString {
    chars: Vec<PChar>,
    pos: Pos,
}

/// True when the arguments are meant as a JSON array: `[` followed by `"` or `]`.
/// Anything else starting with `[` (a glob class, a `[ -f x ]` test) is shell form.
fn is_json_form(chars: &[PChar]) -> bool {
    chars.first().is_some_and(|p| p.c == '[')
        && chars[1..]
            .iter()
            .find(|p| !p.c.is_whitespace())
            .is_some_and(|p| p.c == '"' || p.c == ']')
}

fn parse_json_array(file: &Path, chars: &[PChar]) -> Result<Vec<JsonString>, KubefileError> {
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
fn json_string(chars: &[PChar], i: &mut usize) -> Result<JsonString, (usize, String)> {
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

fn json_hex4(chars: &[PChar], start: usize) -> Result<u32, (usize, String)> {
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

// ---------------------------------------------------------------------------------------
// Instructions

const FROM_USAGE: &str = "`FROM scratch` or `FROM <path to a base delivery.run>`";
const ARG_USAGE: &str = "`ARG <name>` or `ARG <name>=<default>`";
const ENV_USAGE: &str = "`ENV <key>=<value> [<key>=<value> ...]` or `ENV <key> <value>`";
const LABEL_USAGE: &str = "`LABEL <key>=<value> [<key>=<value> ...]`";
const COPY_USAGE: &str = "`COPY <src> [<src> ...] <dest>` or `COPY [\"<src>\", ..., \"<dest>\"]`";
const APP_USAGE: &str = "`APP <name> local://<path> [local://<path> ...]`";
const LAUNCH_USAGE: &str = "`LAUNCH [\"<app>\", ...]` or `LAUNCH <app> [<app> ...]`";
const CMD_USAGE: &str =
    "a JSON array of shell commands, e.g. `CMDS [\"kubectl apply -f app.yaml\"]`, or one shell command";

struct Parser<'a> {
    file: &'a Path,
    build_args: &'a BTreeMap<String, String>,
    arch: String,
    errors: Vec<KubefileError>,
    warnings: Vec<String>,
    args: BTreeMap<String, String>,
    declared: BTreeSet<String>,
    env: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
    from: Option<(Base, usize)>,
    copies: Vec<Copy>,
    apps: Vec<App>,
    app_pos: BTreeMap<String, Pos>,
    launch: Option<(Launch, &'static str, usize)>,
    launch_refs: Vec<(String, Pos)>,
}

impl<'a> Parser<'a> {
    fn new(file: &'a Path, build_args: &'a BTreeMap<String, String>, arch: &str) -> Self {
        let arch = build_args.get("ARCH").cloned().unwrap_or_else(|| arch.to_string());
        let mut args = BTreeMap::new();
        args.insert("ARCH".to_string(), arch.clone());
        Parser {
            file,
            build_args,
            arch,
            errors: Vec::new(),
            warnings: Vec::new(),
            args,
            declared: BTreeSet::new(),
            env: BTreeMap::new(),
            labels: BTreeMap::new(),
            from: None,
            copies: Vec::new(),
            apps: Vec::new(),
            app_pos: BTreeMap::new(),
            launch: None,
            launch_refs: Vec::new(),
        }
    }

    fn expander(&self) -> Expander<'_> {
        Expander {
            file: self.file,
            env: &self.env,
            args: &self.args,
        }
    }

    fn bad_args(
        &self,
        pos: Pos,
        instruction: &'static str,
        problem: impl Into<String>,
        text: &[PChar],
        usage: &'static str,
    ) -> KubefileError {
        err!(
            self.file,
            pos,
            BadArguments {
                instruction,
                problem: problem.into(),
                text: collect(text),
                usage,
            }
        )
    }

    fn instruction(&mut self, ins: &Instruction, has_from: bool) {
        let upper = ins.keyword.to_ascii_uppercase();
        let Some(&keyword) = INSTRUCTIONS.iter().find(|k| **k == upper) else {
            let special = match upper.as_str() {
                "ADD" => "use COPY (remote URLs and archive extraction are not supported); ",
                "RUN" => "nothing runs at build time; use CMDS for commands run at install time; ",
                "ENTRYPOINT" => "use LAUNCH or CMDS; ",
                _ => "",
            };
            self.errors.push(err!(
                self.file,
                ins.at,
                UnknownInstruction {
                    keyword: ins.keyword.clone(),
                    hint: format!("{special}supported instructions are {}", INSTRUCTIONS.join(", ")),
                }
            ));
            return;
        };
        if self.from.is_none() && has_from && keyword != "FROM" && keyword != "ARG" {
            self.errors.push(err!(
                self.file,
                ins.at,
                BeforeFrom {
                    keyword: keyword.to_string(),
                }
            ));
            return;
        }
        let result = match keyword {
            "FROM" => self.from(ins),
            "ARG" => self.arg(ins),
            "ENV" => self.env(ins),
            "LABEL" => self.label(ins),
            "COPY" => self.copy(ins),
            "APP" => self.app(ins),
            "LAUNCH" => self.launch(ins),
            _ => self.cmds(ins, keyword),
        };
        if let Err(e) = result {
            self.errors.push(e);
        }
    }

    fn from(&mut self, ins: &Instruction) -> Result<(), KubefileError> {
        if let Some((_, first_line)) = &self.from {
            return Err(err!(
                self.file,
                ins.at,
                DuplicateFrom {
                    text: collect(&ins.args),
                    first_line: *first_line,
                }
            ));
        }
        // A placeholder until the base is known, so that a malformed FROM does not also
        // get every later instruction reported as coming before FROM.
        self.from = Some((Base::Scratch, ins.at.line));
        let words = self.expander().words(&ins.args)?;
        if words.len() != 1 {
            let problem = format!("takes exactly one argument, got {}", words.len());
            let pos = words.get(1).map_or(ins.at, |w| w.pos);
            return Err(self.bad_args(pos, "FROM", problem, &ins.args, FROM_USAGE));
        }
        let w = &words[0];
        let base = if w.text.eq_ignore_ascii_case("scratch") {
            Base::Scratch
        } else if w.text.is_empty() {
            return Err(self.bad_args(w.pos, "FROM", "path is empty", &ins.args, FROM_USAGE));
        } else {
            Base::Bundle {
                path: w.text.clone(),
                at: w.pos,
            }
        };
        self.from = Some((base, ins.at.line));
        Ok(())
    }

    fn arg(&mut self, ins: &Instruction) -> Result<(), KubefileError> {
        let words = self.expander().words(&ins.args)?;
        if words.is_empty() {
            return Err(self.bad_args(ins.at, "ARG", "needs a name", &ins.args, ARG_USAGE));
        }
        for w in words {
            let (name, default) = match w.text.split_once('=') {
                Some((n, d)) => (n.to_string(), Some(d.to_string())),
                None => (w.text.clone(), None),
            };
            if !is_var_name(&name) {
                self.errors.push(err!(
                    self.file,
                    w.pos,
                    InvalidName {
                        what: "ARG name",
                        name,
                        rule: "ARG names are letters, digits and `_`, not starting with a digit",
                    }
                ));
                continue;
            }
            self.declared.insert(name.clone());
            if name == "ARCH" {
                if let Some(d) = default {
                    if d != self.arch {
                        self.warnings.push(format!(
                            "{}:{}: the default of `ARG ARCH={d}` is ignored: ARCH is {} (set it with --build-arg ARCH=...)",
                            self.file.display(),
                            w.pos,
                            self.arch
                        ));
                    }
                }
                continue;
            }
            let value = self
                .build_args
                .get(&name)
                .cloned()
                .or(default)
                .or_else(|| self.args.get(&name).cloned());
            match value {
                Some(v) => {
                    self.args.insert(name, v);
                }
                None => {
                    self.errors
                        .push(err!(self.file, w.pos, MissingArgValue { name: name.clone() }));
                    // Defined as empty so that its uses do not pile up more errors.
                    self.args.insert(name, String::new());
                }
            }
        }
        Ok(())
    }

    /// Parses `key=value` words; every word must have a non-empty key.
    fn pairs(
        &self,
        ins: &Instruction,
        words: Vec<Word>,
        instruction: &'static str,
        usage: &'static str,
    ) -> Result<Vec<(String, String)>, KubefileError> {
        let mut out = Vec::new();
        for w in words {
            let Some((k, v)) = w.text.split_once('=') else {
                return Err(self.bad_args(
                    w.pos,
                    instruction,
                    format!("expects key=value pairs, got `{}`", w.text),
                    &ins.args,
                    usage,
                ));
            };
            if k.is_empty() {
                return Err(err!(
                    self.file,
                    w.pos,
                    EmptyKey {
                        instruction,
                        text: w.text.clone(),
                    }
                ));
            }
            out.push((k.to_string(), v.to_string()));
        }
        Ok(out)
    }

    fn env(&mut self, ins: &Instruction) -> Result<(), KubefileError> {
        let ex = self.expander();
        let words = ex.words(&ins.args)?;
        let Some(first) = words.first() else {
            return Err(self.bad_args(ins.at, "ENV", "needs a key and a value", &ins.args, ENV_USAGE));
        };
        let pairs = if first.text.contains('=') {
            self.pairs(ins, words, "ENV", ENV_USAGE)?
        } else {
            // Legacy form: the rest of the line is the value.
            if words.len() < 2 {
                return Err(self.bad_args(
                    first.pos,
                    "ENV",
                    format!("`{}` has no value", first.text),
                    &ins.args,
                    ENV_USAGE,
                ));
            }
            if first.text.is_empty() {
                return Err(err!(
                    self.file,
                    first.pos,
                    EmptyKey {
                        instruction: "ENV",
                        text: collect(&ins.args),
                    }
                ));
            }
            let value = ex.whole(trim(&ins.args[first.end..]))?;
            vec![(first.text.clone(), value)]
        };
        self.env.extend(pairs);
        Ok(())
    }

    fn label(&mut self, ins: &Instruction) -> Result<(), KubefileError> {
        let words = self.expander().words(&ins.args)?;
        if words.is_empty() {
            return Err(self.bad_args(ins.at, "LABEL", "needs key=value pairs", &ins.args, LABEL_USAGE));
        }
        let pairs = self.pairs(ins, words, "LABEL", LABEL_USAGE)?;
        self.labels.extend(pairs);
        Ok(())
    }

    /// The arguments as a list of strings: a JSON array or shell-form words, expanded.
    fn list(&self, ins: &Instruction) -> Result<Vec<(String, Pos)>, KubefileError> {
        let ex = self.expander();
        if is_json_form(&ins.args) {
            parse_json_array(self.file, &ins.args)?
                .into_iter()
                .map(|s| Ok((ex.plain(&s.chars, false)?, s.pos)))
                .collect()
        } else {
            Ok(ex.words(&ins.args)?.into_iter().map(|w| (w.text, w.pos)).collect())
        }
    }

    fn copy(&mut self, ins: &Instruction) -> Result<(), KubefileError> {
        if ins.args.first().is_some_and(|p| p.c == '-') && ins.args.get(1).is_some_and(|p| p.c == '-') {
            let end = ins
                .args
                .iter()
                .position(|p| p.c.is_whitespace())
                .unwrap_or(ins.args.len());
            let flag = collect(&ins.args[..end]);
            let name = flag.split('=').next().unwrap_or_default();
            let hint = match name {
                "--chown" | "--chmod" => {
                    "set the permission bits on the files in the build context instead; COPY keeps them"
                }
                "--from" => "multi-stage builds are not supported; COPY takes files from the build context only",
                _ => "COPY takes only sources and a destination",
            };
            return Err(err!(
                self.file,
                ins.args[0].pos,
                UnsupportedFlag {
                    instruction: "COPY",
                    flag,
                    hint,
                }
            ));
        }
        let mut items = self.list(ins)?;
        if items.len() < 2 {
            let problem = if items.is_empty() {
                "needs a source and a destination"
            } else {
                "needs at least one source and a destination"
            };
            return Err(self.bad_args(ins.at, "COPY", problem, &ins.args, COPY_USAGE));
        }
        if let Some((_, pos)) = items.iter().find(|(s, _)| s.is_empty()) {
            return Err(self.bad_args(*pos, "COPY", "has an empty path", &ins.args, COPY_USAGE));
        }
        let dest = items.pop().unwrap_or_default();
        self.copies.push(Copy {
            sources: items,
            dest,
            at: ins.at,
        });
        Ok(())
    }

    fn app(&mut self, ins: &Instruction) -> Result<(), KubefileError> {
        let words = self.expander().words(&ins.args)?;
        if words.len() < 2 {
            let problem = if words.is_empty() {
                "needs a name and at least one local:// source"
            } else {
                "needs at least one local:// source"
            };
            return Err(self.bad_args(ins.at, "APP", problem, &ins.args, APP_USAGE));
        }
        let name = &words[0];
        if !is_app_name(&name.text) {
            return Err(err!(self.file, name.pos, InvalidName {
                what: "app name",
                name: name.text.clone(),
                rule: "app names match [a-z0-9][a-z0-9-_.]*: lowercase letters, digits, `-`, `_` and `.`, starting with a letter or digit",
            }));
        }
        let mut sources = Vec::new();
        for w in &words[1..] {
            let Some((scheme, path)) = w.text.split_once("://") else {
                return Err(err!(self.file, w.pos, MissingScheme { text: w.text.clone() }));
            };
            if !scheme.eq_ignore_ascii_case("local") {
                return Err(err!(
                    self.file,
                    w.pos,
                    UnsupportedScheme {
                        scheme: scheme.to_string(),
                        text: w.text.clone(),
                    }
                ));
            }
            if path.is_empty() {
                return Err(self.bad_args(w.pos, "APP", "has an empty local:// path", &ins.args, APP_USAGE));
            }
            sources.push((path.to_string(), w.pos));
        }
        if let Some(first) = self.app_pos.get(&name.text) {
            return Err(err!(
                self.file,
                name.pos,
                DuplicateApp {
                    name: name.text.clone(),
                    first_line: first.line,
                    first_column: first.column,
                }
            ));
        }
        self.app_pos.insert(name.text.clone(), name.pos);
        self.apps.push(App {
            name: name.text.clone(),
            sources,
            at: ins.at,
        });
        Ok(())
    }

    fn check_single_launch(&self, ins: &Instruction, keyword: &'static str) -> Result<(), KubefileError> {
        match &self.launch {
            Some((_, first_instruction, first_line)) => Err(err!(
                self.file,
                ins.at,
                DuplicateLaunch {
                    instruction: keyword,
                    first_instruction,
                    first_line: *first_line,
                }
            )),
            None => Ok(()),
        }
    }

    fn launch(&mut self, ins: &Instruction) -> Result<(), KubefileError> {
        self.check_single_launch(ins, "LAUNCH")?;
        let names = self.list(ins)?;
        if names.is_empty() {
            return Err(self.bad_args(ins.at, "LAUNCH", "needs at least one app name", &ins.args, LAUNCH_USAGE));
        }
        self.launch_refs.extend(names.iter().cloned());
        self.launch = Some((
            Launch::Apps {
                names: names.into_iter().map(|(n, _)| n).collect(),
                at: ins.at,
            },
            "LAUNCH",
            ins.at.line,
        ));
        Ok(())
    }

    fn cmds(&mut self, ins: &Instruction, keyword: &'static str) -> Result<(), KubefileError> {
        self.check_single_launch(ins, keyword)?;
        let cmds: Vec<String> = if is_json_form(&ins.args) {
            let strings = parse_json_array(self.file, &ins.args)?;
            if let Some(s) = strings.iter().find(|s| collect(&s.chars).trim().is_empty()) {
                return Err(self.bad_args(s.pos, keyword, "has an empty command", &ins.args, CMD_USAGE));
            }
            strings.iter().map(|s| collect(&s.chars)).collect()
        } else {
            let cmd = collect(&ins.args);
            if cmd.is_empty() {
                vec![]
            } else {
                vec![cmd]
            }
        };
        if cmds.is_empty() {
            return Err(self.bad_args(ins.at, keyword, "needs at least one command", &ins.args, CMD_USAGE));
        }
        self.launch = Some((Launch::Cmds { cmds, at: ins.at }, keyword, ins.at.line));
        Ok(())
    }

    fn finish(mut self) -> Result<Kubefile, KubefileErrors> {
        for (name, pos) in std::mem::take(&mut self.launch_refs) {
            if !self.app_pos.contains_key(&name) {
                let hint = if self.app_pos.is_empty() {
                    format!("define it with `APP {name} local://<path>`")
                } else {
                    let known: Vec<&str> = self.app_pos.keys().map(String::as_str).collect();
                    format!(
                        "defined apps: {}; or define it with `APP {name} local://<path>`",
                        known.join(", ")
                    )
                };
                self.errors.push(err!(self.file, pos, UnknownApp { name, hint }));
            }
        }
        for name in self.build_args.keys() {
            if name != "ARCH" && !self.declared.contains(name) {
                self.warnings.push(format!(
                    "--build-arg {name} was given but the Kubefile declares no ARG {name}"
                ));
            }
        }
        let base = match self.from.take() {
            Some((base, _)) => base,
            None => {
                // First, even among other errors at 1:1 (the sort below is stable).
                self.errors.insert(0, err!(self.file, Pos::new(1, 1), MissingFrom {}));
                Base::Scratch
            }
        };
        if !self.errors.is_empty() {
            self.errors.sort_by_key(KubefileError::pos);
            return Err(KubefileErrors(self.errors));
        }
        Ok(Kubefile {
            path: self.file.to_path_buf(),
            base,
            args: self.args,
            env: self.env,
            labels: self.labels,
            copies: self.copies,
            apps: self.apps,
            launch: self.launch.map(|(l, _, _)| l),
            warnings: self.warnings,
        })
    }
}

fn is_app_name(s: &str) -> bool {
    let mut cs = s.chars();
    cs.next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && cs.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_with(text: &str, build_args: &[(&str, &str)]) -> Result<Kubefile, KubefileErrors> {
        let args = build_args.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        parse(Path::new("Kubefile"), text, &args, "amd64")
    }

    fn ok(text: &str) -> Kubefile {
        match parse_with(text, &[]) {
            Ok(k) => k,
            Err(e) => panic!("unexpected errors:\n{e}"),
        }
    }

    fn errs(text: &str) -> Vec<KubefileError> {
        match parse_with(text, &[]) {
            Ok(k) => panic!("expected errors, got {k:?}"),
            Err(e) => e.0,
        }
    }

    fn one_err(text: &str) -> KubefileError {
        let mut e = errs(text);
        assert_eq!(e.len(), 1, "expected one error, got {e:#?}");
        e.remove(0)
    }

    fn p(line: usize, column: usize) -> Pos {
        Pos::new(line, column)
    }

    fn s(v: &str, line: usize, column: usize) -> (String, Pos) {
        (v.to_string(), p(line, column))
    }

    #[test]
    fn minimal_scratch() {
        let k = ok("FROM scratch\n");
        assert_eq!(k.base, Base::Scratch);
        assert_eq!(k.path, PathBuf::from("Kubefile"));
        assert_eq!(k.args.get("ARCH").map(String::as_str), Some("amd64"));
        assert!(k.copies.is_empty() && k.apps.is_empty() && k.launch.is_none());
        assert!(k.warnings.is_empty());
    }

    #[test]
    fn from_bundle_with_variable_and_case_insensitive_keywords() {
        let k = ok("arg V=1.2\nfrom  ../base/k8s-${V}-$ARCH.run\n");
        assert_eq!(
            k.base,
            Base::Bundle {
                path: "../base/k8s-1.2-amd64.run".into(),
                at: p(2, 7)
            }
        );
        assert_eq!(ok("FROM SCRATCH").base, Base::Scratch);
    }

    #[test]
    fn full_example_from_the_reference() {
        let text = "\
# Build with: delivery build -f Kubefile --build-arg VERSION=1.2.0
ARG VERSION=1.0.0
FROM scratch
ENV CLUSTER_NAME=demo REGISTRY=\"registry.local:5000\"
LABEL org.example.version=${VERSION} maintainer=\"ops team\"
COPY images/${ARCH}/ images/
COPY [\"charts/nginx\", \"charts/redis\", \"charts/\"]
APP nginx local://apps/nginx/values.yaml local://apps/nginx/chart
APP redis local://apps/redis
LAUNCH [\"nginx\", \"redis\"]
";
        let k = parse_with(text, &[("VERSION", "1.2.0")]).unwrap();
        assert_eq!(k.args.get("VERSION").map(String::as_str), Some("1.2.0"));
        assert_eq!(k.env.get("REGISTRY").map(String::as_str), Some("registry.local:5000"));
        assert_eq!(k.labels.get("org.example.version").map(String::as_str), Some("1.2.0"));
        assert_eq!(k.labels.get("maintainer").map(String::as_str), Some("ops team"));
        assert_eq!(k.copies[0].sources, vec![s("images/amd64/", 6, 6)]);
        assert_eq!(k.copies[0].dest, s("images/", 6, 22));
        assert_eq!(k.copies[0].at, p(6, 1));
        assert_eq!(
            k.copies[1].sources,
            vec![s("charts/nginx", 7, 7), s("charts/redis", 7, 23)]
        );
        assert_eq!(k.copies[1].dest, s("charts/", 7, 39));
        assert_eq!(k.apps[0].name, "nginx");
        assert_eq!(
            k.apps[0].sources,
            vec![s("apps/nginx/values.yaml", 8, 11), s("apps/nginx/chart", 8, 42)]
        );
        assert_eq!(k.apps[1].at, p(9, 1));
        assert_eq!(
            k.launch,
            Some(Launch::Apps {
                names: vec!["nginx".into(), "redis".into()],
                at: p(10, 1)
            })
        );
    }

    #[test]
    fn continuations_and_comments_keep_original_positions() {
        let text = "\
# comment
ARG VERSION=1.0

FROM scratch
COPY a \\
  # a comment inside the continuation

  b \\
\tdest/
RUN make
";
        let e = errs(text);
        assert_eq!(e.len(), 1);
        match &e[0] {
            KubefileError::UnknownInstruction {
                line, column, keyword, ..
            } => {
                assert_eq!((*line, *column), (10, 1));
                assert_eq!(keyword, "RUN");
            }
            other => panic!("{other:?}"),
        }
        let k = ok(&text.replace("RUN make\n", ""));
        assert_eq!(k.copies[0].sources, vec![s("a", 5, 6), s("b", 8, 3)]);
        assert_eq!(k.copies[0].dest, s("dest/", 9, 2));
    }

    #[test]
    fn continuation_at_eof_and_crlf() {
        let k = ok("FROM scratch\r\nCOPY a \\\r\n  b\r\nCMD echo \\");
        assert_eq!(k.copies[0].dest, s("b", 3, 3));
        assert_eq!(
            k.launch,
            Some(Launch::Cmds {
                cmds: vec!["echo".into()],
                at: p(4, 1)
            })
        );
    }

    #[test]
    fn columns_count_characters() {
        let e = one_err("FROM scratch\nLABEL ünïcode=\"x\" \t$NOPE=1\n");
        match e {
            KubefileError::UndefinedVariable { line, column, name, .. } => {
                assert_eq!((line, column, name.as_str()), (2, 20, "NOPE"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_instruction_has_hint() {
        let e = one_err("FROM scratch\n  ADD x y\n");
        assert!(matches!(
            &e,
            KubefileError::UnknownInstruction { line: 2, column: 3, keyword, .. } if keyword == "ADD"
        ));
        let text = e.to_string();
        assert!(text.starts_with("Kubefile:2:3: unknown instruction `ADD`\n  hint: use COPY"));
        assert!(text.contains("FROM, ARG, ENV, LABEL, COPY, APP, LAUNCH, CMD, CMDS"));
        for kw in ["KUBEVERSION 1.20", "CNI calico", "run echo"] {
            let e = one_err(&format!("FROM scratch\n{kw}\n"));
            assert!(matches!(
                e,
                KubefileError::UnknownInstruction { line: 2, column: 1, .. }
            ));
        }
    }

    #[test]
    fn missing_from() {
        for text in ["", "\n# only a comment\n", "ARG A=1\n"] {
            let e = one_err(text);
            assert_eq!(
                e,
                KubefileError::MissingFrom {
                    file: "Kubefile".into(),
                    line: 1,
                    column: 1
                }
            );
            assert_eq!(
                e.to_string().lines().next(),
                Some("Kubefile:1:1: Kubefile has no FROM instruction")
            );
        }
        // Without any FROM, other problems are still reported, but not "before FROM".
        let e = errs("COPY a\n");
        assert_eq!(e.len(), 2);
        assert!(matches!(e[0], KubefileError::MissingFrom { .. }));
        assert!(matches!(e[1], KubefileError::BadArguments { line: 1, .. }));
    }

    #[test]
    fn only_arg_before_from_and_one_from() {
        let e = one_err("ARG A=1\nENV B=2\nFROM scratch\n");
        assert!(matches!(&e, KubefileError::BeforeFrom { line: 2, column: 1, keyword, .. } if keyword == "ENV"));
        let e = one_err("FROM scratch\n\nFROM other.run\n");
        assert!(matches!(
            &e,
            KubefileError::DuplicateFrom { line: 3, column: 1, first_line: 1, text, .. } if text == "other.run"
        ));
    }

    #[test]
    fn from_takes_one_argument() {
        let e = one_err("FROM base.run AS x\n");
        assert!(matches!(
            &e,
            KubefileError::BadArguments { line: 1, column: 15, instruction: "FROM", text, .. } if text == "base.run AS x"
        ));
        let e = one_err("FROM\nCOPY a b\n");
        assert!(matches!(e, KubefileError::BadArguments { line: 1, column: 1, .. }));
    }

    #[test]
    fn args_defaults_build_args_and_warnings() {
        let text = "ARG A=default\nARG B\nARG C=$A-c\nFROM scratch\nENV X=$A/$B/$C\n";
        let k = parse_with(text, &[("B", "bee"), ("UNUSED", "1")]).unwrap();
        assert_eq!(k.env.get("X").map(String::as_str), Some("default/bee/default-c"));
        assert_eq!(k.args.len(), 4); // A, B, C and ARCH
        assert_eq!(
            k.warnings,
            vec!["--build-arg UNUSED was given but the Kubefile declares no ARG UNUSED".to_string()]
        );
        let k = parse_with(text, &[("B", "b"), ("A", "override")]).unwrap();
        assert_eq!(k.env.get("X").map(String::as_str), Some("override/b/override-c"));
    }

    #[test]
    fn arg_without_value_is_an_error() {
        let e = errs("FROM scratch\nARG  NEEDED\nENV X=$NEEDED\n");
        assert_eq!(e.len(), 1, "{e:#?}");
        assert!(matches!(
            &e[0],
            KubefileError::MissingArgValue { line: 2, column: 6, name, .. } if name == "NEEDED"
        ));
        assert!(e[0].to_string().contains("--build-arg NEEDED=value"));
        let e = one_err("FROM scratch\nARG 1BAD=x\n");
        assert!(matches!(
            e,
            KubefileError::InvalidName {
                line: 2,
                column: 5,
                what: "ARG name",
                ..
            }
        ));
    }

    #[test]
    fn arch_is_predefined_and_overridable() {
        let k = ok("FROM scratch\nCOPY images/$ARCH/ images/\n");
        assert_eq!(k.copies[0].sources[0].0, "images/amd64/");
        let k = parse_with("FROM scratch\nCOPY images/${ARCH}/ images/\n", &[("ARCH", "arm64")]).unwrap();
        assert_eq!(k.copies[0].sources[0].0, "images/arm64/");
        assert_eq!(k.args.get("ARCH").map(String::as_str), Some("arm64"));
        assert!(k.warnings.is_empty());
        let k = ok("ARG ARCH=ppc64le\nFROM scratch\n");
        assert_eq!(k.args.get("ARCH").map(String::as_str), Some("amd64"));
        assert_eq!(k.warnings.len(), 1);
        assert!(k.warnings[0].contains("ARG ARCH=ppc64le"), "{:?}", k.warnings);
    }

    #[test]
    fn variable_expansion_forms() {
        let text = r#"ARG A=aa
ARG EMPTY=
FROM scratch
ENV E=env
LABEL l1=$A l2=${A} l3=${UNSET:-dflt} l4=${EMPTY:-fallback} l5=${A:-unused} l6=\$A l7="\$A" l8='$A' l9=${UNSET:-${ARCH}-x} l10=${A:+alt} l11=${UNSET:+alt} l12=$E-$A l13=cost$ l14=a$.b
"#;
        let k = ok(text);
        let l = |k2: &str| k.labels.get(k2).map(String::as_str);
        assert_eq!(l("l1"), Some("aa"));
        assert_eq!(l("l2"), Some("aa"));
        assert_eq!(l("l3"), Some("dflt"));
        assert_eq!(l("l4"), Some("fallback"));
        assert_eq!(l("l5"), Some("aa"));
        assert_eq!(l("l6"), Some("$A"));
        assert_eq!(l("l7"), Some("$A"));
        assert_eq!(l("l8"), Some("$A"));
        assert_eq!(l("l9"), Some("amd64-x"));
        assert_eq!(l("l10"), Some("alt"));
        assert_eq!(l("l11"), Some(""));
        assert_eq!(l("l12"), Some("env-aa"));
        assert_eq!(l("l13"), Some("cost$"));
        assert_eq!(l("l14"), Some("a$.b"));
    }

    #[test]
    fn env_is_visible_only_after_it_is_set() {
        let e = one_err("FROM scratch\nCOPY $DIR x\nENV DIR=manifests\nCOPY $DIR y\n");
        assert!(matches!(
            &e,
            KubefileError::UndefinedVariable { line: 2, column: 6, name, text, .. } if name == "DIR" && text == "$DIR"
        ));
        let k = ok("FROM scratch\nENV DIR=manifests\nCOPY ${DIR}/ y\n");
        assert_eq!(k.copies[0].sources[0].0, "manifests/");
    }

    #[test]
    fn malformed_variables() {
        let e = one_err("FROM scratch\nLABEL a=${UNCLOSED\n");
        assert!(matches!(e, KubefileError::BadVariable { line: 2, column: 9, .. }));
        let e = one_err("FROM scratch\nLABEL a=x${}\n");
        assert!(
            matches!(e, KubefileError::BadVariable { line: 2, column: 10, ref problem, .. } if problem == "empty variable name")
        );
        let e = one_err("FROM scratch\nLABEL a=${A:?err}\n");
        assert!(matches!(e, KubefileError::BadVariable { line: 2, column: 9, ref text, .. } if text == "${A:?err}"));
        let e = one_err("FROM scratch\nLABEL a=${NOPE}\n");
        assert!(matches!(e, KubefileError::UndefinedVariable { line: 2, column: 9, .. }));
    }

    #[test]
    fn env_forms() {
        let k = ok(r#"FROM scratch
ENV A=1 B="two words" C="say \"hi\"" D=
ENV LEGACY value with  spaces
ENV QUOTED "x y"
"#);
        let e = |k2: &str| k.env.get(k2).map(String::as_str);
        assert_eq!(e("A"), Some("1"));
        assert_eq!(e("B"), Some("two words"));
        assert_eq!(e("C"), Some("say \"hi\""));
        assert_eq!(e("D"), Some(""));
        assert_eq!(e("LEGACY"), Some("value with  spaces"));
        assert_eq!(e("QUOTED"), Some("x y"));
        let err = one_err("FROM scratch\nENV A=1 =2\n");
        assert!(
            matches!(&err, KubefileError::EmptyKey { line: 2, column: 9, instruction: "ENV", text, .. } if text == "=2")
        );
        let err = one_err("FROM scratch\nENV A=1 B\n");
        assert!(matches!(err, KubefileError::BadArguments { line: 2, column: 9, .. }));
        let err = one_err("FROM scratch\nENV ONLYKEY\n");
        assert!(matches!(err, KubefileError::BadArguments { line: 2, column: 5, .. }));
        let err = one_err("FROM scratch\nENV A=\"open\n");
        assert!(matches!(
            err,
            KubefileError::UnterminatedQuote {
                line: 2,
                column: 7,
                quote: '"',
                ..
            }
        ));
    }

    #[test]
    fn label_forms() {
        let k = ok("FROM scratch\nLABEL a=1 \"b c\"=2\n");
        assert_eq!(k.labels.get("b c").map(String::as_str), Some("2"));
        let e = one_err("FROM scratch\nLABEL novalue\n");
        assert!(matches!(
            e,
            KubefileError::BadArguments {
                line: 2,
                column: 7,
                instruction: "LABEL",
                ..
            }
        ));
        let e = one_err("FROM scratch\nLABEL =x\n");
        assert!(matches!(e, KubefileError::EmptyKey { line: 2, column: 7, .. }));
    }

    #[test]
    fn copy_forms() {
        let k = ok("FROM scratch\nCOPY a \"b c\" d/\nCOPY [\"x y\", \"$ARCH\\/z\"]\nCOPY [ab]*.yaml etc/\n");
        assert_eq!(k.copies[0].sources, vec![s("a", 2, 6), s("b c", 2, 8)]);
        assert_eq!(k.copies[1].sources, vec![s("x y", 3, 7)]);
        assert_eq!(k.copies[1].dest, s("amd64/z", 3, 14));
        assert_eq!(k.copies[2].sources, vec![s("[ab]*.yaml", 4, 6)]);
        let e = one_err("FROM scratch\nCOPY onlyone\n");
        assert!(matches!(
            e,
            KubefileError::BadArguments {
                line: 2,
                column: 1,
                instruction: "COPY",
                ..
            }
        ));
        let e = one_err("FROM scratch\nCOPY [\"onlyone\"]\n");
        assert!(matches!(e, KubefileError::BadArguments { line: 2, column: 1, .. }));
    }

    #[test]
    fn copy_flags_are_not_supported() {
        let e = one_err("FROM scratch\nCOPY --chown=1000:1000 a b\n");
        match &e {
            KubefileError::UnsupportedFlag { line, column, flag, .. } => {
                assert_eq!((*line, *column), (2, 6));
                assert_eq!(flag, "--chown=1000:1000");
            }
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().contains("not supported"));
        let e = one_err("FROM scratch\nCOPY  --from=builder [\"a\", \"b\"]\n");
        assert!(matches!(e, KubefileError::UnsupportedFlag { line: 2, column: 7, .. }));
    }

    #[test]
    fn malformed_json_arrays() {
        let cases = [
            ("COPY [\"a\", \"b\"", 15, "expected `,` or `]`, found end of line"),
            ("COPY [\"a\" \"b\"]", 11, "expected `,` or `]`, found `\"`"),
            ("COPY [\"a\", b]", 12, "expected a string, found `b`"),
            ("COPY [\"a\\x\", \"b\"]", 9, "invalid escape `\\x`"),
            ("COPY [\"a\", \"b\"] extra", 17, "unexpected `e` after `]`"),
            ("COPY [\"a\", \"b", 12, "unterminated string"),
            ("LAUNCH [\"\\u12G4\"]", 14, "expected 4 hex digits in `\\u` escape"),
            ("CMDS [\"a\",]", 11, "expected a string, found `]`"),
        ];
        for (line, column, problem) in cases {
            let e = one_err(&format!("FROM scratch\n{line}\n"));
            match &e {
                KubefileError::Json {
                    line: l,
                    column: c,
                    problem: pr,
                    ..
                } => {
                    assert_eq!((*l, *c, pr.as_str()), (2, column, problem), "{line}");
                }
                other => panic!("{line}: {other:?}"),
            }
        }
    }

    #[test]
    fn json_escapes() {
        let k = ok(r#"FROM scratch
CMDS ["echo \"a\\b\"\t\u00e9\ud83d\ude00", "kubectl apply -f $HOME/x"]
"#);
        assert_eq!(
            k.launch,
            Some(Launch::Cmds {
                cmds: vec![
                    "echo \"a\\b\"\t\u{e9}\u{1F600}".into(),
                    "kubectl apply -f $HOME/x".into()
                ],
                at: p(2, 1)
            })
        );
    }

    #[test]
    fn app_rules() {
        let e = one_err("FROM scratch\nAPP Nginx local://a\n");
        assert!(
            matches!(&e, KubefileError::InvalidName { line: 2, column: 5, what: "app name", name, .. } if name == "Nginx")
        );
        let e = one_err("FROM scratch\nAPP web http://example.com/x.yaml\n");
        assert!(matches!(
            &e,
            KubefileError::UnsupportedScheme { line: 2, column: 9, scheme, .. } if scheme == "http"
        ));
        assert!(e.to_string().contains("`http`"));
        let e = one_err("FROM scratch\nAPP web manifests/\n");
        assert!(matches!(e, KubefileError::MissingScheme { line: 2, column: 9, .. }));
        let e = one_err("FROM scratch\nAPP web\n");
        assert!(matches!(
            e,
            KubefileError::BadArguments {
                line: 2,
                column: 1,
                instruction: "APP",
                ..
            }
        ));
        let e = one_err("FROM scratch\nAPP web local://a\nAPP  web local://b\n");
        assert_eq!(
            e,
            KubefileError::DuplicateApp {
                file: "Kubefile".into(),
                line: 3,
                column: 6,
                name: "web".into(),
                first_line: 2,
                first_column: 5
            }
        );
        assert!(e.to_string().contains("already defined at Kubefile:2:5"));
        let k = ok("FROM scratch\nAPP a-1_b.c local://x local://y/${ARCH}\n");
        assert_eq!(k.apps[0].sources, vec![s("x", 2, 13), s("y/amd64", 2, 23)]);
    }

    #[test]
    fn launch_rules() {
        let k = ok("FROM scratch\nLAUNCH web db\nAPP db local://db\nAPP web local://web\n");
        assert_eq!(
            k.launch,
            Some(Launch::Apps {
                names: vec!["web".into(), "db".into()],
                at: p(2, 1)
            })
        );
        let e = one_err("FROM scratch\nAPP web local://web\nLAUNCH [\"web\", \"nope\"]\n");
        assert!(matches!(&e, KubefileError::UnknownApp { line: 3, column: 16, name, .. } if name == "nope"));
        assert!(e.to_string().contains("defined apps: web"));
        let e = one_err("FROM scratch\nAPP web local://web\nLAUNCH web\nCMDS [\"echo\"]\n");
        assert_eq!(
            e,
            KubefileError::DuplicateLaunch {
                file: "Kubefile".into(),
                line: 4,
                column: 1,
                instruction: "CMDS",
                first_instruction: "LAUNCH",
                first_line: 3
            }
        );
        let e = one_err("FROM scratch\nCMD a\ncmd b\n");
        assert!(matches!(
            e,
            KubefileError::DuplicateLaunch {
                line: 3,
                first_line: 2,
                ..
            }
        ));
        let e = one_err("FROM scratch\nLAUNCH []\n");
        assert!(matches!(
            e,
            KubefileError::BadArguments {
                line: 2,
                instruction: "LAUNCH",
                ..
            }
        ));
    }

    #[test]
    fn cmd_shell_form_is_verbatim() {
        let k = ok("FROM scratch\nCMD [ -f /etc/x ] && kubectl apply -f \"$DIR\" \\\n    --wait\n");
        assert_eq!(
            k.launch,
            Some(Launch::Cmds {
                cmds: vec!["[ -f /etc/x ] && kubectl apply -f \"$DIR\"     --wait".into()],
                at: p(2, 1)
            })
        );
        let e = one_err("FROM scratch\nCMDS [\"ok\", \"  \"]\n");
        assert!(matches!(
            e,
            KubefileError::BadArguments {
                line: 2,
                column: 13,
                ..
            }
        ));
    }

    #[test]
    fn all_errors_are_reported_sorted() {
        let text = "FROM scratch\nLAUNCH ghost\nRUN x\nCOPY a\nAPP BAD local://x\nENV X=$NOPE\n";
        let e = parse_with(text, &[]).unwrap_err();
        let positions: Vec<Pos> = e.iter().map(KubefileError::pos).collect();
        assert_eq!(positions, vec![p(2, 8), p(3, 1), p(4, 1), p(5, 5), p(6, 7)]);
        let shown = e.to_string();
        assert_eq!(shown.matches("Kubefile:").count(), 5, "{shown}");
        assert!(shown.starts_with("Kubefile:2:8: LAUNCH names app `ghost`"));
    }
}
