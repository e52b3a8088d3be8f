//! FROM (the base the bundle builds on) and KUBEVERSION (the Kubernetes versions it admits).

use super::*;

impl Parser<'_> {
    pub(super) fn from(&mut self, ins: &Instruction) -> Result<(), KubefileError> {
        if let Some((_, first_line)) = &self.from {
            return Err(err!(
                self.file,
                ins.at,
                DuplicateFrom {
                    text: collect(&ins.args),
                    first_line: *first_line,
                }
            ));
        }
        // A placeholder until the base is known, so that a malformed FROM does not also
        // get every later instruction reported as coming before FROM.
        self.from = Some((Base::Scratch, ins.at.line));
        let mut words = self.expander().words(&ins.args)?;
        if words.first().is_some_and(|w| w.text.starts_with("--platform=")) {
            let w = words.remove(0);
            self.warnings.push(format!(
                "{}:{}: FROM `{}` is ignored: the platform comes from --arch",
                self.file.display(),
                w.pos,
                w.text
            ));
        }
        if words.len() != 1 {
            let problem = format!("takes exactly one argument, got {}", words.len());
            let pos = words.get(1).map_or(ins.at, |w| w.pos);
            return Err(self.bad_args(pos, "FROM", problem, &ins.args, FROM_USAGE));
        }
        let w = &words[0];
        let base = if w.text.eq_ignore_ascii_case("scratch") {
            Base::Scratch
        } else if w.text.is_empty() {
            return Err(self.bad_args(w.pos, "FROM", "path is empty", &ins.args, FROM_USAGE));
        } else {
            Base::Bundle {
                path: w.text.clone(),
                at: w.pos,
            }
        };
        self.from = Some((base, ins.at.line));
        Ok(())
    }

    pub(super) fn kubeversion(&mut self, ins: &Instruction) -> Result<(), KubefileError> {
        let text = self.expander().whole(trim(&ins.args))?;
        if text.trim().is_empty() {
            return Err(self.bad_args(
                ins.at,
                "KUBEVERSION",
                "needs a version constraint",
                &ins.args,
                KUBEVERSION_USAGE,
            ));
        }
        let at = ins.args.first().map_or(ins.at, |p| p.pos);
        if let Err(problem) = crate::kube_version::Constraint::parse(&text) {
            return Err(self.bad_args(at, "KUBEVERSION", problem.to_string(), &ins.args, KUBEVERSION_USAGE));
        }
        self.labels.insert(KUBE_VERSION_LABEL.to_string(), text.clone());
        self.kube_version = Some((text, at));
        Ok(())
    }
}
