//! The engine's own steps on a host: `registry` (the bundle file and its registry service),
//! `copy` (payload, stub, containerd mirror configuration), `launch` and `check`.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};
use bundle_format::digest::Digest;

use crate::commands::node_config::{containerd_hosts, Mirror};
use crate::install::hooks;
use crate::install::plan;
use crate::remote::{last_lines, Remote};

use super::Engine;

impl Engine<'_> {
    pub(super) fn is_local(&self, i: usize) -> bool {
        self.facts.lock().expect("no panics while locked")[i]
            .as_ref()
            .is_some_and(|f| f.installer_id == self.installer_id)
    }

    /// The bundle file on the registry host, then its registry service started (or kept). The
    /// file `<bundle>.id` beside it, written last, says which bundle is complete there.
    pub(super) fn registry(&self, r: &mut dyn Remote, i: usize) -> Result<String> {
        let plan = self.s.plan;
        let dest = &plan.registry.bundle_path;
        let id_file = format!("{dest}.id");
        let id_line = format!("{}\n", plan.bundle.id);
        let id_sha = Digest::of(id_line.as_bytes()).hex();
        let mut detail = String::new();
        if r.sha256(&id_file)?.as_deref() != Some(id_sha.as_str()) {
            if self.is_local(i) {
                place_local(&self.s.bundle_path, Path::new(dest))?;
                detail = format!("bundle placed at {dest}");
            } else {
                let sha = self.bundle_sha256()?;
                let mut file = fs::File::open(&self.s.bundle_path)
                    .with_context(|| format!("failed to open {}", self.s.bundle_path.display()))?;
                let size = plan.bundle.file_bytes;
                let bar = self.s.log.bars.add(&format!("{} bundle", self.address(i)), size);
                r.upload(&mut file, size, dest, &sha, &mut |n| bar.set(n))?;
                bar.finish();
                detail = format!("bundle copied to {dest} ({})", terminal::bytes(size));
            }
            r.upload(
                &mut id_line.as_bytes(),
                id_line.len() as u64,
                &id_file,
                &id_sha,
                &mut |_| {},
            )?;
        }
        let out = r.run_ok(
            "starting the registry service",
            "chmod 0755 \"$DEST\"\n\"$DEST\" registry start --listen \"0.0.0.0:$PORT\" --state-dir \"$R/registry\" --fingerprint \"$FP\"\n",
            &[
                ("DEST", dest),
                ("PORT", &self.s.cluster.registry.port.to_string()),
                ("R", &plan.root),
                ("FP", &self.s.signer),
            ],
        )?;
        let started = last_lines(&out, 1);
        Ok(if detail.is_empty() {
            started
        } else {
            format!("{detail}; {started}")
        })
    }

    /// The host's payload (uploaded unless already there, then unpacked unless already
    /// unpacked) and its containerd mirror configuration.
    pub(super) fn copy(&self, r: &mut dyn Remote, i: usize) -> Result<String> {
        let plan = self.s.plan;
        let root = &plan.root;
        let name = plan.hosts[i]
            .payload
            .clone()
            .expect("copy is planned for hosts with a payload");
        let built = self.built.lock().expect("no panics while locked")[&name].clone();
        let remote_tar = format!("{root}/payload/{name}.tar");
        let mut detail = format!("{name}.tar ({})", terminal::bytes(built.size));
        if r.sha256(&remote_tar)?.as_deref() == Some(built.sha256.as_str()) {
            detail.push_str(" already there");
        } else {
            let mut file =
                fs::File::open(&built.path).with_context(|| format!("failed to open {}", built.path.display()))?;
            let bar = self
                .s
                .log
                .bars
                .add(&format!("{} {name}.tar", self.address(i)), built.size);
            r.upload(&mut file, built.size, &remote_tar, &built.sha256, &mut |n| bar.set(n))?;
            bar.finish();
            detail.push_str(" copied");
        }
        let stub = self
            .stub
            .lock()
            .expect("no panics while locked")
            .clone()
            .expect("made by prepare_master");
        let remote_stub = format!("{root}/bin/delivery");
        if r.sha256(&remote_stub)?.as_deref() != Some(stub.sha256.as_str()) {
            let mut file =
                fs::File::open(&stub.path).with_context(|| format!("failed to open {}", stub.path.display()))?;
            r.upload(&mut file, stub.size, &remote_stub, &stub.sha256, &mut |_| {})?;
            r.run_ok(
                "making bin/delivery executable",
                "chmod 0755 \"$STUB\"\n",
                &[("STUB", &remote_stub)],
            )?;
        }
        r.run_ok(
            "unpacking the payload",
            UNPACK,
            &[("R", root), ("NAME", &name), ("WANT", &built.sha256)],
        )?;
        let mirror = Mirror::new(&format!("http://{}", plan.registry.endpoint), false, None)?;
        let domains: BTreeSet<String> = plan.registry.domains.iter().cloned().collect();
        let mut script = String::from("set -eu\nD=\"$R/certs.d\"\nrm -rf \"$D.new\"\nmkdir -p \"$D.new\"\n");
        for (rel, text) in containerd_hosts(&domains, &mirror)? {
            // Registry names are checked hostnames (no quotes, no `$`); the heredoc is quoted,
            // so only its terminator line could end it early.
            if text.lines().any(|l| l == "DELIVERY_EOF")
                || !bundle_format::reference::is_registry(rel.trim_end_matches("/hosts.toml"))
            {
                bail!("refusing to write {rel}: it would break out of the configuration script");
            }
            let dir = rel.rsplit_once('/').map_or("", |(d, _)| d);
            script.push_str(&format!(
                "mkdir -p \"$D.new/{dir}\"\ncat > \"$D.new/{rel}\" <<'DELIVERY_EOF'\n{text}\nDELIVERY_EOF\n"
            ));
        }
        script.push_str("rm -rf \"$D.old\"\nif [ -d \"$D\" ]; then mv \"$D\" \"$D.old\"; fi\nmv \"$D.new\" \"$D\"\nrm -rf \"$D.old\"\n");
        r.run_ok("writing the containerd mirror configuration", &script, &[("R", root)])?;
        Ok(detail)
    }

    pub(super) fn launch(&self, r: &mut dyn Remote, i: usize) -> Result<String> {
        let ctx = self.context(i);
        let env = self.hook_env(&ctx);
        for cmd in &self.s.plan.launch {
            let script = format!("set -eu\ncd '{}'\n{cmd}\n", ctx.paths.files);
            self.run_logged(r, i, "launch", &script, &env, &ctx.published)
                .with_context(|| format!("launch command `{cmd}`"))?;
        }
        Ok(format!("{} command(s)", self.s.plan.launch.len()))
    }

    pub(super) fn check(&self, r: &mut dyn Remote, i: usize) -> Result<String> {
        let host = self.s.targets[i];
        let ctx = self.context(i);
        let env = self.hook_env(&ctx);
        let mut ran = 0;
        for hook in self.s.plan.hooks_of("check") {
            if !plan::hook_runs_on("check", host, false) {
                continue;
            }
            let source = self.hook_sources.lock().expect("no panics while locked")[&hook.path].clone();
            let rendered = hooks::render(&hook.path, &source, &ctx)?;
            self.run_logged(
                r,
                i,
                "check",
                &hooks::script(&hook.path, &rendered, &ctx.paths)?,
                &env,
                &ctx.published,
            )
            .with_context(|| format!("check hook {}", hook.path))?;
            ran += 1;
        }
        if ran == 0 {
            r.run_ok("reaching the host", "true\n", &[])?;
        }
        Ok(format!("{ran} check hook(s) passed"))
    }
}

