//! The Clusterfile (`cluster.toml`): which hosts `install` fans out to, with which roles, and how
//! to reach them over SSH. Parsing only; nothing here touches the network.
//!
//! The file is walked as a spanned TOML tree ([`toml::de::DeTable`]) rather than derived with
//! serde, so that every problem in it is reported at once, each at the `file:line:column` of the
//! offending key or value, with a hint. `templates/cluster.toml` is the commented reference.
//!
//! The tables that bundle kinds own (`[kubernetes]`, [`Tables`]) are walked here too, so that
//! the dependency goes one way: `kinds` reads a parsed Clusterfile, the Clusterfile knows
//! nothing of `kinds`.
//!
//! Decisions worth knowing:
//! - No password is ever read from the file: any key named `password` or `*_password` is refused,
//!   in every table. Passwords come from an environment variable or the terminal.
//! - Authentication defaults to the key `~/.ssh/id_ed25519` (`/root/...` when HOME is unset);
//!   setting one of `private_key`, `password_env`, `password_prompt` in a host's `ssh` replaces
//!   the default method. `password_prompt = false` sets nothing.
//! - `host_key_policy` defaults to `accept-new`; `strict` needs `known_hosts`.
//! - `~` in `private_key` and `known_hosts` is expanded from `HOME` while parsing.
//! - IPv4 ranges: `a.b.c.d-e` (last octet) or `a.b.c.d-w.x.y.z`, at most 65536 addresses.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kubernetes::config::{Kubernetes, NameRules, KEYS};
use toml::de::{DeArray, DeTable, DeValue};
use toml::Spanned;

/// The commented example printed by `init-config`.
pub const TEMPLATE: &str = include_str!("../../templates/cluster.toml");

/// Most addresses one range may expand to (a /16).
pub const MAX_RANGE: u32 = 65_536;
/// The most hosts a Clusterfile may name in all (ranges included).
pub const MAX_HOSTS: usize = 65_536;
/// The most errors shown; the rest are counted.
pub const MAX_SHOWN_ERRORS: usize = 50;

/// A parsed Clusterfile with ranges expanded and per-host SSH settings resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Clusterfile {
    pub name: String,
    /// The `[ssh]` defaults (already merged into every host's `ssh`).
    pub ssh: SshSettings,
    pub registry: RegistryEndpoint,
    pub env: BTreeMap<String, String>,
    /// The tables bundle kinds own ([`Tables`]), defaults filled in.
    pub kinds: Tables,
    /// One per address, ranges expanded, in file order.
    pub hosts: Vec<Host>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    pub address: Address,
    pub roles: BTreeSet<Role>,
    /// `[ssh]` defaults with this entry's `ssh = { ... }` merged over them.
    pub ssh: SshSettings,
    pub hostname: Option<String>,
    /// Where the address (or the range it came from) is written.
    pub origin: Span,
}

impl Host {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// A host's address: an IP (v4 or v6) or a DNS name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Address {
    Ip(IpAddr),
    Name(String),
}

/// An address as the host part of `HOST:PORT` (IPv6 in brackets).
pub fn endpoint_host(address: &str) -> String {
    if address.contains(':') {
        format!("[{address}]")
    } else {
        address.to_string()
    }
}

impl Address {
    /// Parses one IP address or DNS name (no ranges). Names compare case-insensitively, so they
    /// are stored in lowercase.
    pub fn parse(s: &str) -> Result<Address, String> {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Address::Ip(ip));
        }
        if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            return inner
                .parse::<IpAddr>()
                .map(Address::Ip)
                .map_err(|_| format!("`{s}` is not an IPv6 address"));
        }
        check_dns_name(s)?;
        Ok(Address::Name(s.to_ascii_lowercase()))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Ip(ip) => ip.fmt(f),
            Address::Name(n) => f.write_str(n),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Master,
    Node,
    Registry,
}

impl Role {
    const NAMES: [&'static str; 3] = ["master", "node", "registry"];

    fn parse(s: &str) -> Option<Role> {
        match s {
            "master" => Some(Role::Master),
            "node" => Some(Role::Node),
            "registry" => Some(Role::Registry),
            _ => None,
        }
    }
}

/// How to log in. Never a literal password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// A private key file, `~` already expanded.
    Key(PathBuf),
    /// The name of an environment variable that holds the password.
    PasswordEnv(String),
    /// Ask on the terminal.
    PasswordPrompt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKeyPolicy {
    /// Only keys already in `known_hosts`.
    Strict,
    /// Record unknown keys, refuse changed ones.
    AcceptNew,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshSettings {
    pub user: String,
    pub port: u16,
    pub auth: Auth,
    pub sudo: bool,
    pub sudo_password_env: Option<String>,
    pub host_key_policy: HostKeyPolicy,
    pub known_hosts: Option<PathBuf>,
    pub connect_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RegistryEndpoint {
    pub host: Address,
    pub port: u16,
}

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
    BadAddress { at: Span, value: String, reason: String },
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

impl Clusterfile {
    pub fn masters(&self) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(|h| h.has_role(Role::Master))
    }

    pub fn first_master(&self) -> &Host {
        self.masters()
            .next()
            .expect("parse rejects a Clusterfile without a master")
    }

    /// Hosts with the `node` role.
    pub fn nodes(&self) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(|h| h.has_role(Role::Node))
    }

    /// The host with this address (an IP in any notation, or a DNS name in any case).
    #[allow(dead_code)] // for `add-node --host ADDRESS` (install issue); tested below
    pub fn by_address(&self, address: &str) -> Option<&Host> {
        let wanted = Address::parse(address).ok()?;
        self.hosts.iter().find(|h| h.address == wanted)
    }

    /// The host that runs the registry mirror.
    pub fn registry_host(&self) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.address == self.registry.host)
            .expect("parse checks that the registry host is one of the hosts")
    }
}

/// Reads and parses a Clusterfile; see [`parse`].
pub fn load(path: &Path) -> Result<Clusterfile, ClusterfileErrors> {
    let bytes = std::fs::read(path).map_err(|source| {
        ClusterfileErrors(vec![ClusterfileError::Read {
            path: path.to_owned(),
            source,
        }])
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = valid.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(&valid[line_start..]).chars().count() + 1;
        ClusterfileErrors(vec![ClusterfileError::NotUtf8 {
            at: Span {
                file: path.to_owned(),
                line,
                column,
            },
        }])
    })?;
    parse(path, &text)
}

/// Parses a Clusterfile's text; `path` is only used in error positions. Returns every error.
pub fn parse(path: &Path, text: &str) -> Result<Clusterfile, ClusterfileErrors> {
    parse_with_home(path, text, std::env::var_os("HOME"))
}

pub(crate) fn parse_with_home(
    path: &Path,
    text: &str,
    home: Option<OsString>,
) -> Result<Clusterfile, ClusterfileErrors> {
    let line_starts = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let mut cx = Cx {
        file: path,
        text,
        line_starts,
        home: home.map(PathBuf::from),
        errors: Vec::new(),
    };
    let (root, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        // A recovered tree can be missing whole tables: checking it would add noise.
        for e in syntax {
            let at = cx.span(e.span().unwrap_or(0..0));
            cx.errors.push(ClusterfileError::Syntax {
                at,
                message: e.message().trim().to_owned(),
            });
        }
        return Err(cx.finish());
    }
    let parsed = cx.clusterfile(&root);
    match parsed {
        Some(c) if cx.errors.is_empty() => Ok(c),
        _ => Err(cx.finish()),
    }
}

