//! Registry credentials: the `--registry-auth` file (format in the module doc of `fetch`),
//! `WWW-Authenticate` challenges, and the per-(host, scope) token cache.
//!
//! Secrets never reach argv, logs or error messages: [`Credential`]'s `Debug` redacts, and a
//! `password_env` is read only when a registry asks for credentials, so a build that never
//! talks to that registry does not need the variable.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::FetchError;

/// Credentials per registry host, as loaded from an auth file.
#[derive(Debug, Clone, Default)]
pub struct Auths {
    /// The file they came from, named in hints when a registry rejects them.
    pub path: Option<PathBuf>,
    /// Keyed by `host[:port]`; Docker Hub's aliases are stored as `docker.io`.
    pub registries: BTreeMap<String, Credential>,
    /// Problems worth a warning that did not stop loading (a password file readable by others).
    pub warnings: Vec<String>,
}

/// A username and where its password comes from.
#[derive(Clone)]
pub struct Credential {
    pub username: String,
    pub password: Secret,
    /// 1-based line of the entry in the auth file, for hints.
    pub line: usize,
}

/// A password, inline or named by an environment variable.
#[derive(Clone)]
pub enum Secret {
    Inline(String),
    Env(String),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let password = match &self.password {
            Secret::Inline(_) => "<inline, redacted>".to_string(),
            Secret::Env(var) => format!("${var}"),
        };
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("password", &password)
            .field("line", &self.line)
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthFile {
    #[serde(default)]
    registries: BTreeMap<String, toml::Spanned<Entry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    username: String,
    password: Option<String>,
    password_env: Option<String>,
}

impl Auths {
    /// Read and check an auth file. Errors point at file:line:column.
    pub fn load(path: &Path) -> Result<Auths, FetchError> {
        let text = std::fs::read_to_string(path).map_err(|error| FetchError::Io {
            path: path.to_path_buf(),
            action: "read the registry auth file",
            error,
        })?;
        let mode = std::fs::metadata(path).map(|m| m.permissions().mode()).unwrap_or(0o600);
        Auths::parse(path, &text, mode)
    }

    /// Parse auth-file text; `mode` is the file's permission bits (for the 0600 warning).
    pub fn parse(path: &Path, text: &str, mode: u32) -> Result<Auths, FetchError> {
        let bad = |offset: usize, message: String| {
            let (line, column) = line_column(text, offset);
            FetchError::BadAuthFile {
                path: path.to_path_buf(),
                line,
                column,
                message,
            }
        };
        let file: AuthFile = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            bad(offset, e.message().trim_end().to_string())
        })?;
        let mut auths = Auths {
            path: Some(path.to_path_buf()),
            ..Auths::default()
        };
        let mut inline = false;
        for (host, entry) in file.registries {
            let offset = entry.span().start;
            let entry = entry.into_inner();
            if !bundle_format::reference::is_registry(&host) {
                return Err(bad(offset, format!("`{host}` is not a registry host[:port]")));
            }
            if entry.username.is_empty() {
                return Err(bad(offset, format!("registry `{host}` has an empty username")));
            }
            let password = match (entry.password, entry.password_env) {
                (Some(p), None) => {
                    inline = true;
                    Secret::Inline(p)
                }
                (None, Some(var)) if is_env_name(&var) => Secret::Env(var),
                // Never echoed: it may be the password itself, typed where its variable's name belongs.
                (None, Some(var)) if !var.is_empty() => {
                    return Err(bad(
                        offset,
                        format!("registry `{host}`: password_env is not an environment variable name (value not shown: it may be a password); name the variable that holds the password, e.g. HARBOR_PASSWORD"),
                    ))
                }
                (None, Some(_)) => return Err(bad(offset, format!("registry `{host}` has an empty password_env"))),
                (Some(_), Some(_)) => {
                    return Err(bad(
                        offset,
                        format!("registry `{host}` sets both password and password_env: keep one"),
                    ))
                }
                (None, None) => {
                    return Err(bad(
                        offset,
                        format!("registry `{host}` needs password_env = \"VAR\" (or password = \"...\")"),
                    ))
                }
            };
            let key = canonical_host(&host).to_string();
            if auths.registries.contains_key(&key) {
                return Err(bad(offset, format!("registry `{host}` is listed twice (as `{key}`)")));
            }
            let (line, _) = line_column(text, offset);
            auths.registries.insert(
                key,
                Credential {
                    username: entry.username,
                    password,
                    line,
                },
            );
        }
        if inline && mode & 0o077 != 0 {
            auths.warnings.push(format!(
                "registry auth file {} holds passwords and has mode {:04o}: run chmod 600 {} or use password_env",
                path.display(),
                mode & 0o7777,
                path.display()
            ));
        }
        Ok(auths)
    }

    /// The credential for the registry endpoint `host` (`host[:port]`).
    pub fn for_host(&self, host: &str) -> Option<&Credential> {
        self.registries.get(canonical_host(host))
    }

    /// The text of a hint that names the auth file.
    pub(crate) fn file_hint(&self) -> String {
        match &self.path {
            Some(p) => format!("the --registry-auth file {}", p.display()),
            None => "a --registry-auth file".to_string(),
        }
    }
}

