//! The install journal: what has been done on which host, for which bundle. It lives on the
//! master (`<state-dir>/journal.json`, mode 0600 because published hook values such as join
//! tokens are in it), is rewritten atomically (temp file, fsync, rename) after every step, and
//! is what makes a re-run resume: a step recorded `done` for this bundle is not done again.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

pub const JOURNAL_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Journal {
    pub version: u32,
    pub cluster: String,
    pub bundle: BundleRecord,
    /// By address, as the Clusterfile writes it after parsing.
    pub hosts: BTreeMap<String, HostRecord>,
    /// Values published by hooks (`KEY=VALUE` lines in `$DELIVERY_PUBLISH`).
    pub published: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleRecord {
    /// [`bundle_format::Verified::id`].
    pub id: String,
    pub name: String,
    pub version: String,
    /// SHA-256 of the whole bundle file, once computed (the registry host's copy is checked
    /// against it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_sha256: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    pub roles: Vec<String>,
    /// By step name (`copy`, `registry`, `hook:prepare/10-x.sh`, `launch`, `check`).
    pub steps: BTreeMap<String, StepRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepRecord {
    pub state: StepState,
    /// RFC 3339, UTC.
    pub at: String,
    /// What failed (the error), or a short note on what was done.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepState {
    Done,
    Failed,
    /// Not attempted because something it depends on failed.
    Blocked,
}

impl StepState {
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Done => "done",
            StepState::Failed => "failed",
            StepState::Blocked => "blocked",
        }
    }
}

impl Journal {
    pub fn new(cluster: &str, bundle: BundleRecord) -> Journal {
        Journal {
            version: JOURNAL_VERSION,
            cluster: cluster.to_string(),
            bundle,
            hosts: BTreeMap::new(),
            published: BTreeMap::new(),
        }
    }

    /// Reads the journal, or `None` when there is none yet.
    pub fn load(path: &Path) -> Result<Option<Journal>> {
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("failed to read the journal {}", path.display())),
        };
        let journal: Journal = serde_json::from_str(&text).with_context(|| {
            format!(
                "the journal {} is damaged; move it away to start over (hosts keep what was installed)",
                path.display()
            )
        })?;
        if journal.version != JOURNAL_VERSION {
            bail!(
                "the journal {} has version {}, this installer reads version {JOURNAL_VERSION}",
                path.display(),
                journal.version
            );
        }
        Ok(Some(journal))
    }

    /// Loads the journal of `cluster` for this bundle, or starts one. A journal of another
    /// cluster or another bundle is refused: that is an upgrade or a mistake, not a resume.
    pub fn open(path: &Path, cluster: &str, bundle: BundleRecord) -> Result<Journal> {
        let Some(mut journal) = Journal::load(path)? else {
            return Ok(Journal::new(cluster, bundle));
        };
        if journal.cluster != cluster {
            bail!(
                "the journal {} belongs to cluster `{}`, not `{cluster}`; use another --state-dir for another cluster",
                path.display(),
                journal.cluster
            );
        }
        if journal.bundle.id != bundle.id {
            bail!(
                "the journal {} records an install of bundle {} {} ({}), and this is {} {} ({}); \
                 installing another bundle over a cluster is an upgrade, which this release cannot do. \
                 To install from scratch, move {} away",
                path.display(),
                journal.bundle.name,
                journal.bundle.version,
                journal.bundle.id,
                bundle.name,
                bundle.version,
                bundle.id,
                path.display()
            );
        }
        if journal.bundle.file_sha256.is_none() {
            journal.bundle.file_sha256 = bundle.file_sha256;
        }
        Ok(journal)
    }

    /// Writes the journal atomically (temp file, fsync, rename, fsync of the directory), 0600.
    pub fn save(&self, path: &Path) -> Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
        let mut text = serde_json::to_string_pretty(self).expect("a journal always serialises");
        text.push('\n');
        bundle_format::io::write_atomic(path, text.as_bytes())
            .and_then(|()| fs::File::open(dir)?.sync_all())
            .with_context(|| format!("failed to write the journal {}", path.display()))
    }

    pub fn host(&mut self, address: &str) -> &mut HostRecord {
        self.hosts.entry(address.to_string()).or_default()
    }

    pub fn is_done(&self, address: &str, step: &str) -> bool {
        self.hosts
            .get(address)
            .and_then(|h| h.steps.get(step))
            .is_some_and(|s| s.state == StepState::Done)
    }

    /// Whether any step ever succeeded on this host: it is part of the cluster.
    pub fn knows(&self, address: &str) -> bool {
        self.hosts
            .get(address)
            .is_some_and(|h| h.steps.values().any(|s| s.state == StepState::Done))
    }

    pub fn record(&mut self, address: &str, step: &str, state: StepState, detail: String) {
        self.host(address).steps.insert(
            step.to_string(),
            StepRecord {
                state,
                at: terminal::now(),
                detail,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(id: &str) -> BundleRecord {
        BundleRecord {
            id: id.into(),
            name: "demo".into(),
            version: "1.0".into(),
            file_sha256: None,
        }
    }

    #[test]
    fn saves_atomically_with_private_mode_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/journal.json");
        let mut j = Journal::open(&path, "prod", bundle("sha256:aa")).unwrap();
        j.record("10.0.0.1", "copy", StepState::Done, String::new());
        j.published.insert("TOKEN".into(), "s3cret".into());
        j.save(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from("journal.json")],
            "no temp file left"
        );
        let again = Journal::open(&path, "prod", bundle("sha256:aa")).unwrap();
        assert_eq!(again, j);
        assert!(again.is_done("10.0.0.1", "copy"));
        assert!(!again.is_done("10.0.0.1", "launch"));
        assert!(again.knows("10.0.0.1"));
        assert!(!again.knows("10.0.0.2"));
    }

    #[test]
    fn refuses_another_bundle_or_cluster() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.json");
        Journal::new("prod", bundle("sha256:aa")).save(&path).unwrap();
        let e = Journal::open(&path, "prod", bundle("sha256:bb"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("upgrade") && e.contains("sha256:aa") && e.contains("sha256:bb"),
            "{e}"
        );
        let e = Journal::open(&path, "test", bundle("sha256:aa"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cluster `prod`"), "{e}");
    }

    #[test]
    fn a_damaged_journal_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.json");
        fs::write(&path, "{\"version\": 1, \"clus").unwrap();
        let e = format!("{:#}", Journal::load(&path).unwrap_err());
        assert!(e.contains("journal.json") && e.contains("damaged"), "{e}");
    }

    #[test]
    fn failed_steps_are_not_done() {
        let mut j = Journal::new("prod", bundle("sha256:aa"));
        j.record("h", "copy", StepState::Failed, "boom".into());
        assert!(!j.is_done("h", "copy"));
        assert!(!j.knows("h"));
        j.record("h", "copy", StepState::Done, String::new());
        assert!(j.is_done("h", "copy"));
    }
}