type At<T> = (T, Range<usize>);

/// `[ssh]` or one host's `ssh`: only what that level sets.
#[derive(Default, Clone)]
struct SshLayer {
    user: Option<String>,
    port: Option<u16>,
    auth: Option<Auth>,
    sudo: Option<bool>,
    sudo_password_env: Option<String>,
    host_key_policy: Option<At<HostKeyPolicy>>,
    known_hosts: Option<PathBuf>,
    connect_timeout: Option<Duration>,
}

const SSH_KEYS: &[&str] = &[
    "user",
    "port",
    "private_key",
    "password_env",
    "password_prompt",
    "sudo",
    "sudo_password_env",
    "host_key_policy",
    "known_hosts",
    "connect_timeout_secs",
];
/// The top-level keys: the engine's, with the kinds' tables before `hosts`.
fn top_keys() -> Vec<&'static str> {
    let mut keys = vec!["name", "ssh", "registry", "env"];
    keys.extend(Tables::NAMES);
    keys.push("hosts");
    keys
}
const REGISTRY_KEYS: &[&str] = &["host", "port"];
const HOST_KEYS: &[&str] = &["addresses", "roles", "ssh", "hostname"];

pub(crate) struct Cx<'a> {
    file: &'a Path,
    text: &'a str,
    /// Byte offset of every line's start: positions are found by binary search, not by
    /// scanning the text again for each (20,000 duplicate keys took 3 s).
    line_starts: Vec<usize>,
    home: Option<PathBuf>,
    errors: Vec<ClusterfileError>,
}

