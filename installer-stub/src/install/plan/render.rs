//! The plan as people read it: `install --dry-run` (and every run, before it asks to go on)
//! prints what goes where and which steps run on which hosts, in order.

use super::{short, Mode, Plan, HOOK_PHASES};

impl Plan {
    /// The files part of the printed plan: what goes where.
    fn render_files(&self, s: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(s, "\nFiles (every host keeps them under {}):", self.root);
        if self.hosts.iter().any(|h| h.steps.iter().any(|s| s == "registry")) {
            let _ = writeln!(
                s,
                "  {:<12} {:>10}  -> {} on {}; serves {} image(s) of {} on {}",
                "bundle file",
                terminal::bytes(self.bundle.file_bytes),
                self.registry.bundle_path,
                self.registry.host,
                self.registry.images,
                if self.registry.domains.is_empty() {
                    "no registry".to_string()
                } else {
                    self.registry.domains.join(", ")
                },
                self.registry.endpoint
            );
        }
        for p in &self.payloads {
            let to: Vec<&str> = self
                .hosts
                .iter()
                .filter(|h| h.payload.as_deref() == Some(&p.name))
                .map(|h| h.address.as_str())
                .collect();
            if to.is_empty() {
                continue;
            }
            let what = if p.prefixes == [""] {
                "every file but hooks/".to_string()
            } else {
                p.prefixes.join(", ")
            };
            let _ = writeln!(
                s,
                "  {:<12} {:>10}  {} file(s) ({what}) -> {}/files on {}",
                format!("{}.tar", p.name),
                terminal::bytes(p.bytes),
                p.files,
                self.root,
                to.join(", ")
            );
        }
        let _ = writeln!(
            s,
            "  {:<12} {:>10}  containerd hosts.toml per registry -> {}/certs.d on every master and node",
            "mirror", "", self.root
        );
    }

    /// The plan for people: what goes where, in which order.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let verb = match self.mode {
            Mode::Install => "install",
            Mode::AddNode => "add-node",
            Mode::Reset => "reset",
        };
        let _ = writeln!(
            s,
            "Plan: {verb} {} {} (bundle {}) on cluster `{}`, {} host(s)",
            self.bundle.name,
            self.bundle.version,
            short(&self.bundle.id),
            self.cluster,
            self.hosts.len()
        );
        if self.mode != Mode::Reset {
            self.render_files(&mut s);
        }
        let _ = writeln!(s, "\nSteps, in order:");
        let registry = self.hosts.iter().filter(|h| h.steps.iter().any(|s| s == "registry"));
        for h in registry {
            let _ = writeln!(s, "  registry     on {}: start the registry service", h.address);
        }
        let copy: Vec<&str> = self
            .hosts
            .iter()
            .filter(|h| h.payload.is_some())
            .map(|h| h.address.as_str())
            .collect();
        if !copy.is_empty() {
            let _ = writeln!(s, "  copy         on {} (in parallel)", copy.join(", "));
        }
        for (step, what) in &self.kind_steps {
            let on: Vec<&str> = self
                .hosts
                .iter()
                .filter(|h| h.steps.iter().any(|s| s == step))
                .map(|h| h.address.as_str())
                .collect();
            let _ = writeln!(s, "  {step:<12} on {}: {what}", on.join(", "));
        }
        for phase in HOOK_PHASES {
            let hooks: Vec<&str> = self.hooks_of(phase).map(|h| h.path.as_str()).collect();
            let on: Vec<&str> = self
                .hosts
                .iter()
                .filter(|h| h.steps.iter().any(|s| s.starts_with(&format!("hook:{phase}/"))))
                .map(|h| h.address.as_str())
                .collect();
            if phase == "check" || hooks.is_empty() || on.is_empty() {
                continue;
            }
            let order = match phase {
                "join-master" => "one at a time",
                "init" => "first master",
                "pre-join" => "first master, before joins",
                _ => "in parallel",
            };
            let _ = writeln!(s, "  {phase:<12} on {} ({order}): {}", on.join(", "), hooks.join(", "));
        }
        if let Some(h) = self.hosts.iter().find(|h| h.steps.iter().any(|s| s == "launch")) {
            for cmd in &self.launch {
                let _ = writeln!(s, "  launch       on {}: {cmd}", h.address);
            }
        }
        let clean: Vec<&str> = self
            .hosts
            .iter()
            .filter(|h| h.steps.iter().any(|s| s == "clean"))
            .map(|h| h.address.as_str())
            .collect();
        if !clean.is_empty() {
            let _ = writeln!(
                s,
                "  clean        on {}: the registry stopped, {} removed; then forgotten by the journal",
                clean.join(", "),
                self.root
            );
        }
        let checks: Vec<&str> = self.hooks_of("check").map(|h| h.path.as_str()).collect();
        if self.mode != Mode::Reset {
            let _ = writeln!(
                s,
                "  check        on every host{}; the registry answers for every image",
                if checks.is_empty() {
                    String::new()
                } else {
                    format!(": {}", checks.join(", "))
                }
            );
        }
        let _ = writeln!(s, "\nHosts:");
        for h in &self.hosts {
            let _ = writeln!(
                s,
                "  {:<16} {:<22} {}",
                h.address,
                h.roles.join(","),
                h.steps.join(" > ")
            );
        }
        s
    }
}