/// The environment variable that a `password_env` names is not set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the environment variable {}that password_env names (line {line}) is not set",
    .name.as_ref().map(|n| format!("{n} ")).unwrap_or_default()
)]
pub struct PasswordUnset {
    /// The variable's name; None when it may be the password itself, so it is never shown.
    pub name: Option<String>,
    pub line: usize,
}

impl Credential {
    /// The password, or why it is not available.
    pub(crate) fn password(&self) -> Result<String, PasswordUnset> {
        match &self.password {
            Secret::Inline(p) => Ok(p.clone()),
            Secret::Env(var) => std::env::var(var).map_err(|_| {
                // A name in lowercase may be the password itself, typed in the wrong key.
                let shown = var
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
                PasswordUnset {
                    name: shown.then(|| var.clone()),
                    line: self.line,
                }
            }),
        }
    }
}

fn is_env_name(s: &str) -> bool {
    let mut cs = s.chars();
    cs.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Docker Hub is known by several names; credentials and mirrors use `docker.io`.
pub(crate) fn canonical_host(host: &str) -> &str {
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => "docker.io",
        other => other,
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

impl Challenge {
    /// Parse the first Basic or Bearer challenge of a header value.
    pub(crate) fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, rest) = header.split_once(char::is_whitespace).unwrap_or((header, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return Some(Challenge::Basic);
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let params = parse_params(rest);
        let realm = params.get("realm")?.clone();
        Some(Challenge::Bearer {
            realm,
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        })
    }
}

/// `key="value", key=value` pairs (RFC 7235 auth-params), keys lowercased.
fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == b',' || b[i].is_ascii_whitespace()) {
            i += 1;
        }
        let key_start = i;
        while i < b.len() && b[i] != b'=' && b[i] != b',' {
            i += 1;
        }
        let key = s[key_start..i].trim().to_ascii_lowercase();
        if i >= b.len() || b[i] != b'=' {
            continue;
        }
        i += 1;
        let mut value = String::new();
        if i < b.len() && b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                let ch = s[i..].chars().next().expect("index is on a char boundary");
                value.push(ch);
                i += ch.len_utf8();
            }
            i += 1;
        } else {
            let start = i;
            while i < b.len() && b[i] != b',' {
                i += 1;
            }
            value = s[start..i].trim().to_string();
        }
        if !key.is_empty() {
            out.insert(key, value);
        }
    }
    out
}

/// What a host asked for, and the tokens it gave, shared by all download threads.
#[derive(Default)]
pub(crate) struct Tokens {
    /// Hosts that answered with a Basic challenge: later requests send credentials at once.
    basic: Mutex<HashMap<String, ()>>,
    /// (host, scope) -> token and when it stops being used.
    bearer: Mutex<HashMap<(String, String), (String, Instant)>>,
}

impl Tokens {
    pub(crate) fn uses_basic(&self, host: &str) -> bool {
        self.basic.lock().expect("token lock poisoned").contains_key(host)
    }

    pub(crate) fn set_basic(&self, host: &str) {
        self.basic
            .lock()
            .expect("token lock poisoned")
            .insert(host.to_string(), ());
    }

    pub(crate) fn bearer(&self, host: &str, scope: &str) -> Option<String> {
        let map = self.bearer.lock().expect("token lock poisoned");
        map.get(&(host.to_string(), scope.to_string()))
            .filter(|(_, until)| Instant::now() < *until)
            .map(|(t, _)| t.clone())
    }

    pub(crate) fn set_bearer(&self, host: &str, scope: &str, token: String, expires_in: Option<u64>) {
        // Refresh 30 s early; the spec's default lifetime is 60 s.
        let lifetime = expires_in.unwrap_or(60).max(60).saturating_sub(30);
        let until = Instant::now() + Duration::from_secs(lifetime);
        self.bearer
            .lock()
            .expect("token lock poisoned")
            .insert((host.to_string(), scope.to_string()), (token, until));
    }

