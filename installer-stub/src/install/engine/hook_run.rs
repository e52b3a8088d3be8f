//! The bundle's hooks on a host: the variables they are rendered with, their environment, the
//! run (output to the log with published values redacted), and the values they publish.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};

use crate::clusterfile::{Host, Role};
use crate::install::hooks::{self, BundleVars, ClusterVars, HookContext, HostVars, Paths, RegistryVars};
use crate::install::plan::{self, Hook};
use crate::remote::{last_lines, Remote};

use super::Engine;

const PUBLISH: &str = "state/.publish";

impl Engine<'_> {
    pub(super) fn host_name(&self, address: &str, i: Option<usize>) -> String {
        if let Some(f) = i.and_then(|i| self.facts.lock().expect("no panics while locked")[i].clone()) {
            return f.hostname;
        }
        self.journal
            .lock()
            .expect("no panics while locked")
            .hosts
            .get(address)
            .and_then(|h| h.hostname.clone())
            .unwrap_or_else(|| address.to_string())
    }

    pub(super) fn context(&self, i: usize) -> HookContext {
        let c = self.s.cluster;
        let p = self.s.plan;
        let index_of = |a: &str| p.hosts.iter().position(|h| h.address == a);
        let vars = |h: &Host| {
            let a = h.address.to_string();
            HostVars {
                name: self.host_name(&a, index_of(&a)),
                address: a,
                roles: plan::role_names(h),
            }
        };
        let mut env = self.s.manifest.bundle.env.clone();
        env.extend(c.env.clone());
        // Not in the literal below: a guard there would be held while `kind_context` takes the
        // journal's lock for a host this run does not target (add-node, check).
        let published = self.journal.lock().expect("no panics while locked").published.clone();
        let kinds = self.s.kind.hook_vars(&self.kind_context());
        HookContext {
            cluster: ClusterVars { name: c.name.clone() },
            host: vars(self.s.targets[i]),
            hosts: c.hosts.iter().map(vars).collect(),
            first_master: c.first_master().address.to_string(),
            masters: c.masters().map(|h| h.address.to_string()).collect(),
            nodes: c
                .nodes()
                .filter(|h| !h.has_role(Role::Master))
                .map(|h| h.address.to_string())
                .collect(),
            registry: RegistryVars {
                address: c.registry.host.to_string(),
                port: c.registry.port,
                endpoint: p.registry.endpoint.clone(),
                domains: p.registry.domains.clone(),
                images: self.s.manifest.images.iter().map(|i| i.name.clone()).collect(),
                digests: self
                    .s
                    .manifest
                    .images
                    .iter()
                    .map(|i| (i.name.clone(), i.digest.to_string()))
                    .collect(),
            },
            paths: Paths::under(&p.root),
            bundle: BundleVars {
                name: p.bundle.name.clone(),
                version: p.bundle.version.clone(),
                id: p.bundle.id.clone(),
            },
            env,
            published,
            kinds,
        }
    }

    pub(super) fn hook_env(&self, ctx: &HookContext) -> Vec<(String, String)> {
        let root = &self.s.plan.root;
        let mut env: Vec<(String, String)> = ctx
            .env
            .iter()
            .filter(|(k, _)| {
                k.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        env.extend([
            ("DELIVERY_PUBLISH".to_string(), format!("{root}/{PUBLISH}")),
            ("DELIVERY_ROOT".to_string(), root.clone()),
            ("DELIVERY_FILES".to_string(), ctx.paths.files.clone()),
            ("DELIVERY_CLUSTER".to_string(), ctx.cluster.name.clone()),
            ("DELIVERY_HOST".to_string(), ctx.host.address.clone()),
            ("DELIVERY_REGISTRY".to_string(), ctx.registry.endpoint.clone()),
        ]);
        env
    }

    /// Renders and runs one hook, then collects what it published.
    pub(super) fn hook(&self, i: usize, hook: &Hook) -> bool {
        let step = hook.step();
        let join = hook.phase == "join-master" || hook.phase == "join-node";
        // prepare hooks bring a host's services up (after a reboot too) and pre-join hooks make
        // fresh join credentials: they run every time; init and join hooks run once.
        let always = hook.phase == "prepare" || hook.phase == "pre-join";
        self.step(i, &step, always, |r| {
            if join {
                if let Some(reason) = self.blocked.lock().expect("no panics while locked").clone() {
                    bail!(reason);
                }
            }
            let ctx = self.context(i);
            let source = self.hook_sources.lock().expect("no panics while locked")[&hook.path].clone();
            let rendered = hooks::render(&hook.path, &source, &ctx)?;
            let env = self.hook_env(&ctx);
            self.run_logged(
                r,
                i,
                &step,
                &hooks::script(&hook.path, &rendered, &ctx.paths)?,
                &env,
                &ctx.published,
            )
            .with_context(|| format!("hook {}", hook.path))?;
            let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let out = r.run_ok(
                "reading published values",
                "cat \"$DELIVERY_PUBLISH\" 2>/dev/null || true\nrm -f \"$DELIVERY_PUBLISH\"\n",
                &env_refs,
            )?;
            let values = hooks::parse_published(&hook.path, &out)?;
            if values.is_empty() {
                return Ok(String::new());
            }
            let keys: Vec<String> = values.keys().cloned().collect();
            let mut j = self.journal.lock().expect("no panics while locked");
            j.published.extend(values);
            self.save_journal(&j);
            Ok(format!("published {}", keys.join(", ")))
        })
    }

    /// Runs a script, every output line to the log file (published values redacted); fails
    /// with the last lines of output when it exits non-zero.
    pub(super) fn run_logged(
        &self,
        r: &mut dyn Remote,
        i: usize,
        step: &str,
        script: &str,
        env: &[(String, String)],
        published: &BTreeMap<String, String>,
    ) -> Result<()> {
        let address = self.address(i).to_string();
        let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (status, tail) = r.run(script, &env_refs, &mut |line| {
            self.s.log.write(&address, step, &hooks::redact(line, published));
        })?;
        if status != 0 {
            bail!(
                "exited with status {status}: {}",
                last_lines(&hooks::redact(&tail, published), 6)
            );
        }
        Ok(())
    }
}
