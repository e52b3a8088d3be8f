//! Kubefile parsing: turns the text of a Kubefile into a [`Kubefile`], checking every
//! instruction and reporting all the errors of a file at once ([`KubefileErrors`]), each
//! with the `file:line:column` of the offending token in the original text. This module
//! never touches the file system: resolving COPY/APP sources against the build context is
//! the job of `context/`.
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
//! - `FROM scratch` or `FROM <base>`: exactly one per file, with exactly one argument (a
//!   `--platform=...` flag is ignored with a warning); only ARG may come before it. `scratch`
//!   is case-insensitive. `<base>` is a path to a base delivery.run (`FROM
//!   ../base/kubernetes-${ARCH}.run`) or a name, as sealer writes it (`FROM
//!   registry.example/sealer-apps/helm:v3.6.0`, `FROM kubernetes:v1.35.1`), resolved at build
//!   time through `--base NAME=FILE` or the local store of base bundles (`delivery base add`).
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
//!   Example: `LABEL org.example.version=1.0.0`. `MAINTAINER <text>` is the label
//!   `maintainer`.
//! - `COPY <src> [<src> ...] <dest>` or `COPY ["<src>", ..., "<dest>"]`: copies files or
//!   directories (glob patterns allowed) from the build context into the bundle. Flags
//!   such as `--chown` or `--from` are not supported. Example: `COPY manifests/*.yaml etc/`.
//!   Sealer's rootfs directories are always directories (see `context/`). A source may be
//!   an `https://` (`http://`) URL: downloaded at build time, its digest recorded in the
//!   manifest; `#sha256=<hex>` at its end is checked, and `--require-checksums` demands it.
//! - `RUN <shell command>` or `RUN ["<program>", "<arg>", ...]`: runs on the BUILD machine
//!   while the bundle is built, as in sealer: in a copy of the bundle's tree so far, with the
//!   ARGs and ENVs in its environment; what it adds or changes becomes part of the bundle.
//!   The command is kept as written (the shell expands it). Example: `RUN mkdir zookeeper`.
//! - `APP <name> <source> [<source> ...]`: defines an application whose files are copied to
//!   `application/apps/<name>/`. A source is `local://<path>` (a path in the build
//!   context) or an `https://` (`http://`) URL, downloaded at build time like a COPY source. Names are letters, digits, `-`, `_` and `.`, starting with a letter or digit
//!   (sealer's camelCase names included), and unique. Example: `APP nginx local://apps/nginx`.
//! - `CNI <name> <source> ...` / `CSI <name> <source> ...`: an APP that is the cluster's
//!   network (storage) plugin; also sets sealer's label
//!   `cluster.alpha.sealer.io/kube-cni-<name>=true` (`kube-csi-`).
//! - `APPCMDS <app> ["<command>", ...]`: the shell commands that launch `<app>`, run in
//!   the app's directory, instead of the default for its kind (`kubectl apply` for YAML,
//!   `helm upgrade --install` for a chart, `bash` for scripts).
//! - `APPENV <app> <key>=<value> ...`: environment of that app's commands only.
//! - `KUBEVERSION <constraint>`: the Kubernetes versions the bundle supports, e.g.
//!   `KUBEVERSION 1.22 - 1.24` or `>=1.25`; checked against the base bundle's Kubernetes
//!   version, and recorded as the label `app.alpha.sealer.io/supported-kube-version`.
//! - `LAUNCH ["<app>", ...]` or `LAUNCH <app> [<app> ...]`: the apps to launch at install
//!   time, in order; each must be defined by an APP (or CNI/CSI) somewhere in the file.
//!   Example: `LAUNCH ["calico", "nginx"]`.
//! - `CMD` / `CMDS`: shell commands run at install time, either a JSON array of commands
//!   (`CMDS ["kubectl apply -f a.yaml", "kubectl apply -f b.yaml"]`) or the shell form,
//!   where the rest of the instruction is one command (`CMD kubectl get nodes`). Several
//!   CMD lines (and one CMDS) run in file order, as in sealer.
//!
//! A file has LAUNCH or CMD/CMDS, not both. `ADD` and `ENTRYPOINT` are errors.
//!
//! Outside CMD, CMDS, APPCMDS and RUN (whose text a shell reads), a `#` that follows
//! whitespace outside quotes starts a comment to the end of the line, as sealer's examples
//! write them: `FROM kubernetes:1.18.0 # Base Image`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The instructions a Kubefile may use, in the order the reference lists them.
pub const INSTRUCTIONS: &[&str] = &[
    "FROM",
    "ARG",
    "ENV",
    "LABEL",
    "MAINTAINER",
    "COPY",
    "RUN",
    "APP",
    "CNI",
    "CSI",
    "APPCMDS",
    "APPENV",
    "KUBEVERSION",
    "LAUNCH",
    "CMD",
    "CMDS",
];