impl Cx<'_> {
    pub(crate) fn span(&self, r: Range<usize>) -> Span {
        let offset = floor_char_boundary(self.text, r.start.min(self.text.len()));
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let line_start = self.line_starts[line - 1];
        // A line's own length bounds this count; a 10 MiB line is counted once per error at most.
        let column = self.text[line_start..offset].chars().count() + 1;
        Span {
            file: self.file.to_owned(),
            line,
            column,
        }
    }

    fn finish(mut self) -> ClusterfileErrors {
        // The same default can fail for several hosts: report each position once.
        let mut seen = BTreeSet::new();
        self.errors.retain(|e| seen.insert(e.to_string()));
        self.errors.sort_by(|a, b| a.span().cmp(&b.span()));
        ClusterfileErrors(self.errors)
    }

    pub(crate) fn push(&mut self, e: ClusterfileError) {
        self.errors.push(e);
    }

    /// Checks a table's keys; returns the known entries. Unknown keys and password keys are errors.
    pub(crate) fn known<'t, 'i>(
        &mut self,
        table: &'t DeTable<'i>,
        name: &str,
        allowed: &[&str],
    ) -> Vec<(&'t str, Range<usize>, &'t Spanned<DeValue<'i>>)> {
        let mut out = Vec::new();
        for (k, v) in table.iter() {
            let key: &str = k.get_ref();
            if allowed.contains(&key) {
                out.push((key, k.span(), v));
            } else if is_password_key(key) {
                self.push(ClusterfileError::LiteralPassword {
                    at: self.span(k.span()),
                    key: key.to_owned(),
                });
            } else {
                self.push(ClusterfileError::UnknownKey {
                    at: self.span(k.span()),
                    key: key.to_owned(),
                    table: name.to_owned(),
                    suggestion: closest(key, allowed.iter().copied()),
                    allowed: allowed.join(", "),
                });
            }
        }
        out
    }

    pub(crate) fn wrong_type(&mut self, key: &str, v: &Spanned<DeValue<'_>>, expected: &'static str) {
        self.push(ClusterfileError::WrongType {
            at: self.span(v.span()),
            key: key.to_owned(),
            expected,
            found: v.get_ref().type_str(),
        });
    }

    fn string(&mut self, key: &str, v: &Spanned<DeValue<'_>>) -> Option<String> {
        match v.get_ref().as_str() {
            Some(s) => Some(s.to_owned()),
            None => {
                self.wrong_type(key, v, "a string");
                None
            }
        }
    }

    pub(crate) fn nonempty(&mut self, key: &str, v: &Spanned<DeValue<'_>>) -> Option<String> {
        let s = self.string(key, v)?;
        if s.trim().is_empty() {
            self.invalid(key, v, &s, "it is empty", "give a value or leave the key out");
            return None;
        }
        Some(s)
    }

    fn boolean(&mut self, key: &str, v: &Spanned<DeValue<'_>>) -> Option<bool> {
        let b = v.get_ref().as_bool();
        if b.is_none() {
            self.wrong_type(key, v, "true or false");
        }
        b
    }

    fn integer(&mut self, key: &str, v: &Spanned<DeValue<'_>>) -> Option<i128> {
        match v.get_ref().as_integer() {
            Some(i) => i128::from_str_radix(&i.as_str().replace('_', ""), i.radix()).ok(),
            None => {
                self.wrong_type(key, v, "an integer");
                None
            }
        }
    }

    fn port(&mut self, key: &str, v: &Spanned<DeValue<'_>>) -> Option<u16> {
        let n = self.integer(key, v)?;
        match u16::try_from(n) {
            Ok(p) if p != 0 => Some(p),
            _ => {
                self.push(ClusterfileError::BadPort {
                    at: self.span(v.span()),
                    value: n.to_string(),
                });
                None
            }
        }
    }

    pub(crate) fn invalid(&mut self, key: &str, v: &Spanned<DeValue<'_>>, value: &str, reason: &str, hint: &str) {
        // A password typed where a variable name belongs must not reach a terminal or a log.
        let lower = key.to_ascii_lowercase();
        let secret = ["password", "secret", "token", "key"].iter().any(|w| lower.contains(w));
        self.push(ClusterfileError::InvalidValue {
            at: self.span(v.span()),
            key: key.to_owned(),
            value: if secret {
                "(not shown)".to_owned()
            } else {
                value.to_owned()
            },
            reason: reason.to_owned(),
            hint: hint.to_owned(),
        });
    }

    fn path(&mut self, key: &str, v: &Spanned<DeValue<'_>>) -> Option<PathBuf> {
        let s = self.nonempty(key, v)?;
        if s == "~" || s.starts_with("~/") {
            let Some(home) = &self.home else {
                self.push(ClusterfileError::HomeUnset {
                    at: self.span(v.span()),
                    key: key.to_owned(),
                });
                return None;
            };
            let rest = s[1..].trim_start_matches('/');
            return Some(if rest.is_empty() { home.clone() } else { home.join(rest) });
        }
        if s.starts_with('~') {
            self.invalid(
                key,
                v,
                &s,
                "`~user` paths are not supported",
                "write `~/...` or an absolute path",
            );
            return None;
        }
        Some(PathBuf::from(s))
    }

    fn env_var_name(&mut self, key: &str, v: &Spanned<DeValue<'_>>) -> Option<String> {
        let s = self.nonempty(key, v)?;
        if !is_identifier(&s) {
            self.invalid(
                key,
                v,
                &s,
                "not an environment variable name",
                "name the variable that holds the password, e.g. DELIVERY_SSH_PASSWORD",
            );
            return None;
        }
        Some(s)
    }

    pub(crate) fn table<'t, 'i>(&mut self, key: &str, v: &'t Spanned<DeValue<'i>>) -> Option<&'t DeTable<'i>> {
        let t = v.get_ref().as_table();
        if t.is_none() {
            self.wrong_type(key, v, "a table");
        }
        t
    }

    fn ssh_layer(&mut self, table: &DeTable<'_>, name: &str) -> SshLayer {
        let mut layer = SshLayer::default();
        let mut auth_seen = 0;
        for (key, _, v) in self.known(table, name, SSH_KEYS) {
            match key {
                "user" => layer.user = self.nonempty(key, v),
                "port" => layer.port = self.port(key, v),
                "private_key" | "password_env" | "password_prompt" => {
                    auth_seen += 1;
                    if auth_seen > 1 {
                        self.push(ClusterfileError::ConflictingAuth {
                            at: self.span(v.span()),
                        });
                    }
                    match key {
                        "private_key" => layer.auth = self.path(key, v).map(Auth::Key),
                        "password_env" => layer.auth = self.env_var_name(key, v).map(Auth::PasswordEnv),
                        _ => {
                            // `password_prompt = false` says nothing: it neither sets nor conflicts.
                            match self.boolean(key, v) {
                                Some(true) => layer.auth = Some(Auth::PasswordPrompt),
                                _ => auth_seen -= 1,
                            }
                        }
                    }
                }
                "sudo" => layer.sudo = self.boolean(key, v),
                "sudo_password_env" => layer.sudo_password_env = self.env_var_name(key, v),
                "host_key_policy" => {
                    let Some(s) = self.string(key, v) else { continue };
                    match s.as_str() {
                        "strict" => layer.host_key_policy = Some((HostKeyPolicy::Strict, v.span())),
                        "accept-new" => layer.host_key_policy = Some((HostKeyPolicy::AcceptNew, v.span())),
                        _ => {
                            let hint = match closest(&s, ["strict", "accept-new"]) {
                                Some(c) => format!("did you mean \"{c}\"?"),
                                None => "use \"strict\" or \"accept-new\"".to_owned(),
                            };
                            self.invalid(key, v, &s, "unknown policy", &hint);
                        }
                    }
                }
                "known_hosts" => layer.known_hosts = self.path(key, v),
                "connect_timeout_secs" => {
                    if let Some(n) = self.integer(key, v) {
                        match u64::try_from(n) {
                            Ok(s) if (1..=3600).contains(&s) => layer.connect_timeout = Some(Duration::from_secs(s)),
                            _ => self.invalid(key, v, &n.to_string(), "out of range", "use 1 to 3600 seconds"),
                        }
                    }
                }
                _ => unreachable!("known() only returns keys from SSH_KEYS"),
            }
        }
        layer
    }

    /// Merges `over` onto `base` and checks the result.
    fn resolve(&mut self, base: &SshLayer, over: &SshLayer) -> SshSettings {
        let policy = over.host_key_policy.clone().or_else(|| base.host_key_policy.clone());
        let known_hosts = over.known_hosts.clone().or_else(|| base.known_hosts.clone());
        if let (Some((HostKeyPolicy::Strict, r)), None) = (&policy, &known_hosts) {
            self.push(ClusterfileError::StrictWithoutKnownHosts {
                at: self.span(r.clone()),
            });
        }
        let default_key = || {
            Auth::Key(
                self.home
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("/root"))
                    .join(".ssh/id_ed25519"),
            )
        };
        SshSettings {
            user: over
                .user
                .clone()
                .or_else(|| base.user.clone())
                .unwrap_or_else(|| "root".to_owned()),
            port: over.port.or(base.port).unwrap_or(22),
            auth: over
                .auth
                .clone()
                .or_else(|| base.auth.clone())
                .unwrap_or_else(default_key),
            sudo: over.sudo.or(base.sudo).unwrap_or(false),
            sudo_password_env: over
                .sudo_password_env
                .clone()
                .or_else(|| base.sudo_password_env.clone()),
            host_key_policy: policy.map_or(HostKeyPolicy::AcceptNew, |(p, _)| p),
            known_hosts,
            connect_timeout: over
                .connect_timeout
                .or(base.connect_timeout)
                .unwrap_or(Duration::from_secs(10)),
        }
    }

    fn clusterfile(&mut self, root: &Spanned<DeTable<'_>>) -> Option<Clusterfile> {
        let top = self.known(root.get_ref(), "the top level", &top_keys());
        let get = |name: &str| {
            top.iter()
                .find(|(k, _, _)| *k == name)
                .map(|(_, ks, v)| (ks.clone(), *v))
        };

        let name = match get("name") {
            // The name becomes /var/lib/delivery/<name> here and on every host, and a word in
            // their shell commands: a DNS label, nothing else.
            Some((_, v)) => self.nonempty("name", v).and_then(|n| {
                if is_dns_label(&n) {
                    Some(n)
                } else {
                    let shown: String = n.chars().take(64).map(|c| if c.is_control() { '?' } else { c }).collect();
                    self.invalid(
                        "name",
                        v,
                        &shown,
                        "not a DNS label",
                        "1 to 63 lowercase letters, digits and `-`, starting and ending with a letter or digit, e.g. \"prod-eu\"",
                    );
                    None
                }
            }),
            None => {
                self.push(ClusterfileError::MissingKey {
                    at: self.span(0..0),
                    key: "name".into(),
                    table: "the top level".into(),
                });
                None
            }
        };

        let defaults = match get("ssh").and_then(|(_, v)| self.table("ssh", v)) {
            Some(t) => self.ssh_layer(t, "[ssh]"),
            None => SshLayer::default(),
        };
        let ssh = self.resolve(&defaults, &SshLayer::default());

        let mut env = BTreeMap::new();
        if let Some(t) = get("env").and_then(|(_, v)| self.table("env", v)) {
            for (k, v) in t.iter() {
                let key: &str = k.get_ref();
                if is_password_key(key) {
                    self.push(ClusterfileError::LiteralPassword {
                        at: self.span(k.span()),
                        key: key.to_owned(),
                    });
                } else if !is_identifier(key) {
                    self.push(ClusterfileError::BadEnvKey {
                        at: self.span(k.span()),
                        key: key.to_owned(),
                    });
                } else if let Some(value) = self.string(key, v) {
                    env.insert(key.to_owned(), value);
                }
            }
        }

        let hosts = self.hosts(get("hosts"), &defaults);
        let mut kinds = Tables::default();
        for name in Tables::NAMES {
            if let Some(t) = get(name).and_then(|(_, v)| self.table(name, v)) {
                kinds.parse(self, name, t, hosts.as_deref().unwrap_or(&[]));
            }
        }

        let mut registry_host: Option<At<Address>> = None;
        let mut registry_port = Some(5000);
        if let Some(t) = get("registry").and_then(|(_, v)| self.table("registry", v)) {
            for (key, _, v) in self.known(t, "[registry]", REGISTRY_KEYS) {
                match key {
                    "host" => {
                        if let Some(s) = self.nonempty(key, v) {
                            match Address::parse(&s) {
                                Ok(a) => registry_host = Some((a, v.span())),
                                Err(reason) => self.push(ClusterfileError::BadAddress {
                                    at: self.span(v.span()),
                                    value: s,
                                    reason,
                                }),
                            }
                        }
                    }
                    _ => registry_port = self.port(key, v),
                }
            }
        }

        let hosts = hosts?;
        let first_master = hosts.iter().find(|h| h.has_role(Role::Master));
        let role_errors = self.errors.iter().any(|e| {
            matches!(
                e,
                ClusterfileError::NoRoles { .. } | ClusterfileError::UnknownRole { .. }
            ) || matches!(e, ClusterfileError::MissingKey { key, .. } if key == "roles")
        });
        // A misspelt or missing role is the likelier cause: don't pile "no master" on top of it.
        if first_master.is_none() && !role_errors {
            let at = get("hosts").map_or(0..0, |(ks, _)| ks);
            self.push(ClusterfileError::NoMaster { at: self.span(at) });
        }
        let registry_address = match registry_host {
            Some((a, r)) => {
                if !hosts.iter().any(|h| h.address == a) {
                    self.push(ClusterfileError::RegistryHostNotInCluster {
                        at: self.span(r),
                        host: a.to_string(),
                    });
                }
                a
            }
            None => hosts
                .iter()
                .find(|h| h.has_role(Role::Registry))
                .or(first_master)?
                .address
                .clone(),
        };
        Some(Clusterfile {
            name: name?,
            ssh,
            registry: RegistryEndpoint {
                host: registry_address,
                port: registry_port?,
            },
            env,
            kinds,
            hosts,
        })
    }

    fn hosts(
        &mut self,
        entry: Option<(Range<usize>, &Spanned<DeValue<'_>>)>,
        defaults: &SshLayer,
    ) -> Option<Vec<Host>> {
        let Some((_, value)) = entry else {
            self.push(ClusterfileError::MissingKey {
                at: self.span(0..0),
                key: "hosts".into(),
                table: "the top level ([[hosts]] entries)".into(),
            });
            return None;
        };
        let Some(entries) = value.get_ref().as_array() else {
            self.wrong_type("hosts", value, "an array of tables ([[hosts]])");
            return None;
        };
        let mut hosts: Vec<Host> = Vec::new();
        let mut first_seen: BTreeMap<Address, Span> = BTreeMap::new();
        let mut total_addresses = 0usize;
        for entry in entries.iter() {
            let Some(table) = self.table("hosts", entry) else {
                continue;
            };
            let fields = self.known(table, "[[hosts]]", HOST_KEYS);
            let get = |name: &str| fields.iter().find(|(k, _, _)| *k == name).map(|(_, _, v)| *v);
            let entry_at = entry.span();

            let mut addresses: Vec<(Address, Range<usize>)> = Vec::new();
            match self.entry_list("addresses", get("addresses"), &entry_at) {
                None => {}
                Some((v, list)) if list.is_empty() => {
                    self.invalid("addresses", v, "[]", "it is empty", "list at least one address")
                }
                Some((_, list)) => {
                    for item in list.iter() {
                        let Some(s) = self.string("addresses", item) else {
                            continue;
                        };
                        match expand(&s) {
                            Ok(list) if total_addresses + list.len() > MAX_HOSTS => {
                                self.push(ClusterfileError::TooManyHosts {
                                    at: self.span(item.span()),
                                    max: MAX_HOSTS,
                                });
                                return None;
                            }
                            Ok(list) => {
                                total_addresses += list.len();
                                addresses.extend(list.into_iter().map(|a| (a, item.span())))
                            }
                            Err(AddressError::Address(reason)) => self.push(ClusterfileError::BadAddress {
                                at: self.span(item.span()),
                                value: s,
                                reason,
                            }),
                            Err(AddressError::Range(reason)) => self.push(ClusterfileError::BadRange {
                                at: self.span(item.span()),
                                value: s,
                                reason,
                            }),
                        }
                    }
                }
            }

            let mut roles = BTreeSet::new();
            match self.entry_list("roles", get("roles"), &entry_at) {
                None => {}
                Some((v, list)) if list.is_empty() => self.push(ClusterfileError::NoRoles {
                    at: self.span(v.span()),
                }),
                Some((_, list)) => {
                    for item in list.iter() {
                        let Some(s) = self.string("roles", item) else { continue };
                        match Role::parse(&s) {
                            Some(r) => {
                                roles.insert(r);
                            }
                            None => self.push(ClusterfileError::UnknownRole {
                                at: self.span(item.span()),
                                suggestion: closest(&s, Role::NAMES),
                                role: s,
                            }),
                        }
                    }
                }
            }

            let over = match get("ssh").and_then(|v| self.table("ssh", v)) {
                Some(t) => self.ssh_layer(t, "a host's ssh"),
                None => SshLayer::default(),
            };
            let ssh = self.resolve(defaults, &over);

            let mut hostname = None;
            if let Some(v) = get("hostname") {
                if let Some(s) = self.nonempty("hostname", v) {
                    if addresses.len() > 1 {
                        self.push(ClusterfileError::HostnameOnMultiAddress {
                            at: self.span(v.span()),
                            addresses: addresses.len(),
                        });
                    } else if let Err(reason) = check_dns_name(&s) {
                        self.invalid("hostname", v, &s, &reason, "use letters, digits, `-` and `.`");
                    } else {
                        hostname = Some(s);
                    }
                }
            }

            for (address, r) in addresses {
                let origin = self.span(r);
                if let Some(first) = first_seen.get(&address) {
                    self.push(ClusterfileError::DuplicateHost {
                        at: origin,
                        address: address.to_string(),
                        first: first.clone(),
                    });
                    continue;
                }
                first_seen.insert(address.clone(), origin.clone());
                hosts.push(Host {
                    address,
                    roles: roles.clone(),
                    ssh: ssh.clone(),
                    hostname: hostname.clone(),
                    origin,
                });
            }
        }
        Some(hosts)
    }

    /// A `[[hosts]]` entry's `key`, an array of strings: reported if missing (at the entry) or
    /// not an array, else the value and its items.
    fn entry_list<'t, 'i>(
        &mut self,
        key: &str,
        value: Option<&'t Spanned<DeValue<'i>>>,
        entry_at: &Range<usize>,
    ) -> Option<(&'t Spanned<DeValue<'i>>, &'t DeArray<'i>)> {
        let Some(v) = value else {
            self.push(ClusterfileError::MissingKey {
                at: self.span(entry_at.clone()),
                key: key.into(),
                table: "[[hosts]]".into(),
            });
            return None;
        };
        let list = v.get_ref().as_array();
        if list.is_none() {
            self.wrong_type(key, v, "an array of strings");
        }
        list.map(|l| (v, l))
    }
}

