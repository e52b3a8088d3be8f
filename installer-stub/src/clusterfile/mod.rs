//! The Clusterfile (`cluster.toml`): which hosts `install` fans out to, with which roles, and how
//! to reach them over SSH. Parsing only; nothing here touches the network.
//!
//! [`load`] and [`parse`] give a [`Clusterfile`] with ranges expanded and every host's SSH
//! settings resolved, or every problem in the file at once, each at the `file:line:column` of the
//! offending key or value, with a hint. `templates/cluster.toml` is the commented reference.
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
//!
//! This file holds the entry points; the files below it, each using only those after it:
//! - `document`: the [`Clusterfile`] and the walk of its top level.
//! - `kind_tables`: the tables bundle kinds own (`[kubernetes]`).
//! - `hosts`: `[[hosts]]` entries, into one [`Host`] per address.
//! - `ssh`: `[ssh]` and a host's `ssh`, merged into each host's SSH settings.
//! - `walker`: the walk over toml's spanned tree that reports every problem at its position,
//!   and why we keep it rather than serde's derive with toml's errors.
//! - `error`: what can be wrong ([`ClusterfileError`]), and where.
//! - `address`: addresses, IPv4 ranges, DNS names.

mod address;
mod document;
mod error;
mod hosts;
mod kind_tables;
mod ssh;
mod walker;

#[cfg(test)]
pub(crate) mod tests;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use toml::de::DeTable;

pub use address::endpoint_host;
pub use document::Clusterfile;
use error::{ClusterfileError, ClusterfileErrors, Span};
// The property tests and fuzz targets check the cap.
#[cfg(any(test, feature = "fuzzing"))]
pub use hosts::MAX_HOSTS;
pub use hosts::{Host, Role};
pub use ssh::{Auth, HostKeyPolicy};
use walker::Cx;

/// The commented example printed by `init-config`.
pub const TEMPLATE: &str = include_str!("../../../templates/cluster.toml");

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

/// [`parse`] with `HOME` given rather than read from the environment, for the tests.
pub(crate) fn parse_with_home(
    path: &Path,
    text: &str,
    home: Option<OsString>,
) -> Result<Clusterfile, ClusterfileErrors> {
    let mut cx = Cx::new(path, text, home.map(PathBuf::from));
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
