//! The master's own work before any host changes: every byte of the bundle verified, the
//! bundle unpacked once, the payload tars and the stub made, the kind's work on the master,
//! the hooks' sources read; and the bundle's file hash, kept in the journal.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bundle_format::Verified;

use crate::install::payload;
use crate::kinds::KindContext;

use super::Engine;

impl Engine<'_> {
    /// On the master: verify every byte, unpack (once per bundle), make the payload tars.
    pub fn prepare_master(&self, verified: &Verified) -> Result<()> {
        let tree = self.unpack(verified)?;
        let log = self.s.log;
        let names: BTreeSet<&str> = self.s.plan.hosts.iter().filter_map(|h| h.payload.as_deref()).collect();
        for name in names {
            let p = self.s.plan.payload(name);
            let built = payload::build(self.s.manifest, &tree, p, &self.s.state_dir.join("payload"))?;
            log.write(
                "",
                "payload",
                &format!("{} {} sha256:{}", built.path.display(), built.size, built.sha256),
            );
            self.built
                .lock()
                .expect("no panics while locked")
                .insert(name.to_string(), built);
        }
        let stub = payload::stub(
            &self.s.bundle_path,
            &self.s.manifest.stub,
            &self.s.state_dir.join("payload"),
        )?;
        *self.stub.lock().expect("no panics while locked") = Some(stub);
        if let Some((step, said)) = self.s.kind.prepare_master(&self.kind_context(), &tree)? {
            log.say("", step, &said);
        }
        Ok(())
    }

    /// On the master: verify every byte, unpack (once per bundle), read the hooks; returns
    /// where the bundle is unpacked. All that `reset` needs before it runs hooks.
    pub fn unpack(&self, verified: &Verified) -> Result<PathBuf> {
        let log = self.s.log;
        let reporter = terminal::Reporter::new(log.json_mode());
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        log.say("", "verify", "checking every byte of the bundle");
        verified.verify_contents(threads, &reporter)?;
        reporter.finish();
        let tree = self.s.state_dir.join("bundle");
        let id_file = self.s.state_dir.join("bundle.id");
        let id = &self.s.plan.bundle.id;
        if fs::read_to_string(&id_file).ok().as_deref().map(str::trim) != Some(id.as_str()) || !tree.is_dir() {
            log.say("", "unpack", &format!("unpacking the bundle to {}", tree.display()));
            verified.extract(&tree, true, &reporter)?;
            reporter.finish();
            bundle_format::io::write_atomic(&id_file, format!("{id}\n").as_bytes())
                .with_context(|| format!("failed to write {}", id_file.display()))?;
        }
        self.load_hooks(&tree)?;
        Ok(tree)
    }

    /// What the bundle's kind sees of this install.
    pub(super) fn kind_context(&self) -> KindContext<'_> {
        let p = self.s.plan;
        let host_names = self
            .s
            .cluster
            .hosts
            .iter()
            .map(|h| {
                let a = h.address.to_string();
                let name = self.host_name(&a, p.hosts.iter().position(|x| x.address == a));
                (a, name)
            })
            .collect();
        KindContext {
            cluster: self.s.cluster,
            state_dir: &self.s.state_dir,
            host_names,
        }
    }

    pub(super) fn load_hooks(&self, tree: &Path) -> Result<()> {
        let mut sources = self.hook_sources.lock().expect("no panics while locked");
        for hook in &self.s.plan.hooks {
            let path = tree.join(&hook.path);
            let text = fs::read_to_string(&path)
                .with_context(|| format!("failed to read hook {} (unpacked at {})", hook.path, path.display()))?;
            sources.insert(hook.path.clone(), text);
        }
        Ok(())
    }

    pub(super) fn bundle_sha256(&self) -> Result<String> {
        if let Some(s) = self
            .journal
            .lock()
            .expect("no panics while locked")
            .bundle
            .file_sha256
            .clone()
        {
            return Ok(s);
        }
        self.s.log.say(
            "",
            "registry",
            "hashing the bundle file for the copy to the registry host",
        );
        let sha = payload::file_sha256(&self.s.bundle_path)?;
        let mut j = self.journal.lock().expect("no panics while locked");
        j.bundle.file_sha256 = Some(sha.clone());
        self.save_journal(&j);
        Ok(sha)
    }
}