    pub(crate) fn forget_bearer(&self, host: &str, scope: &str) {
        self.bearer
            .lock()
            .expect("token lock poisoned")
            .remove(&(host.to_string(), scope.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, mode: u32) -> Result<Auths, FetchError> {
        Auths::parse(Path::new("auth.toml"), text, mode)
    }

    #[test]
    fn reads_env_and_inline_passwords() {
        let a = parse(
            "[registries.\"harbor.corp:8443\"]\nusername = \"ci\"\npassword_env = \"HARBOR_PASSWORD\"\n\n\
             [registries.\"index.docker.io\"]\nusername = \"me\"\npassword = \"s3cret\"\n",
            0o600,
        )
        .unwrap();
        let h = a.for_host("harbor.corp:8443").unwrap();
        assert_eq!((h.username.as_str(), h.line), ("ci", 1));
        assert!(matches!(&h.password, Secret::Env(v) if v == "HARBOR_PASSWORD"));
        assert_eq!(
            a.for_host("registry-1.docker.io").unwrap().password().unwrap(),
            "s3cret"
        );
        assert!(a.warnings.is_empty());
        assert!(!format!("{a:?}").contains("s3cret"), "Debug must redact passwords");
    }

    #[test]
    fn warns_on_a_readable_file_with_passwords() {
        let a = parse(
            "[registries.\"r.example\"]\nusername = \"u\"\npassword = \"p\"\n",
            0o644,
        )
        .unwrap();
        assert_eq!(a.warnings.len(), 1);
        assert!(a.warnings[0].contains("chmod 600"));
        let a = parse(
            "[registries.\"r.example\"]\nusername = \"u\"\npassword_env = \"P\"\n",
            0o644,
        )
        .unwrap();
        assert!(a.warnings.is_empty(), "no password in the file, nothing to protect");
    }

    #[test]
    fn errors_point_at_line_and_column() {
        let cases = [
            ("[registries.\"r.example\"]\nusername = \"u\"\npasword = \"p\"\n", 3),
            ("[registries.\"r.example\"]\nusername = \"u\"\n", 1),
            (
                "\n\n[registries.\"r.example\"]\nusername = \"u\"\npassword = \"a\"\npassword_env = \"B\"\n",
                3,
            ),
            ("[registries.\"bad host\"]\nusername = \"u\"\npassword_env = \"B\"\n", 1),
            ("[registries.\"r.example\"\nusername = 1\n", 1),
        ];
        for (text, want_line) in cases {
            match parse(text, 0o600) {
                Err(FetchError::BadAuthFile { line, column, .. }) => {
                    assert_eq!(line, want_line, "{text:?}");
                    assert!(column >= 1);
                }
                other => panic!("{text:?}: expected BadAuthFile, got {other:?}"),
            }
        }
    }

    #[test]
    fn unset_password_env_is_reported_lazily() {
        let a = parse(
            "[registries.\"r.example\"]\nusername = \"u\"\npassword_env = \"DELIVERY_TEST_SURELY_UNSET_VAR\"\n",
            0o600,
        )
        .unwrap();
        let err = a.for_host("r.example").unwrap().password().unwrap_err().to_string();
        assert!(err.contains("DELIVERY_TEST_SURELY_UNSET_VAR"));
        // `password_env = "hunter2"`: a valid name, but maybe the password itself: not echoed.
        let a = parse(
            "[registries.\"r.example\"]\nusername = \"u\"\npassword_env = \"hunter2\"\n",
            0o600,
        )
        .unwrap();
        let err = a.for_host("r.example").unwrap().password().unwrap_err().to_string();
        assert!(!err.contains("hunter2") && err.contains("(line 1)"), "{err}");
    }

    #[test]
    fn a_password_typed_as_password_env_is_refused_and_never_echoed() {
        let e = parse(
            "[registries.\"r.example\"]\nusername = \"u\"\npassword_env = \"hunter2!\"\n",
            0o600,
        )
        .map(|_| ())
        .expect_err("not a variable name");
        let text = format!("{e:#}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(
            text.contains("password_env is not an environment variable name"),
            "{text}"
        );
    }

    #[test]
    fn parses_challenges() {
        assert_eq!(
            Challenge::parse("Basic realm=\"Registry Realm\""),
            Some(Challenge::Basic)
        );
        assert_eq!(
            Challenge::parse(
                "Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\",scope=\"repository:library/busybox:pull\""
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull".into()),
            })
        );
        assert_eq!(
            Challenge::parse("bearer realm=http://127.0.0.1:1/t, service=svc"),
            Some(Challenge::Bearer {
                realm: "http://127.0.0.1:1/t".into(),
                service: Some("svc".into()),
                scope: None
            })
        );
        assert_eq!(Challenge::parse("Negotiate abc"), None);
        assert_eq!(Challenge::parse("Bearer service=x"), None);
    }
}