/// Unpacks `$R/payload/$NAME.tar` into `$R/files` unless the payload with digest `$WANT` is
/// already there; a new tree replaces the old one only once it is complete.
const UNPACK: &str = r#"set -eu
if [ "$(cat "$R/files/.payload" 2>/dev/null || true)" = "$WANT" ]; then exit 0; fi
rm -rf "$R/.files.new" "$R/.files.old"
mkdir -p "$R/.files.new"
tar -xf "$R/payload/$NAME.tar" -C "$R/.files.new"
echo "$WANT" > "$R/.files.new/.payload"
sync
if [ -d "$R/files" ]; then mv "$R/files" "$R/.files.old"; fi
mv "$R/.files.new" "$R/files"
rm -rf "$R/.files.old"
"#;

/// Puts the bundle at `dest` on this machine: a hard link when on the same file system, else a
/// copy; through a temp name either way.
fn place_local(src: &Path, dest: &Path) -> Result<()> {
    if let Some(dir) = dest.parent() {
        fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    }
    if fs::canonicalize(src).ok() == fs::canonicalize(dest).ok() {
        return Ok(());
    }
    let tmp = dest.with_extension(format!("run.{}.tmp", std::process::id()));
    let _ = fs::remove_file(&tmp);
    if fs::hard_link(src, &tmp).is_err() {
        fs::copy(src, &tmp).with_context(|| format!("failed to copy {} to {}", src.display(), tmp.display()))?;
        fs::File::open(&tmp)?.sync_all()?;
    }
    fs::rename(&tmp, dest).with_context(|| format!("failed to place the bundle at {}", dest.display()))?;
    Ok(())
}