/// Sealer's label for a KUBEVERSION constraint.
pub const KUBE_VERSION_LABEL: &str = "app.alpha.sealer.io/supported-kube-version";

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
    /// RUN instructions, in file order.
    pub runs: Vec<Run>,
    pub launch: Option<Launch>,
    /// KUBEVERSION: the constraint as written, and where.
    pub kube_version: Option<(String, Pos)>,
    /// Problems that do not stop the build, e.g. an undeclared `--build-arg`.
    pub warnings: Vec<String>,
}

/// What the bundle is built on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    /// `FROM scratch`
    Scratch,
    /// `FROM <base>`: a path to a base delivery.run or a name to resolve (as written, after
    /// expansion); see `build/plan.rs`, `resolve_base`.
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

/// One APP (or CNI, CSI) instruction; `sources` are the paths with `local://` stripped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    pub name: String,
    pub sources: Vec<(String, Pos)>,
    pub at: Pos,
    /// APPCMDS: the commands that launch it, run in its directory (empty: the default).
    pub cmds: Vec<String>,
    /// APPENV: its own environment.
    pub env: BTreeMap<String, String>,
}

/// One RUN instruction: run at build time in the bundle's tree so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub command: RunCommand,
    pub at: Pos,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunCommand {
    /// `RUN <text>`: run by `sh -c`.
    Shell(String),
    /// `RUN ["prog", "arg"]`: run directly.
    Exec(Vec<String>),
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
        "{file}:{line}:{column}: APP source `{text}` uses the unsupported scheme `{scheme}`\n  hint: sources are local:// paths in the build context and http(s):// URLs, downloaded at build time"
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
    #[error("{file}:{line}:{column}: {instruction} names app `{name}`, which no APP defines\n  hint: {hint}")]
    UnknownApp {
        file: PathBuf,
        line: usize,
        column: usize,
        instruction: &'static str,
        name: String,
        hint: String,
    },
    #[error(
        "{file}:{line}:{column}: {instruction} conflicts with the {first_instruction} on line {first_line}\n  hint: a Kubefile launches apps (LAUNCH) or runs commands (CMD, CMDS), not both; use APPCMDS to give an app its own commands"
    )]
    DuplicateLaunch {
        file: PathBuf,
        line: usize,
        column: usize,
        instruction: &'static str,
        first_instruction: &'static str,
        first_line: usize,
    },
    #[error("{file}:{line}:{column}: {what} is over the limit of {limit}\n  hint: {hint}")]
    TooLarge {
        file: PathBuf,
        line: usize,
        column: usize,
        what: String,
        limit: String,
        hint: &'static str,
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
            | TooLarge { line, column, .. }
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

/// Longest line of an error shown: an error quoting a 10 MiB line must not print 10 MiB.
const MAX_SHOWN_LINE: usize = 400;
/// Errors printed before "... and N more": a broken generated Kubefile can have thousands.
const MAX_SHOWN_ERRORS: usize = 50;

impl fmt::Display for KubefileErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if i == MAX_SHOWN_ERRORS {
                return write!(f, "... and {} more errors", self.0.len() - i);
            }
            let text = e.to_string();
            for (j, line) in text.split('\n').enumerate() {
                if j > 0 {
                    writeln!(f)?;
                }
                let n = line.chars().count();
                if n > MAX_SHOWN_LINE {
                    let head: String = line.chars().take(MAX_SHOWN_LINE).collect();
                    write!(f, "{head}... ({} more characters)", n - MAX_SHOWN_LINE)?;
                } else {
                    f.write_str(line)?;
                }
            }
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
#[cfg(test)]
pub fn parse(
    path: &Path,
    text: &str,
    build_args: &BTreeMap<String, String>,
    arch: &str,
) -> Result<Kubefile, KubefileErrors> {
    let (kubefile, errors) = parse_partial(path, text, build_args, arch);
    if errors.is_empty() {
        Ok(kubefile)
    } else {
        Err(errors)
    }
}

/// [`parse`], returning what did parse along with the errors, so that a caller can check the
/// rest of the build (COPY sources) and report every problem at once. The instructions that
/// failed are missing from the Kubefile.
pub fn parse_partial(
    path: &Path,
    text: &str,
    build_args: &BTreeMap<String, String>,
    arch: &str,
) -> (Kubefile, KubefileErrors) {
    let mut p = Parser::new(path, build_args, arch);
    if text.len() > MAX_KUBEFILE_BYTES {
        let (nothing, _) = p.finish();
        return (nothing, KubefileErrors(vec![too_large(path)]));
    }
    let instructions = split_instructions(text);
    let has_from = instructions.iter().any(|i| i.keyword.eq_ignore_ascii_case("FROM"));
    for (n, ins) in instructions.iter().enumerate() {
        let too_large = |what: String, limit: String, hint| KubefileError::TooLarge {
            file: path.to_path_buf(),
            line: ins.at.line,
            column: ins.at.column,
            what,
            limit,
            hint,
        };
        if n == MAX_INSTRUCTIONS {
            p.errors.push(too_large(
                format!("the number of instructions ({})", instructions.len()),
                MAX_INSTRUCTIONS.to_string(),
                "split the delivery: build a base bundle and `FROM` it",
            ));
            break;
        }
        if ins.args.len() > MAX_INSTRUCTION_CHARS {
            p.errors.push(too_large(
                format!("this {} instruction ({} characters)", ins.keyword, ins.args.len()),
                format!("{} KiB", MAX_INSTRUCTION_CHARS >> 10),
                "put long scripts in a file beside the Kubefile, COPY it and RUN or CMD it",
            ));
            continue;
        }
        p.instruction(ins, has_from);
    }
    p.finish()
}

/// The error for a Kubefile over [`MAX_KUBEFILE_BYTES`].
pub fn too_large(path: &Path) -> KubefileError {
    KubefileError::TooLarge {
        file: path.to_path_buf(),
        line: 1,
        column: 1,
        what: "the Kubefile".into(),
        limit: format!("{} MiB", MAX_KUBEFILE_BYTES >> 20),
        hint: "a Kubefile only names things: put scripts, manifests and lists in files beside it and COPY them",
    }
}

/// The largest Kubefile read: sealer's and our examples are a few KiB.
pub const MAX_KUBEFILE_BYTES: usize = 4 << 20;
/// The longest instruction, continuation lines joined, in characters.
const MAX_INSTRUCTION_CHARS: usize = 256 << 10;
/// The most instructions one Kubefile may hold.
const MAX_INSTRUCTIONS: usize = 10_000;

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

mod instructions;
mod json_array;
mod words;

use instructions::Parser;
use words::split_instructions;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use words::MAX_EXPANDED;

#[cfg(test)]
mod tests;
