//! `COPY https://...` and `APP name https://...`: files downloaded while the bundle is built
//! (sealer's remote sources), streamed to a scratch directory with their SHA-256 computed on
//! the way. A URL ending in `#sha256=<hex>` must match it; `--require-checksums` refuses a URL
//! without one. Every download's URL and digest go into the bundle's manifest, so a customer can
//! see what came from where.
//!
//! The trust roots are the system's (as for registries); plain `http://` works but is warned
//! about unless a checksum pins it. Redirects are followed (at most 5), sizes capped.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bundle_format::digest::Hasher;
use bundle_format::manifest::Download;
use ureq::tls::TlsConfig;

use crate::kubefile::{Kubefile, Pos};

/// A downloaded file larger than this is an error.
pub const MAX_DOWNLOAD: u64 = 8 << 30;

/// Whether a COPY or APP source is a URL.
pub fn is_remote(text: &str) -> bool {
    let lower = text.get(..8).unwrap_or(text).to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

/// What was downloaded: URL as written (fragment included) -> the file and the record.
#[derive(Debug, Default)]
pub struct Downloads {
    pub files: BTreeMap<String, PathBuf>,
    pub records: Vec<Download>,
}

/// Every URL source of `kubefile`, downloaded into `scratch/downloads`. All problems (missing
/// checksums, failed downloads, mismatches) are reported together, each at its Kubefile line.
pub fn fetch_all(kubefile: &Kubefile, scratch: &Path, require_checksums: bool) -> Result<Downloads> {
    let mut urls: BTreeMap<&str, Pos> = BTreeMap::new();
    let sources = kubefile
        .copies
        .iter()
        .flat_map(|c| c.sources.iter())
        .chain(kubefile.apps.iter().flat_map(|a| a.sources.iter()));
    for (text, pos) in sources {
        if is_remote(text) {
            urls.entry(text.as_str()).or_insert(*pos);
        }
    }
    let mut out = Downloads::default();
    if urls.is_empty() {
        return Ok(out);
    }
    let agent = agent()?;
    let mut errors = Vec::new();
    for (i, (text, pos)) in urls.iter().enumerate() {
        let at = format!("{}:{pos}", kubefile.path.display());
        let (url, want) = split_checksum(text);
        if want.is_none() && require_checksums {
            errors.push(format!(
                "{at}: `{text}` has no checksum and --require-checksums is set\n  hint: append #sha256=<hex digest of the file>"
            ));
            continue;
        }
        if let Some(w) = want {
            if w.len() != 64 || !w.bytes().all(|b| b.is_ascii_hexdigit()) {
                errors.push(format!("{at}: `{text}`: #sha256= needs 64 hex digits, got `{w}`"));
                continue;
            }
        }
        let dir = scratch.join(format!("downloads/{i}"));
        let dest = dir.join(file_name(url));
        match get(&agent, url, &dir, &dest) {
            Ok(sha) => {
                if let Some(w) = want {
                    if !w.eq_ignore_ascii_case(&sha) {
                        errors.push(format!(
                            "{at}: `{url}` has sha256 {sha}, but the Kubefile pins {w}\n  hint: the file changed upstream, or the pin is wrong; check which before changing it"
                        ));
                        continue;
                    }
                } else {
                    terminal::log(format_args!(
                        "warning: {at}: downloaded {url} (sha256 {sha}) without a checksum: pin it by writing {url}#sha256={sha}"
                    ));
                }
                out.files.insert(text.to_string(), dest);
                out.records.push(Download {
                    url: url.to_string(),
                    sha256: sha,
                });
            }
            Err(e) => errors.push(format!("{at}: failed to download {url}: {e:#}")),
        }
    }
    if !errors.is_empty() {
        bail!("{}\n{} download error(s)", errors.join("\n"), errors.len());
    }
    Ok(out)
}

/// (URL without the fragment, the `#sha256=` digest if any).
fn split_checksum(text: &str) -> (&str, Option<&str>) {
    match text.split_once('#') {
        Some((url, frag)) => (url, frag.strip_prefix("sha256=")),
        None => (text, None),
    }
}

/// The file name a URL's path ends in (`download` when it ends in `/`).
fn file_name(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let after_host = path.splitn(4, '/').nth(3).unwrap_or("");
    match after_host.rsplit('/').next() {
        Some(n) if !n.is_empty() && n != "." && n != ".." => n.to_string(),
        _ => "download".to_string(),
    }
}

fn agent() -> Result<ureq::Agent> {
    let roots = crate::fetch::client::root_certs(None)?;
    Ok(ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(5)
        .user_agent(concat!("delivery/", env!("CARGO_PKG_VERSION")))
        .tls_config(TlsConfig::builder().root_certs(roots).build())
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_per_read(Some(Duration::from_secs(120)))
        .build()
        .new_agent())
}

/// Streams `url` to `dest` (under a temporary name, renamed when whole); returns its sha256.
fn get(agent: &ureq::Agent, url: &str, dir: &Path, dest: &Path) -> Result<String> {
    if url.to_ascii_lowercase().starts_with("http://") {
        terminal::log(format_args!(
            "note: {url} is plain http: only a #sha256= pin protects it"
        ));
    }
    let resp = agent.get(url).call()?;
    let status = resp.status();
    if status != 200 {
        bail!("the server answered {status}");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    let mut tmp =
        tempfile::NamedTempFile::new_in(dir).with_context(|| format!("failed to write in {}", dir.display()))?;
    let mut reader = resp.into_body().into_reader().take(MAX_DOWNLOAD + 1);
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf).context("the download broke off")?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > MAX_DOWNLOAD {
            bail!("larger than {} GiB", MAX_DOWNLOAD >> 30);
        }
        hasher.update(&buf[..n]);
        tmp.write_all(&buf[..n])
            .with_context(|| format!("failed to write {}", dest.display()))?;
    }
    tmp.persist(dest)
        .with_context(|| format!("failed to write {}", dest.display()))?;
    Ok(hasher.finish().hex())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_names_and_pins() {
        assert!(is_remote("https://charts/mysql.tgz"));
        assert!(is_remote("HTTP://x/y"));
        assert!(!is_remote("local://x"));
        assert!(!is_remote("charts/x"));
        assert_eq!(file_name("https://example.com/a/b/mysql.tgz?x=1"), "mysql.tgz");
        assert_eq!(file_name("https://example.com/"), "download");
        assert_eq!(file_name("https://example.com"), "download");
        assert_eq!(
            split_checksum("https://e/x.yaml#sha256=ab"),
            ("https://e/x.yaml", Some("ab"))
        );
        assert_eq!(split_checksum("https://e/x.yaml"), ("https://e/x.yaml", None));
    }
}
