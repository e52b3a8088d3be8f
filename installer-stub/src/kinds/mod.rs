//! Bundle kinds: what a kind of bundle adds to the generic installer (`install/`), through one
//! small interface, [`BundleKind`]: steps on a host after `copy` and before its hooks, work on
//! the master once the bundle is unpacked, and variables for the hooks. The engine knows no kind
//! by name: it asks [`detect`] for the bundle's.
//!
//! Kinds today: [`kubernetes`] (the bundle carries `kubernetes.toml`) and [`Plain`], which adds
//! nothing. A new kind (k3s, a VM appliance) is a module here and a line in [`detect`]. A
//! Clusterfile table of its own (`[kubernetes]`) is parsed with the Clusterfile, into its
//! [`kinds`](crate::clusterfile::Clusterfile::kinds) (`clusterfile/kind_tables.rs`): kinds read
//! the parsed Clusterfile, and the Clusterfile knows nothing of kinds.

pub(crate) mod kubernetes;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use bundle_format::manifest::Manifest;

use crate::clusterfile::{Clusterfile, Host};
use crate::remote::Remote;

/// What the engine tells a kind about the install at hand.
pub(crate) struct KindContext<'a> {
    pub cluster: &'a Clusterfile,
    /// The installer's state directory on this master.
    pub state_dir: &'a Path,
    /// Every host's name as the installer knows it (from preflight or the journal; its
    /// address when unknown), by address.
    pub host_names: BTreeMap<String, String>,
}

impl KindContext<'_> {
    pub fn host_name(&self, address: &str) -> String {
        self.host_names
            .get(address)
            .cloned()
            .unwrap_or_else(|| address.to_string())
    }
}

/// What a kind of bundle adds to the generic installer.
pub(crate) trait BundleKind: Sync {
    /// The kind's name (`kubernetes`): the plan's JSON says whether the bundle is of it.
    fn name(&self) -> &'static str;
    /// Steps on `host` after `copy` and before its hooks, in order.
    fn steps(&self, host: &Host) -> Vec<&'static str>;
    /// What one of those steps does, for the printed plan.
    fn describe(&self, step: &str) -> &'static str;
    /// On the master, once the bundle is unpacked at `tree`: what was done, as the step name
    /// and a line for the log, if anything.
    fn prepare_master(&self, cx: &KindContext, tree: &Path) -> Result<Option<(&'static str, String)>>;
    /// Runs one of [`BundleKind::steps`] on a host; the detail for the log.
    fn run_step(&self, step: &str, cx: &KindContext, remote: &mut dyn Remote) -> Result<String>;
    /// Variables the hooks are rendered with besides the engine's, by name.
    fn hook_vars(&self, cx: &KindContext) -> BTreeMap<&'static str, serde_json::Value>;
}

/// A bundle of no particular kind: the engine's steps and variables only.
pub(crate) struct Plain;

impl BundleKind for Plain {
    fn name(&self) -> &'static str {
        "plain"
    }

    fn steps(&self, _: &Host) -> Vec<&'static str> {
        Vec::new()
    }

    fn describe(&self, _: &str) -> &'static str {
        ""
    }

    fn prepare_master(&self, _: &KindContext, _: &Path) -> Result<Option<(&'static str, String)>> {
        Ok(None)
    }

    fn run_step(&self, step: &str, _: &KindContext, _: &mut dyn Remote) -> Result<String> {
        anyhow::bail!("a plain bundle has no step `{step}`")
    }

    fn hook_vars(&self, _: &KindContext) -> BTreeMap<&'static str, serde_json::Value> {
        BTreeMap::new()
    }
}

/// The kinds the installer knows, by name, for the plan's JSON.
pub(crate) const KNOWN: [&str; 1] = [kubernetes::NAME];

/// The kind of this bundle.
pub(crate) fn detect(manifest: &Manifest) -> Box<dyn BundleKind> {
    if kubernetes::detect(manifest) {
        Box::new(kubernetes::Kubernetes::default())
    } else {
        Box::new(Plain)
    }
}