enum AddressError {
    Address(String),
    Range(String),
}

/// Expands one `addresses` item: a single address, or an IPv4 range.
fn expand(s: &str) -> Result<Vec<Address>, AddressError> {
    let s = s.trim();
    // A `-` after something that parses as IPv4 makes a range; DNS names may contain `-` too.
    if let Some((first, last)) = s.split_once('-') {
        if let Ok(start) = first.trim().parse::<Ipv4Addr>() {
            let last = last.trim();
            let end = if let Ok(end) = last.parse::<Ipv4Addr>() {
                end
            } else if let Ok(octet) = last.parse::<u8>() {
                let o = start.octets();
                Ipv4Addr::new(o[0], o[1], o[2], octet)
            } else {
                return Err(AddressError::Range(format!(
                    "`{last}` is neither an IPv4 address nor a last octet (0-255)"
                )));
            };
            let (a, b) = (u32::from(start), u32::from(end));
            if a > b {
                return Err(AddressError::Range(format!("reversed: {start} comes after {end}")));
            }
            if b - a >= MAX_RANGE {
                return Err(AddressError::Range(format!(
                    "{} addresses, more than {MAX_RANGE}",
                    u64::from(b - a) + 1
                )));
            }
            return Ok((a..=b).map(|n| Address::Ip(IpAddr::V4(Ipv4Addr::from(n)))).collect());
        }
        if first.parse::<IpAddr>().is_ok() {
            return Err(AddressError::Range("only IPv4 ranges are supported".into()));
        }
    }
    Address::parse(s).map(|a| vec![a]).map_err(AddressError::Address)
}

