//! Node configuration for the bundle's registry mirror: a containerd `hosts.toml` for every
//! upstream registry the bundle carries images of, and docker's `daemon.json`, rendered from the
//! templates in `templates/` (embedded at build time) with strict undefined variables.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};
use bundle_format::io::write_atomic_mode;
use bundle_format::reference::Reference;
use minijinja::{context, Environment, UndefinedBehavior};

use crate::cli::MirrorConfigArgs;
use crate::own_bundle::open_verified;

const HOSTS_TOML: &str = include_str!("../../../templates/containerd/hosts.toml.j2");
const DAEMON_JSON: &str = include_str!("../../../templates/docker/daemon.json.j2");

/// Where nodes reach the mirror, and how to trust it.
#[derive(Debug, Clone)]
pub(crate) struct Mirror {
    /// `http://10.0.0.1:5000` or `https://registry.local:5000`.
    pub url: String,
    /// Accept any TLS certificate from the mirror (a self-signed one without `ca`).
    pub skip_verify: bool,
    /// A CA file on the node that signed the mirror's certificate.
    pub ca: Option<String>,
}

impl Mirror {
    /// Check the URL: a scheme of http or https, then `host:port` and nothing else.
    pub fn new(url: &str, skip_verify: bool, ca: Option<String>) -> Result<Self> {
        let host = mirror_host(url)?;
        if !bundle_format::reference::is_registry(host) {
            bail!("mirror URL `{url}` must be http://HOST:PORT or https://HOST:PORT");
        }
        Ok(Mirror {
            url: url.trim_end_matches('/').to_string(),
            skip_verify,
            ca,
        })
    }

    fn host(&self) -> &str {
        mirror_host(&self.url).expect("checked in Mirror::new")
    }
}

fn mirror_host(url: &str) -> Result<&str> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .with_context(|| format!("mirror URL `{url}` must start with http:// or https://"))?;
    Ok(rest.trim_end_matches('/'))
}

/// The URL containerd falls back to for a registry when the mirror cannot answer.
fn upstream_url(registry: &str) -> String {
    if registry == bundle_format::reference::DOCKER_HUB {
        "https://registry-1.docker.io".to_string()
    } else {
        format!("https://{registry}")
    }
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env
}

/// One `(relative path, content)` per registry: `<registry>/hosts.toml` under containerd's
/// `certs.d` directory.
pub(crate) fn containerd_hosts(registries: &BTreeSet<String>, mirror: &Mirror) -> Result<Vec<(String, String)>> {
    let env = environment();
    let template = env
        .template_from_str(HOSTS_TOML)
        .context("the hosts.toml template is invalid")?;
    registries
        .iter()
        .map(|registry| {
            let text = template
                .render(context! {
                    registry => registry,
                    upstream => upstream_url(registry),
                    mirror => &mirror.url,
                    skip_verify => mirror.skip_verify,
                    ca => mirror.ca.clone().unwrap_or_default(),
                })
                .with_context(|| format!("failed to render hosts.toml for {registry}"))?;
            Ok((format!("{registry}/hosts.toml"), text))
        })
        .collect()
}

/// docker's `daemon.json` (Docker Hub images only: see the template).
pub(crate) fn docker_daemon_json(mirror: &Mirror) -> Result<String> {
    let env = environment();
    let template = env
        .template_from_str(DAEMON_JSON)
        .context("the daemon.json template is invalid")?;
    template
        .render(context! {
            mirror => &mirror.url,
            mirror_host => mirror.host(),
            insecure => mirror.url.starts_with("http://"),
        })
        .context("failed to render daemon.json")
}

