//! What can be wrong in a Clusterfile: [`ClusterfileError`], one variant per problem, each with
//! the position it points at ([`Span`]) and a hint, and [`ClusterfileErrors`], every problem of
//! one file, shown up to [`MAX_SHOWN_ERRORS`]. The texts are what a user reads: keep them stable.

use std::fmt;
use std::path::PathBuf;

use super::address::{NameError, MAX_RANGE};

/// The most errors shown; the rest are counted.
pub const MAX_SHOWN_ERRORS: usize = 50;

/// A position in a Clusterfile, 1-based line and column (in characters).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// One problem in a Clusterfile. Display: `file:line:column: message` and a `hint:` line.
#[derive(Debug, thiserror::Error)]
pub enum ClusterfileError {
    #[error("{}: failed to read Clusterfile: {source}\n  hint: check the path given to --config", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{at}: invalid TOML: {message}\n  hint: fix the syntax at this position")]
    Syntax { at: Span, message: String },
    #[error("{at}: the file is not UTF-8 text\n  hint: save it as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)")]
    NotUtf8 { at: Span },
    #[error(
        "{at}: unknown key `{key}` in {table}\n  hint: {}",
        did_you_mean(suggestion, allowed)
    )]
    UnknownKey {
        at: Span,
        key: String,
        table: String,
        suggestion: Option<String>,
        allowed: String,
    },
    #[error("{at}: refusing `{key}`: passwords never go in the file\n  hint: use password_env (or sudo_password_env) to name an environment variable, or password_prompt = true")]
    LiteralPassword { at: Span, key: String },
    #[error("{at}: `{key}` must be {expected}, found {found}\n  hint: write `{key}` as {expected}")]
    WrongType {
        at: Span,
        key: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("{at}: missing `{key}` in {table}\n  hint: add `{key}`; see `delivery.run init-config` for an example")]
    MissingKey { at: Span, key: String, table: String },
    #[error("{at}: invalid `{key}` = {value:?}: {reason}\n  hint: {hint}")]
    InvalidValue {
        at: Span,
        key: String,
        value: String,
        reason: String,
        hint: String,
    },
    #[error("{at}: host entry has no roles\n  hint: give it at least one of \"master\", \"node\", \"registry\"")]
    NoRoles { at: Span },
    #[error(
        "{at}: unknown role {role:?}\n  hint: {}",
        did_you_mean(suggestion, "\"master\", \"node\", \"registry\"")
    )]
    UnknownRole {
        at: Span,
        role: String,
        suggestion: Option<String>,
    },
    #[error(
        "{at}: no host has the \"master\" role\n  hint: add \"master\" to the roles of at least one [[hosts]] entry"
    )]
    NoMaster { at: Span },
    #[error("{at}: host {address} is listed twice (first at {first})\n  hint: remove one of the two, or merge their roles into one entry")]
    DuplicateHost { at: Span, address: String, first: Span },
    #[error("{at}: more than {max} hosts in all\n  hint: a Clusterfile names at most {max} hosts; split the ranges over several clusters")]
    TooManyHosts { at: Span, max: usize },
    #[error("{at}: bad address {value:?}: {reason}\n  hint: write an IPv4 or IPv6 address, a DNS name, or an IPv4 range like \"10.0.0.21-23\"")]
    BadAddress { at: Span, value: String, reason: NameError },
    #[error("{at}: bad address range {value:?}: {reason}\n  hint: write \"first-last\" with first <= last and at most {MAX_RANGE} addresses, e.g. \"10.0.0.21-10.0.0.23\" or \"10.0.0.21-23\"")]
    BadRange { at: Span, value: String, reason: String },
    #[error("{at}: host_key_policy = \"strict\" without known_hosts\n  hint: set known_hosts to a file with the hosts' keys, or use host_key_policy = \"accept-new\"")]
    StrictWithoutKnownHosts { at: Span },
    #[error("{at}: registry host {host} is not one of the [[hosts]]\n  hint: use the address of a host listed below, or leave `host` out (default: the host with the \"registry\" role, else the first master)")]
    RegistryHostNotInCluster { at: Span, host: String },
    #[error("{at}: bad port {value}\n  hint: use a port number from 1 to 65535")]
    BadPort { at: Span, value: String },
    #[error("{at}: `hostname` on an entry with {addresses} addresses\n  hint: give each host that needs a hostname its own [[hosts]] entry with a single address")]
    HostnameOnMultiAddress { at: Span, addresses: usize },
    #[error("{at}: bad [env] key {key:?}\n  hint: use a non-empty name of letters, digits and `_`, not starting with a digit")]
    BadEnvKey { at: Span, key: String },
    #[error("{at}: more than one authentication method at this level\n  hint: keep exactly one of private_key, password_env, password_prompt")]
    ConflictingAuth { at: Span },
    #[error("{at}: `~` in {key} but HOME is not set\n  hint: write an absolute path, or set HOME")]
    HomeUnset { at: Span, key: String },
}

impl ClusterfileError {
    /// Where the error points (None for a file that could not be read).
    pub fn span(&self) -> Option<&Span> {
        use ClusterfileError::*;
        match self {
            Read { .. } => None,
            Syntax { at, .. }
            | NotUtf8 { at }
            | UnknownKey { at, .. }
            | LiteralPassword { at, .. }
            | WrongType { at, .. }
            | MissingKey { at, .. }
            | InvalidValue { at, .. }
            | NoRoles { at }
            | UnknownRole { at, .. }
            | NoMaster { at }
            | DuplicateHost { at, .. }
            | TooManyHosts { at, .. }
            | BadAddress { at, .. }
            | BadRange { at, .. }
            | StrictWithoutKnownHosts { at }
            | RegistryHostNotInCluster { at, .. }
            | BadPort { at, .. }
            | HostnameOnMultiAddress { at, .. }
            | BadEnvKey { at, .. }
            | ConflictingAuth { at }
            | HomeUnset { at, .. } => Some(at),
        }
    }
}

fn did_you_mean(suggestion: &Option<String>, allowed: &str) -> String {
    match suggestion {
        Some(s) => format!("did you mean `{s}`? (allowed: {allowed})"),
        None => format!("allowed: {allowed}"),
    }
}

/// Every problem found in one Clusterfile, sorted by position.
#[derive(Debug, thiserror::Error)]
pub struct ClusterfileErrors(pub Vec<ClusterfileError>);

impl fmt::Display for ClusterfileErrors {
    /// The first [`MAX_SHOWN_ERRORS`], then how many more.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().take(MAX_SHOWN_ERRORS).enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        if self.0.len() > MAX_SHOWN_ERRORS {
            write!(f, "\n... and {} more errors", self.0.len() - MAX_SHOWN_ERRORS)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clusterfile::parse_with_home;
    use crate::clusterfile::tests::{file, HOSTS};

    #[test]
    fn twenty_thousand_duplicate_keys_print_fifty_errors_and_a_count() {
        let mut text = String::from("name = \"c\"\n[env]\n");
        for _ in 0..20_000 {
            text.push_str("A = \"1\"\n");
        }
        text.push_str(HOSTS);
        let all = parse_with_home(file(), &text, None).expect_err("duplicates");
        assert!(all.0.len() > MAX_SHOWN_ERRORS, "{}", all.0.len());
        let shown = all.to_string();
        assert!(
            shown.lines().count() < 4 * MAX_SHOWN_ERRORS,
            "{} lines",
            shown.lines().count()
        );
        assert!(
            shown.ends_with(&format!("... and {} more errors", all.0.len() - MAX_SHOWN_ERRORS)),
            "{shown}"
        );
    }
}
