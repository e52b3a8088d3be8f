//! ARG, ENV, LABEL and MAINTAINER: the variables and labels of the build, `key=value` words.

use super::*;

impl Parser<'_> {
    pub(super) fn arg(&mut self, ins: &Instruction) -> Result<(), KubefileError> {
        let words = self.expander().words(&ins.args)?;
        if words.is_empty() {
            return Err(self.bad_args(ins.at, "ARG", "needs a name", &ins.args, ARG_USAGE));
        }
        for w in words {
            let (name, default) = match w.text.split_once('=') {
                Some((n, d)) => (n.to_string(), Some(d.to_string())),
                None => (w.text.clone(), None),
            };
            if !is_var_name(&name) {
                self.errors.push(err!(
                    self.file,
                    w.pos,
                    InvalidName {
                        what: "ARG name",
                        name,
                        rule: "ARG names are letters, digits and `_`, not starting with a digit",
                    }
                ));
                continue;
            }
            self.declared.insert(name.clone());
            if name == "ARCH" {
                if let Some(d) = default {
                    if d != self.arch {
                        self.warnings.push(format!(
                            "{}:{}: the default of `ARG ARCH={d}` is ignored: ARCH is {} (set it with --build-arg ARCH=...)",
                            self.file.display(),
                            w.pos,
                            self.arch
                        ));
                    }
                }
                continue;
            }
            let value = self
                .build_args
                .get(&name)
                .cloned()
                .or(default)
                .or_else(|| self.args.get(&name).cloned());
            match value {
                Some(v) => {
                    self.args.insert(name, v);
                }
                None => {
                    self.errors
                        .push(err!(self.file, w.pos, MissingArgValue { name: name.clone() }));
                    // Defined as empty so that its uses do not pile up more errors.
                    self.args.insert(name, String::new());
                }
            }
        }
        Ok(())
    }

    /// Parses `key=value` words; every word must have a non-empty key.
    pub(super) fn pairs(
        &self,
        ins: &Instruction,
        words: Vec<Word>,
        instruction: &'static str,
        usage: &'static str,
    ) -> Result<Vec<(String, String)>, KubefileError> {
        let mut out = Vec::new();
        for w in words {
            let Some((k, v)) = w.text.split_once('=') else {
                return Err(self.bad_args(
                    w.pos,
                    instruction,
                    format!("expects key=value pairs, got `{}`", w.text),
                    &ins.args,
                    usage,
                ));
            };
            if k.is_empty() {
                return Err(err!(
                    self.file,
                    w.pos,
                    EmptyKey {
                        instruction,
                        text: w.text.clone(),
                    }
                ));
            }
            out.push((k.to_string(), v.to_string()));
        }
        Ok(out)
    }

    pub(super) fn env(&mut self, ins: &Instruction) -> Result<(), KubefileError> {
        let ex = self.expander();
        let words = ex.words(&ins.args)?;
        let Some(first) = words.first() else {
            return Err(self.bad_args(ins.at, "ENV", "needs a key and a value", &ins.args, ENV_USAGE));
        };
        let pairs = if first.text.contains('=') {
            self.pairs(ins, words, "ENV", ENV_USAGE)?
        } else {
            // Legacy form: the rest of the line is the value.
            if words.len() < 2 {
                return Err(self.bad_args(
                    first.pos,
                    "ENV",
                    format!("`{}` has no value", first.text),
                    &ins.args,
                    ENV_USAGE,
                ));
            }
            if first.text.is_empty() {
                return Err(err!(
                    self.file,
                    first.pos,
                    EmptyKey {
                        instruction: "ENV",
                        text: collect(&ins.args),
                    }
                ));
            }
            let value = ex.whole(trim(&ins.args[first.end..]))?;
            vec![(first.text.clone(), value)]
        };
        if let Some((key, _)) = pairs.iter().find(|(k, _)| !is_var_name(k)) {
            let pos = ins.args.first().map_or(ins.at, |p| p.pos);
            return Err(err!(
                self.file,
                pos,
                InvalidName {
                    what: "ENV key",
                    name: key.escape_debug().to_string(),
                    rule: "environment variable names are letters, digits and `_`, not starting with a digit",
                }
            ));
        }
        self.env.extend(pairs);
        Ok(())
    }

    pub(super) fn label(&mut self, ins: &Instruction) -> Result<(), KubefileError> {
        let words = self.expander().words(&ins.args)?;
        if words.is_empty() {
            return Err(self.bad_args(ins.at, "LABEL", "needs key=value pairs", &ins.args, LABEL_USAGE));
        }
        let pairs = self.pairs(ins, words, "LABEL", LABEL_USAGE)?;
        if let Some((k, v)) = pairs.iter().find(|(k, v)| k.contains('\0') || v.contains('\0')) {
            return Err(self.bad_args(
                ins.at,
                "LABEL",
                format!("`{}={}` holds a NUL character", k.escape_debug(), v.escape_debug()),
                &ins.args,
                LABEL_USAGE,
            ));
        }
        self.labels.extend(pairs);
        Ok(())
    }

    pub(super) fn maintainer(&mut self, ins: &Instruction) -> Result<(), KubefileError> {
        let text = self.expander().whole(&ins.args)?;
        self.labels.insert("maintainer".to_string(), text);
        Ok(())
    }
}
