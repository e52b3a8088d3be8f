//! The walker: how a Clusterfile is read. [`Cx`] goes over toml's spanned tree
//! ([`toml::de::DeTable`], every key and value with its byte range), turns ranges into
//! `file:line:column` ([`Span`]), reads typed values (strings, booleans, ports, paths,
//! environment-variable names), checks each table's keys against the allowed ones with a "did you
//! mean" ([`closest`]), and collects every problem instead of stopping at the first. The tables'
//! own files (`ssh`, `hosts`, `document`, `kind_tables`) add their walks to [`Cx`].
//!
//! # Why a walker of our own, and not serde's derive with toml's errors
//!
//! `toml::from_str` into `#[derive(Deserialize)]` types would be shorter, and a
//! `toml::de::Error` has a span. We walk the tree ourselves because that route cannot give what
//! `check-config` promises (README: every error at `file:line:column`, with a hint):
//! - **Every error at once.** `toml::from_str` returns one `toml::de::Error`: a derived
//!   `Deserialize` returns at its first problem, so a file with five mistakes would take five
//!   runs. The walker skips a bad value, goes on, and returns every problem sorted by position
//!   ([`ClusterfileErrors`]). Syntax errors come from toml's own recovering parser, several at
//!   once ([`DeTable::parse_recoverable`](toml::de::DeTable::parse_recoverable)).
//! - **Positions for the checks serde does not make.** A strict `host_key_policy` without
//!   `known_hosts` (after a host's `ssh` is merged over `[ssh]`), a host listed twice (both
//!   positions), a registry host that is not one of the hosts, the cap on hosts over all
//!   entries, a Kubernetes CIDR that holds a host's address: these look at several keys, after
//!   their values are read. No serde error covers them; with derive, every field would need a
//!   `toml::Spanned` wrapper and these checks would still be a walk of our own. The walker has
//!   every key's and value's span at hand.
//! - **Messages that help and do not leak.** serde's unknown-field error lists the expected
//!   fields but names no nearest one, and does not tell `password` (refused with its own error:
//!   passwords never go in the file) from a typo. Its invalid-type error quotes the value found
//!   (`invalid type: string "...", expected a boolean`), and the `Display` of a
//!   `toml::de::Error` prints the offending source line: a password typed under the wrong key
//!   would reach the terminal or a log. The walker names only the type found
//!   ([`Cx::wrong_type`]) and hides the values of keys named like secrets ([`Cx::invalid`]).
//!
//! We do use toml for what it does well: the syntax, the tree and its spans. Bundle kinds'
//! tables (`[kubernetes]`) are walked with the same [`Cx`], so their errors read like the rest.
//!
//! # Why our own Levenshtein, and not `strsim`
//!
//! [`levenshtein`] is the dozen lines of edit distance that [`closest`] needs.
//! `strsim::levenshtein` computes the same distance (over `char`s), but what decides whether to
//! suggest, [`closest`]'s threshold, would stay ours either way: the swap would trade a dozen
//! lines for a direct dependency and change nothing a user sees. Avoiding the crate is not the
//! reason: strsim is already compiled into the stub, through clap's default `suggestions`
//! feature.

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::error::{ClusterfileError, ClusterfileErrors, Span};

/// A value and where it is written.
pub(super) type At<T> = (T, Range<usize>);

/// One walk over one Clusterfile: where it is, what it says, and every problem found so far.
pub(super) struct Cx<'a> {
    file: &'a Path,
    text: &'a str,
    /// Byte offset of every line's start: positions are found by binary search, not by
    /// scanning the text again for each (20,000 duplicate keys took 3 s).
    line_starts: Vec<usize>,
    pub(super) home: Option<PathBuf>,
    pub(super) errors: Vec<ClusterfileError>,
}

impl<'a> Cx<'a> {
    /// A walk over `text`, the contents of `file`; `~` in paths expands to `home`.
    pub(super) fn new(file: &'a Path, text: &'a str, home: Option<PathBuf>) -> Cx<'a> {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Cx {
            file,
            text,
            line_starts,
            home,
            errors: Vec::new(),
        }
    }

    pub(super) fn span(&self, r: Range<usize>) -> Span {
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

    pub(super) fn finish(mut self) -> ClusterfileErrors {
        // The same default can fail for several hosts: report each position once.
        let mut seen = BTreeSet::new();
        self.errors.retain(|e| seen.insert(e.to_string()));
        self.errors.sort_by(|a, b| a.span().cmp(&b.span()));
        ClusterfileErrors(self.errors)
    }

    pub(super) fn push(&mut self, e: ClusterfileError) {
        self.errors.push(e);
    }

    /// Checks a table's keys; returns the known entries. Unknown keys and password keys are errors.
    pub(super) fn known<'t, 'i>(
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

    pub(super) fn wrong_type(&mut self, key: &str, v: &Spanned<DeValue<'_>>, expected: &'static str) {
        self.push(ClusterfileError::WrongType {
            at: self.span(v.span()),
            key: key.to_owned(),
            expected,
            found: v.get_ref().type_str(),
        });
    }

    pub(super) fn string(&mut self, key: &str, v: &Spanned<DeValue<'_>>) -> Option<String> {
        match v.get_ref().as_str() {
            Some(s) => Some(s.to_owned()),
            None => {
                self.wrong_type(key, v, "a string");
                None
            }
        }
    }

    pub(super) fn nonempty(&mut self, key: &str, v: &Spanned<DeValue<'_>>) -> Option<String> {
        let s = self.string(key, v)?;
        if s.trim().is_empty() {
            self.invalid(key, v, &s, "it is empty", "give a value or leave the key out");
            return None;
        }
        Some(s)
    }

    pub(super) fn boolean(&mut self, key: &str, v: &Spanned<DeValue<'_>>) -> Option<bool> {
        let b = v.get_ref().as_bool();
        if b.is_none() {
            self.wrong_type(key, v, "true or false");
        }
        b
    }

    pub(super) fn integer(&mut self, key: &str, v: &Spanned<DeValue<'_>>) -> Option<i128> {
        match v.get_ref().as_integer() {
            Some(i) => i128::from_str_radix(&i.as_str().replace('_', ""), i.radix()).ok(),
            None => {
                self.wrong_type(key, v, "an integer");
                None
            }
        }
    }

    pub(super) fn port(&mut self, key: &str, v: &Spanned<DeValue<'_>>) -> Option<u16> {
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

    pub(super) fn invalid(&mut self, key: &str, v: &Spanned<DeValue<'_>>, value: &str, reason: &str, hint: &str) {
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

    pub(super) fn path(&mut self, key: &str, v: &Spanned<DeValue<'_>>) -> Option<PathBuf> {
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

    pub(super) fn env_var_name(&mut self, key: &str, v: &Spanned<DeValue<'_>>) -> Option<String> {
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

    pub(super) fn table<'t, 'i>(&mut self, key: &str, v: &'t Spanned<DeValue<'i>>) -> Option<&'t DeTable<'i>> {
        let t = v.get_ref().as_table();
        if t.is_none() {
            self.wrong_type(key, v, "a table");
        }
        t
    }
}

pub(super) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub(super) fn is_password_key(key: &str) -> bool {
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
pub(super) fn closest<'a>(s: &str, allowed: impl IntoIterator<Item = &'a str>) -> Option<String> {
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use crate::clusterfile::tests::{errs, file, one, with, E, MINIMAL};
    use crate::clusterfile::{load, parse_with_home, Auth};

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
}
