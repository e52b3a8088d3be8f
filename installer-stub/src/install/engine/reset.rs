//! `reset` on the hosts: the bundle's `reset` hooks, then `clean`, which takes off what the
//! installer itself put there (the registry it started, its systemd unit, the install root),
//! then the hosts are forgotten by the journal. This master, when it is one of the hosts, goes
//! last: its install root is also its state directory, which the caller removes at the very end.

use anyhow::{bail, Result};
use bundle_format::Verified;

use crate::remote::Remote;

use super::Engine;

impl Engine<'_> {
    /// The bundle verified and its hooks read (no payload tars, no stub copy, no work of the
    /// bundle's kind: nothing is installed), then every host's reset hooks and `clean`, this
    /// master last; the summary; an error (exit 4) if any host failed. `whole` says the whole
    /// cluster goes (else this master may not be among the hosts).
    pub fn execute_reset(&self, verified: &Verified, whole: bool) -> Result<()> {
        let n = self.s.plan.hosts.len();
        let (local, others): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| self.is_local(i));
        if !whole && !local.is_empty() {
            bail!(
                "{} is this master itself, which keeps the cluster's state: reset it with the whole cluster \
                 (no --host), or from another master",
                self.address(local[0])
            );
        }
        self.unpack(verified)?;
        let one = |i: usize| {
            for hook in self.s.plan.hooks_of("reset") {
                if self.plan_has(i, &hook.step()) && !self.hook(i, hook) {
                    return;
                }
            }
            self.step(i, "clean", true, |r| self.clean(r, i));
        };
        self.par(&others, one);
        local.iter().for_each(|&i| one(i));
        let failed = self.failed.lock().expect("no panics while locked").clone();
        {
            let mut j = self.journal.lock().expect("no panics while locked");
            for i in (0..n).filter(|i| !failed.contains_key(i)) {
                j.hosts.remove(self.address(i));
            }
            if whole && failed.is_empty() {
                j.published.clear();
            }
            self.save_journal(&j);
        }
        self.summary(None)
    }

    /// What the installer put on host `i`, taken off.
    fn clean(&self, r: &mut dyn Remote, i: usize) -> Result<String> {
        let root = &self.s.plan.root;
        // On this master the install root is also the state directory: the caller removes it
        // once the journal and the log are final.
        let keep = self.is_local(i) && self.s.state_dir == std::path::Path::new(root);
        r.run_ok(
            "cleaning the host",
            CLEAN,
            &[("R", root), ("KEEP", if keep { "1" } else { "0" })],
        )?;
        Ok(if keep {
            format!("registry stopped; {root} emptied of the host's files (this master's state goes last)")
        } else {
            format!("registry stopped; {root} removed")
        })
    }
}

/// Stops the registry this install started on the host (its supervisor, or its systemd unit,
/// which is removed), then removes the install root `$R` and `/var/lib/delivery` when no other
/// cluster is left in it (with `KEEP=1`, only the host's files in `$R`: the directory is also
/// this master's state).
const CLEAN: &str = r#"set -eu
for stub in "$R/bundle.run" "$R/bin/delivery"; do
  if [ -x "$stub" ] && [ -d "$R/registry" ]; then
    "$stub" registry stop --state-dir "$R/registry"
    break
  fi
done
for unit in /etc/systemd/system/delivery-registry-*.service; do
  [ -f "$unit" ] || continue
  grep -qF "$R/bundle.run" "$unit" || continue
  name=${unit##*/}
  systemctl disable --now "$name" >/dev/null 2>&1 || true
  rm -f "$unit"
  systemctl daemon-reload >/dev/null 2>&1 || true
done
if [ "$KEEP" = 1 ]; then
  rm -rf "$R/files" "$R/.files.new" "$R/.files.old" "$R/certs.d" "$R/certs.d.new" "$R/certs.d.old" \
    "$R/bin" "$R/state" "$R/registry" "$R/bundle.run" "$R/bundle.run.id"
else
  rm -rf "$R"
  rmdir "${R%/*}" 2>/dev/null || true
fi
"#;