pub(crate) fn check_dns_name(s: &str) -> Result<(), String> {
    let name = s.strip_suffix('.').unwrap_or(s);
    if name.is_empty() || name.len() > 253 {
        return Err("not a valid IP address or DNS name".into());
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !ok {
            return Err(format!("`{s}` is not a valid IP address or DNS name"));
        }
    }
    // "10.0.0.300" would otherwise pass as a name.
    if name
        .rsplit('.')
        .next()
        .is_some_and(|l| l.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(format!("`{s}` is not a valid IP address"));
    }
    Ok(())
}

/// RFC 1123 label (a DNS label).
fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_password_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k == "password" || k.ends_with("_password") || k == "passwd" || k == "pass"
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The allowed name closest to `s`, if it is a plausible typo.
fn closest<'a>(s: &str, allowed: impl IntoIterator<Item = &'a str>) -> Option<String> {
    allowed
        .into_iter()
        .map(|a| (levenshtein(&s.to_ascii_lowercase(), a), a))
        .filter(|(d, a)| *d <= 2.max(a.len() / 4) && *d < a.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a.to_owned())
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The `[kubernetes]` table's name.
const KUBERNETES: &str = "kubernetes";

/// The Clusterfile tables that kinds own, parsed with their defaults (whatever the bundle's
/// kind: `check-config` reads the file alone).
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Tables {
    /// `[kubernetes]`.
    pub kubernetes: Kubernetes,
}

impl Tables {
    /// The top-level keys of these tables.
    pub const NAMES: [&'static str; 1] = [KUBERNETES];

    /// Parses the table `name` (one of [`Tables::NAMES`]), reporting problems to `cx` at their
    /// positions; `hosts` are the Clusterfile's hosts.
    fn parse(&mut self, cx: &mut Cx<'_>, name: &str, table: &DeTable<'_>, hosts: &[Host]) {
        match name {
            KUBERNETES => self.kubernetes = parse_kubernetes(cx, table, hosts),
            _ => unreachable!("parse is called with the names of Tables::NAMES, got `{name}`"),
        }
    }
}

/// `[kubernetes]`: every key checked by the `kubernetes` crate, every problem at its position.
fn parse_kubernetes(cx: &mut Cx<'_>, t: &DeTable<'_>, hosts: &[Host]) -> Kubernetes {
    let rules = NameRules {
        dns_name: check_dns_name,
        address: |s| Address::parse(s).map(drop),
    };
    let mut k = Kubernetes::default();
    let mut at: BTreeMap<&str, &Spanned<DeValue<'_>>> = BTreeMap::new();
    for (key, _, v) in cx.known(t, "[kubernetes]", KEYS) {
        at.insert(key, v);
        if key != "cert_sans" {
            let Some(s) = cx.nonempty(key, v) else { continue };
            if let Err(why) = k.set(key, &s, &rules) {
                cx.invalid(key, v, &s, &why.reason, why.hint);
            }
            continue;
        }
        let Some(items) = v.get_ref().as_array() else {
            cx.wrong_type(key, v, "an array of strings");
            continue;
        };
        for item in items.iter() {
            let Some(s) = cx.nonempty(key, item) else { continue };
            if let Err(why) = k.add_cert_san(&s, &rules) {
                cx.invalid(key, item, &s, &why.reason, why.hint);
            }
        }
    }
    if let Some(why) = k.overlap() {
        if let Some(v) = at.get("service_cidr").or(at.get("pod_cidr")).copied() {
            cx.invalid("service_cidr", v, &k.service_cidr.to_string(), &why.reason, why.hint);
        }
    }
    for h in hosts {
        let Address::Ip(ip) = h.address else { continue };
        for (key, c, why) in k.shadowing(ip) {
            let at = at.get(key).map_or_else(|| h.origin.clone(), |v| cx.span(v.span()));
            cx.push(ClusterfileError::InvalidValue {
                at,
                key: key.to_string(),
                value: c.to_string(),
                reason: why.reason,
                hint: why.hint.to_string(),
            });
        }
    }
    k
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use kubernetes::config::Cidr;
    use ClusterfileError as E;

    fn file() -> &'static Path {
        Path::new("cluster.toml")
    }

    pub(crate) fn ok(text: &str) -> Clusterfile {
        match parse_with_home(file(), text, Some("/home/op".into())) {
            Ok(c) => c,
            Err(e) => panic!("expected a valid Clusterfile, got:\n{e}"),
        }
    }

    fn errs(text: &str) -> Vec<ClusterfileError> {
        match parse_with_home(file(), text, Some("/home/op".into())) {
            Ok(c) => panic!("expected errors, parsed {c:?}"),
            Err(e) => e.0,
        }
    }

    /// The single error of `text`, with its line and column.
    pub(crate) fn one(text: &str) -> (ClusterfileError, usize, usize) {
        let mut all = errs(text);
        assert_eq!(all.len(), 1, "expected one error, got: {all:#?}");
        let e = all.remove(0);
        let at = e.span().expect("has a position").clone();
        (e, at.line, at.column)
    }

    const HOSTS: &str = "[[hosts]]\naddresses = [\"10.0.0.1\"]\nroles = [\"master\"]\n";
    pub(crate) const MINIMAL: &str = "name = \"c\"\n[[hosts]]\naddresses = [\"10.0.0.1\"]\nroles = [\"master\"]\n";

    /// `name`, then `tables`, then one master: tables' lines start at 2.
    pub(crate) fn with(tables: &str) -> String {
        format!("name = \"c\"\n{tables}{HOSTS}")
    }

    fn ip(s: &str) -> Address {
        Address::Ip(s.parse().unwrap())
    }

    #[test]
    fn template_parses_and_expands_as_documented() {
        let c = ok(TEMPLATE);
        assert_eq!(c.name, "prod");
        let addrs: Vec<String> = c.hosts.iter().map(|h| h.address.to_string()).collect();
        assert_eq!(addrs, ["10.0.0.11", "10.0.0.21", "10.0.0.22", "10.0.0.23", "10.0.0.30"]);
        assert_eq!(c.first_master().address, ip("10.0.0.11"));
        assert_eq!(c.first_master().hostname.as_deref(), Some("master-1"));
        assert_eq!(c.first_master().roles, BTreeSet::from([Role::Master, Role::Registry]));
        assert_eq!(c.masters().count(), 1);
        assert_eq!(c.nodes().count(), 4);
        assert_eq!(
            c.registry,
            RegistryEndpoint {
                host: ip("10.0.0.11"),
                port: 5000
            }
        );
        assert_eq!(c.registry_host().address, ip("10.0.0.11"));
        assert_eq!(c.env.get("POD_CIDR").map(String::as_str), Some("10.244.0.0/16"));
        assert_eq!(c.ssh.auth, Auth::Key(PathBuf::from("/home/op/.ssh/id_ed25519")));
        assert_eq!(c.ssh.host_key_policy, HostKeyPolicy::AcceptNew);
        assert_eq!(c.ssh.connect_timeout, Duration::from_secs(10));
        let node = c.by_address("10.0.0.22").expect("expanded from the range");
        assert_eq!(node.ssh.user, "ops");
        assert!(node.ssh.sudo);
        assert_eq!(node.ssh.port, 22);
        assert_eq!(node.ssh.auth, c.ssh.auth);
        // Every address of a range points at the range.
        let line = TEMPLATE
            .lines()
            .position(|l| l.contains("10.0.0.21-10.0.0.23"))
            .unwrap()
            + 1;
        assert_eq!((node.origin.line, node.origin.column), (line, 14));
    }

    #[test]
    fn ranges_expand() {
        let list = |s: &str| {
            expand(s)
                .ok()
                .unwrap()
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(list("10.0.0.21-23"), ["10.0.0.21", "10.0.0.22", "10.0.0.23"]);
        assert_eq!(
            list("10.0.0.254-10.0.1.1"),
            ["10.0.0.254", "10.0.0.255", "10.0.1.0", "10.0.1.1"]
        );
        assert_eq!(list("10.0.0.5-10.0.0.5"), ["10.0.0.5"]);
        assert_eq!(expand("10.0.0.0-10.0.255.255").ok().unwrap().len(), 65_536);
        assert_eq!(list("node-1.example.com"), ["node-1.example.com"]);
        assert_eq!(list("fd00::1"), ["fd00::1"]);
        assert!(matches!(expand("10.0.0.0-10.1.0.0"), Err(AddressError::Range(_))));
        assert!(matches!(expand("10.0.0.9-3"), Err(AddressError::Range(_))));
        assert!(matches!(expand("10.0.0.1-300"), Err(AddressError::Range(_))));
        assert!(matches!(expand("fd00::1-fd00::3"), Err(AddressError::Range(_))));
        assert!(matches!(expand("10.0.0.300"), Err(AddressError::Address(_))));
        assert!(matches!(expand("bad_name"), Err(AddressError::Address(_))));
    }

    #[test]
    fn by_address_normalises() {
        let c = ok("name = \"c\"\n[[hosts]]\naddresses = [\"fd00::1\", \"Master.Example\"]\nroles = [\"master\"]\n");
        assert!(c.by_address("fd00:0:0::1").is_some());
        assert!(c.by_address("master.example").is_some());
        assert!(c.by_address("10.9.9.9").is_none());
    }

    #[test]
    fn overrides_merge_over_defaults() {
        let c = ok(r#"name = "c"
[ssh]
port = 2222
password_env = "PW"
[[hosts]]
addresses = ["10.0.0.1"]
roles = ["master"]
ssh = { user = "ops" }
[[hosts]]
addresses = ["10.0.0.2"]
roles = ["node"]
[hosts.ssh]
private_key = "~/keys/node"
port = 22
"#);
        let m = &c.hosts[0];
        assert_eq!((m.ssh.user.as_str(), m.ssh.port), ("ops", 2222));
        assert_eq!(m.ssh.auth, Auth::PasswordEnv("PW".into()));
        let n = &c.hosts[1];
        assert_eq!((n.ssh.user.as_str(), n.ssh.port), ("root", 22));
        assert_eq!(n.ssh.auth, Auth::Key("/home/op/keys/node".into()));
        assert_eq!(c.ssh.user, "root");
    }

    #[test]
    fn password_prompt_sudo_and_timeout() {
        let c = ok(&with(
            "[ssh]\nuser = \"ops\"\npassword_prompt = true\nsudo = true\nsudo_password_env = \"SUDO_PW\"\nconnect_timeout_secs = 3\n",
        ));
        let s = &c.hosts[0].ssh;
        assert_eq!(s.auth, Auth::PasswordPrompt);
        assert!(s.sudo);
        assert_eq!(s.sudo_password_env.as_deref(), Some("SUDO_PW"));
        assert_eq!(s.connect_timeout, Duration::from_secs(3));
        let (e, line, col) = one(&with("[ssh]\nconnect_timeout_secs = 0\n"));
        assert!(
            matches!(&e, E::InvalidValue { key, .. } if key == "connect_timeout_secs"),
            "{e}"
        );
        assert_eq!((line, col), (3, 24));
        let (e, ..) = one(&with("[ssh]\npassword_env = \"hunter2 !\"\n"));
        assert!(
            !e.to_string().contains("hunter2"),
            "a password typed as a variable name is echoed: {e}"
        );
        assert!(
            matches!(&e, E::InvalidValue { key, .. } if key == "password_env"),
            "{e}"
        );
    }

    #[test]
    fn defaults_without_ssh_table() {
        let c = ok(MINIMAL);
        let s = &c.hosts[0].ssh;
        assert_eq!((s.user.as_str(), s.port, s.sudo), ("root", 22, false));
        assert_eq!(s.auth, Auth::Key("/home/op/.ssh/id_ed25519".into()));
        assert_eq!(c.registry.host, ip("10.0.0.1"));
    }

    #[test]
    fn tilde_expanded_from_home_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.toml");
        std::fs::write(
            &path,
            format!("{MINIMAL}ssh = {{ private_key = \"~/.ssh/k\", known_hosts = \"~/kh\" }}\n"),
        )
        .unwrap();
        let c = load(&path).unwrap();
        let home = PathBuf::from(std::env::var_os("HOME").expect("HOME is set for tests"));
        assert_eq!(c.hosts[0].ssh.auth, Auth::Key(home.join(".ssh/k")));
        assert_eq!(c.hosts[0].ssh.known_hosts, Some(home.join("kh")));
        assert!(!matches!(&c.hosts[0].ssh.auth, Auth::Key(p) if p.starts_with("~")));

        let (e, line, col) = match parse_with_home(file(), &with("[ssh]\nprivate_key = \"~/k\"\n"), None) {
            Err(mut e) => {
                let e = e.0.remove(0);
                let at = e.span().unwrap().clone();
                (e, at.line, at.column)
            }
            Ok(_) => panic!("HOME unset must be an error"),
        };
        assert!(matches!(e, E::HomeUnset { .. }), "{e}");
        assert_eq!((line, col), (3, 15));
    }

    #[test]
    fn load_reports_unreadable_file() {
        let e = load(Path::new("/nonexistent/cluster.toml")).unwrap_err();
        assert!(matches!(&e.0[..], [E::Read { .. }]));
    }

    #[test]
    fn syntax_error_has_tomls_position() {
        let (e, line, col) = one("name = \"c\"\n[ssh\nuser = \"x\"\n");
        assert!(matches!(e, E::Syntax { .. }), "{e}");
        assert_eq!(line, 2, "{e}");
        assert!(col >= 1);
    }

    #[test]
    fn unknown_key_suggests() {
        let (e, line, col) = one(&format!("{MINIMAL}[ssh]\nusr = \"x\"\n"));
        match &e {
            E::UnknownKey { key, suggestion, .. } => {
                assert_eq!(key, "usr");
                assert_eq!(suggestion.as_deref(), Some("user"));
            }
            other => panic!("{other}"),
        }
        assert_eq!((line, col), (6, 1));
        assert!(e.to_string().contains("did you mean `user`?"), "{e}");
        assert!(e.to_string().starts_with("cluster.toml:6:1: "), "{e}");
        assert!(e.to_string().contains("\n  hint: "), "{e}");
        let (e, ..) = one(&format!("zzzz = 1\n{MINIMAL}"));
        assert!(matches!(e, E::UnknownKey { suggestion: None, .. }), "{e}");
    }

    #[test]
    fn literal_password_refused_anywhere() {
        let (e, line, col) = one(&with("[ssh]\npassword = \"hunter2\"\n"));
        assert!(matches!(e, E::LiteralPassword { .. }), "{e}");
        assert_eq!((line, col), (3, 1));
        assert!(e.to_string().contains("passwords never go in the file"));
        let (e, line, col) = one(&format!("{MINIMAL}ssh = {{ sudo_password = \"x\" }}\n"));
        assert!(matches!(e, E::LiteralPassword { .. }), "{e}");
        assert_eq!((line, col), (5, 9));
        let (e, ..) = one(&format!("password = \"x\"\n{MINIMAL}"));
        assert!(matches!(e, E::LiteralPassword { .. }), "{e}");
    }

    #[test]
    fn roles_missing_empty_unknown() {
        let (e, line, col) =
            one("name = \"c\"\n[[hosts]]\naddresses = [\"10.0.0.1\"]\nroles = [\"master\", \"mastr\"]\n");
        assert!(
            matches!(&e, E::UnknownRole { role, suggestion: Some(s), .. } if role == "mastr" && s == "master"),
            "{e}"
        );
        assert_eq!((line, col), (4, 20));

        let all = errs("name = \"c\"\n[[hosts]]\naddresses = [\"10.0.0.1\"]\n");
        assert!(
            matches!(&all[..], [E::MissingKey { key, .. }] if key == "roles"),
            "{all:#?}"
        );

        let all = errs("name = \"c\"\n[[hosts]]\naddresses = [\"10.0.0.1\"]\nroles = []\n");
        assert!(
            matches!(&all[..], [E::NoRoles { at }] if at.line == 4 && at.column == 9),
            "{all:#?}"
        );
    }

    #[test]
    fn no_master() {
        let (e, line, col) = one("name = \"c\"\n[[hosts]]\naddresses = [\"10.0.0.1\"]\nroles = [\"node\"]\n");
        assert!(matches!(e, E::NoMaster { .. }), "{e}");
        assert_eq!(line, 2, "{e} at column {col}");
    }

    #[test]
    fn duplicate_host_names_both_positions() {
        let (e, line, col) = one(&format!(
            "{MINIMAL}[[hosts]]\naddresses = [\"10.0.0.2\", \"10.0.0.0-1\"]\nroles = [\"node\"]\n"
        ));
        match &e {
            E::DuplicateHost { address, first, .. } => {
                assert_eq!(address, "10.0.0.1");
                assert_eq!((first.line, first.column), (3, 14));
            }
            other => panic!("{other}"),
        }
        assert_eq!((line, col), (6, 26));
        assert!(e.to_string().contains("first at cluster.toml:3:14"), "{e}");
    }

    #[test]
    fn bad_addresses_and_ranges() {
        let all = errs(&format!(
            "{MINIMAL}[[hosts]]\naddresses = [\"10.0.0.9-10.0.0.3\", \"10.0.0.0-10.2.0.0\", \"10.0.0.256\", \"a..b\"]\nroles = [\"node\"]\n"
        ));
        let found: Vec<_> = all
            .iter()
            .map(|e| match e {
                E::BadRange { at, .. } => ("range", at.line, at.column),
                E::BadAddress { at, .. } => ("address", at.line, at.column),
                other => panic!("{other}"),
            })
            .collect();
        assert_eq!(
            found,
            [
                ("range", 6, 14),
                ("range", 6, 35),
                ("address", 6, 56),
                ("address", 6, 70)
            ],
            "{all:#?}"
        );
    }

    #[test]
    fn strict_needs_known_hosts() {
        let (e, line, col) = one(&with("[ssh]\nhost_key_policy = \"strict\"\n"));
        assert!(matches!(e, E::StrictWithoutKnownHosts { .. }), "{e}");
        assert_eq!((line, col), (3, 19));
        let c = ok(&with(
            "[ssh]\nhost_key_policy = \"strict\"\nknown_hosts = \"/etc/kh\"\n",
        ));
        assert_eq!(c.hosts[0].ssh.host_key_policy, HostKeyPolicy::Strict);
        // A host override of known_hosts alone does not satisfy the default.
        let (e, ..) = one(&format!("{MINIMAL}ssh = {{ host_key_policy = \"strict\" }}\n"));
        assert!(
            matches!(e, E::StrictWithoutKnownHosts { at } if at.line == 5),
            "unexpected"
        );
        let (e, ..) = one(&with("[ssh]\nhost_key_policy = \"strickt\"\n"));
        assert!(e.to_string().contains("did you mean \"strict\"?"), "{e}");
    }

    #[test]
    fn registry_host_must_be_a_host() {
        let (e, line, col) = one(&with("[registry]\nhost = \"10.0.0.99\"\n"));
        assert!(
            matches!(&e, E::RegistryHostNotInCluster { host, .. } if host == "10.0.0.99"),
            "{e}"
        );
        assert_eq!((line, col), (3, 8));
        let c = ok(&format!(
            "{MINIMAL}[[hosts]]\naddresses = [\"10.0.0.2\"]\nroles = [\"node\", \"registry\"]\n"
        ));
        assert_eq!(c.registry.host, ip("10.0.0.2"));
    }

    #[test]
    fn bad_ports() {
        let all = errs(&(with("[ssh]\nport = 0\n[registry]\nport = 70000\n") + "ssh = { port = -1 }\n"));
        let pos: Vec<_> = all
            .iter()
            .map(|e| {
                assert!(matches!(e, E::BadPort { .. }), "{e}");
                (e.span().unwrap().line, e.span().unwrap().column)
            })
            .collect();
        assert_eq!(pos, [(3, 8), (5, 8), (9, 16)]);
    }

    #[test]
    fn hostname_only_on_single_address() {
        let (e, line, col) =
            one("name = \"c\"\n[[hosts]]\naddresses = [\"10.0.0.1-2\"]\nroles = [\"master\"]\nhostname = \"m\"\n");
        assert!(matches!(e, E::HostnameOnMultiAddress { addresses: 2, .. }), "{e}");
        assert_eq!((line, col), (5, 12));
    }

    #[test]
    fn a_cluster_name_that_would_escape_its_directory_or_a_shell_word_is_refused() {
        for bad in [
            "../../etc",
            "prod/eu",
            "a'b",
            "a\\nb",
            "a\\u0000b",
            "Prod",
            "-x",
            "x-",
            "a b",
        ] {
            let (e, line, col) = one(&format!("name = \"{bad}\"\n{HOSTS}"));
            assert!(
                matches!(&e, ClusterfileError::InvalidValue { key, .. } if key == "name"),
                "{bad}: {e:?}"
            );
            assert_eq!((line, col), (1, 8), "{bad}");
            let text = e.to_string();
            assert!(!text.contains('\n') || text.contains("hint"), "{text}");
            assert!(!text.contains('\0'), "{text}");
        }
        let (e, ..) = one(&format!("name = \"{}\"\n{HOSTS}", "a".repeat(64)));
        assert!(matches!(&e, ClusterfileError::InvalidValue { key, .. } if key == "name"));
        for good in ["c", "prod-eu", "a1", &"a".repeat(63)] {
            assert_eq!(ok(&format!("name = \"{good}\"\n{HOSTS}")).name, *good);
        }
    }

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

    #[test]
    fn address_ranges_are_capped_in_all_not_only_each() {
        let ranges: Vec<String> = (0..100).map(|i| format!("\"10.{i}.0.0-10.{i}.255.255\"")).collect();
        let text = format!(
            "name = \"c\"\n[[hosts]]\naddresses = [{}]\nroles = [\"master\"]\n",
            ranges.join(", ")
        );
        let (e, line, _) = one(&text);
        assert!(
            matches!(e, ClusterfileError::TooManyHosts { max: MAX_HOSTS, .. }),
            "{e:?}"
        );
        assert_eq!(line, 3);
        // One full range is still fine.
        let c = ok("name = \"c\"\n[[hosts]]\naddresses = [\"10.0.0.0-10.0.255.255\"]\nroles = [\"master\"]\n");
        assert_eq!(c.hosts.len(), MAX_HOSTS);
    }

    #[test]
    fn a_clusterfile_that_is_not_utf8_is_an_error_at_the_first_bad_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.toml");
        std::fs::write(&path, b"name = \"c\"\n# caf\xe9\n").unwrap();
        let e = load(&path).expect_err("latin-1");
        match &e.0[..] {
            [ClusterfileError::NotUtf8 { at }] => assert_eq!((at.line, at.column), (2, 6)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_env_keys() {
        let (e, line, col) = one(&with("[env]\n\"\" = \"x\"\n"));
        assert!(matches!(&e, E::BadEnvKey { key, .. } if key.is_empty()), "{e}");
        assert_eq!((line, col), (3, 1));
        let (e, ..) = one(&with("[env]\n\"1X\" = \"x\"\n"));
        assert!(matches!(e, E::BadEnvKey { .. }), "{e}");
    }

    #[test]
    fn conflicting_auth_and_types() {
        let (e, line, col) = one(&with("[ssh]\npassword_env = \"A\"\nprivate_key = \"/k\"\n"));
        assert!(matches!(e, E::ConflictingAuth { .. }), "{e}");
        assert_eq!((line, col), (4, 15));
        let (e, line, col) = one(&with("[ssh]\nsudo = \"yes\"\n"));
        assert!(
            matches!(&e, E::WrongType { key, found: "string", .. } if key == "sudo"),
            "{e}"
        );
        assert_eq!((line, col), (3, 8));
        let all = errs("");
        assert!(
            matches!(&all[..], [E::MissingKey { .. }, E::MissingKey { .. }]),
            "{all:#?}"
        );
    }

    #[test]
    fn every_error_at_once() {
        let text = r#"name = "c"
[ssh]
usr = "x"
password = "p"
host_key_policy = "strict"
[registry]
host = "10.9.9.9"
port = 0
[env]
"" = "x"
[[hosts]]
addresses = ["10.0.0.1", "10.0.0.9-1"]
roles = ["master", "wizard"]
hostname = "h"
[[hosts]]
addresses = ["10.0.0.1"]
roles = ["node"]
"#;
        let all = errs(text);
        let kinds: Vec<&str> = all
            .iter()
            .map(|e| match e {
                E::UnknownKey { .. } => "unknown",
                E::LiteralPassword { .. } => "password",
                E::StrictWithoutKnownHosts { .. } => "strict",
                E::RegistryHostNotInCluster { .. } => "registry",
                E::BadPort { .. } => "port",
                E::BadEnvKey { .. } => "env",
                E::BadRange { .. } => "range",
                E::UnknownRole { .. } => "role",
                E::DuplicateHost { .. } => "duplicate",
                other => panic!("unexpected {other}"),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "unknown",
                "password",
                "strict",
                "registry",
                "port",
                "env",
                "range",
                "role",
                "duplicate"
            ],
            "{}",
            ClusterfileErrors(all)
        );
    }

    #[test]
    fn the_template_documents_the_table() {
        // The commented [kubernetes] example, uncommented, parses to its documented values.
        let uncommented: String = TEMPLATE
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest) if rest.starts_with("[kubernetes]") || KEYS.iter().any(|k| rest.starts_with(k)) => rest,
                _ => l,
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let c = parse_with_home(Path::new("cluster.toml"), &uncommented, Some("/home/op".into())).unwrap();
        assert_eq!(c.kinds.kubernetes.cert_sans, ["k8s.example.com"]);
        assert_eq!(c.kinds.kubernetes.pod_cidr, Kubernetes::default().pod_cidr);
    }

    #[test]
    fn kubernetes_defaults_and_settings() {
        let c = ok(MINIMAL);
        assert_eq!(c.kinds.kubernetes, Kubernetes::default());
        assert_eq!(c.kinds.kubernetes.service_cidr.first_host().to_string(), "10.96.0.1");
        let c = ok(&with(
            "[kubernetes]\npod_cidr = \"172.16.0.0/16\"\nservice_cidr = \"172.17.0.0/20\"\ndns_domain = \"corp.local\"\ncontrol_plane_endpoint = \"k8s.corp:8443\"\ncert_sans = [\"k8s.example.com\", \"192.0.2.7\"]\n",
        ));
        let k = &c.kinds.kubernetes;
        assert_eq!(
            (k.pod_cidr.to_string(), k.service_cidr.to_string()),
            ("172.16.0.0/16".into(), "172.17.0.0/20".into())
        );
        assert_eq!(
            (k.endpoint_host.as_str(), k.endpoint_port, k.dns_domain.as_str()),
            ("k8s.corp", 8443, "corp.local")
        );
        assert_eq!(k.cert_sans, ["k8s.example.com", "192.0.2.7"]);
        assert!(k.pod_cidr.contains("172.16.255.1".parse().unwrap()));
        assert!(!k.pod_cidr.contains("172.17.0.1".parse().unwrap()));
        let v6: Cidr = "fd00:10::/108".parse().unwrap();
        assert_eq!(v6.first_host().to_string(), "fd00:10::1");
    }

    #[test]
    fn kubernetes_errors_point_at_the_value() {
        let (e, line, col) = one(&with("[kubernetes]\npod_cidr = \"10.244.1.0/16\"\n"));
        assert_eq!((line, col), (3, 12));
        assert!(e.to_string().contains("the network is 10.244.0.0/16"), "{e}");
        let (e, line, _) = one(&with("[kubernetes]\npod_cidr = \"10.96.0.0/16\"\n"));
        assert_eq!(line, 3);
        assert!(e.to_string().contains("overlaps pod_cidr"), "{e}");
        let (e, line, _) = one(&with("[kubernetes]\nservice_cidr = \"10.0.0.0/24\"\n"));
        assert_eq!(line, 3);
        assert!(e.to_string().contains("contains the address of host 10.0.0.1"), "{e}");
        let (e, _, _) = one(&with("[kubernetes]\ncontrol_plane_endpoint = \"apiserver\"\n"));
        assert!(e.to_string().contains("not HOST:PORT"), "{e}");
        let (e, _, _) = one(&with("[kubernetes]\ncert_sans = [\"bad name!\"]\n"));
        assert!(e.to_string().contains("bad name!"), "{e}");
        let (e, _, _) = one(&with("[kubernetes]\npod_cdir = \"10.1.0.0/16\"\n"));
        assert!(e.to_string().contains("did you mean `pod_cidr`"), "{e}");
    }
}
