//! How `install` logs in to each host: the `[ssh]` table (the defaults) and a host's
//! `ssh = { ... }` read as [`SshLayer`]s, then merged, the host's over the defaults, into the
//! [`SshSettings`] every [`super::Host`] carries. The merge is where cross-key rules are checked
//! (`strict` needs `known_hosts`) and where the defaults live: user `root`, port 22, the key
//! `~/.ssh/id_ed25519`, `accept-new`, a 10 s connect timeout.

use std::path::PathBuf;
use std::time::Duration;

use toml::de::DeTable;

use super::error::ClusterfileError;
use super::walker::{closest, At, Cx};

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

/// `[ssh]` or one host's `ssh`: only what that level sets.
#[derive(Default, Clone)]
pub(super) struct SshLayer {
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

impl Cx<'_> {
    /// Reads `[ssh]` or a host's `ssh` (`name` says which, in errors): only what it sets.
    pub(super) fn ssh_layer(&mut self, table: &DeTable<'_>, name: &str) -> SshLayer {
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
    pub(super) fn resolve(&mut self, base: &SshLayer, over: &SshLayer) -> SshSettings {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clusterfile::tests::{errs, ip, ok, one, with, E, MINIMAL};

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
}