/// `registry mirror-config`: render and write the files for every registry of the bundle.
pub fn run(args: &MirrorConfigArgs) -> Result<()> {
    let verified = open_verified(&args.trust, false)?;
    let mirror = Mirror::new(&args.mirror, args.insecure_skip_verify, args.ca.clone())?;
    let registries: BTreeSet<String> = verified
        .manifest()
        .images
        .iter()
        .map(|i| i.name.parse::<Reference>().map(|r| r.registry))
        .collect::<Result<_, _>>()
        .context("the bundle's manifest names an invalid image")?;
    if registries.is_empty() {
        terminal::log("warning: this bundle carries no images: nothing to configure");
    }
    if let Some(dir) = &args.containerd_dir {
        for (rel, text) in containerd_hosts(&registries, &mirror)? {
            write_config(&dir.join(&rel), text.as_bytes())?;
            println!("{}", dir.join(rel).display());
        }
    }
    if let Some(path) = &args.docker_daemon_json {
        write_config(path, docker_daemon_json(&mirror)?.as_bytes())?;
        println!("{}", path.display());
    }
    Ok(())
}

/// Write under a temporary name beside `path`, sync, rename: never a half-written config.
fn write_config(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().context("a config path has a parent directory")?;
    fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    write_atomic_mode(path, bytes, 0o644).with_context(|| format!("failed to write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registries() -> BTreeSet<String> {
        ["docker.io", "example.com", "harbor.corp:8443"]
            .into_iter()
            .map(String::from)
            .collect()
    }

    #[test]
    fn hosts_toml_points_every_registry_at_the_mirror() {
        let mirror = Mirror::new("http://10.213.7.11:5000", false, None).unwrap();
        let files = containerd_hosts(&registries(), &mirror).unwrap();
        assert_eq!(files.len(), 3);
        for (path, text) in &files {
            let doc: toml::Table = text.parse().unwrap_or_else(|e| panic!("{path}: {e}\n{text}"));
            let host = &doc["host"]["http://10.213.7.11:5000"];
            let caps: Vec<&str> = host["capabilities"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap())
                .collect();
            assert_eq!(
                caps,
                ["pull", "resolve"],
                "{path}: tag pulls must resolve through the mirror"
            );
            assert!(host.get("skip_verify").is_none());
        }
        let (path, text) = &files[0];
        assert_eq!(path, "docker.io/hosts.toml");
        let doc: toml::Table = text.parse().unwrap();
        assert_eq!(doc["server"].as_str(), Some("https://registry-1.docker.io"));
        let (path, text) = &files[2];
        assert_eq!(path, "harbor.corp:8443/hosts.toml");
        let doc: toml::Table = text.parse().unwrap();
        assert_eq!(doc["server"].as_str(), Some("https://harbor.corp:8443"));
    }

    #[test]
    fn tls_options_are_rendered_only_when_asked() {
        let mirror = Mirror::new("https://mirror.local:5000/", true, Some("/etc/delivery/ca.pem".into())).unwrap();
        let (_, text) = &containerd_hosts(&registries(), &mirror).unwrap()[0];
        let doc: toml::Table = text.parse().unwrap();
        let host = &doc["host"]["https://mirror.local:5000"];
        assert_eq!(host["skip_verify"].as_bool(), Some(true));
        assert_eq!(host["ca"].as_str(), Some("/etc/delivery/ca.pem"));
    }

    #[test]
    fn daemon_json_is_valid_json_with_the_mirror() {
        let plain = docker_daemon_json(&Mirror::new("http://10.0.0.1:5000", false, None).unwrap()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&plain).unwrap();
        assert_eq!(v["registry-mirrors"][0], "http://10.0.0.1:5000");
        assert_eq!(v["insecure-registries"][0], "10.0.0.1:5000");
        let tls = docker_daemon_json(&Mirror::new("https://m.local:5000", false, None).unwrap()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&tls).unwrap();
        assert!(v.get("insecure-registries").is_none());
    }

    #[test]
    fn bad_mirror_urls_are_refused() {
        for bad in [
            "10.0.0.1:5000",
            "ftp://x:1",
            "http://",
            "http://a b:5000",
            "http://x:5000/path",
        ] {
            assert!(Mirror::new(bad, false, None).is_err(), "{bad}");
        }
    }
}
