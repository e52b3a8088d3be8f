//! COPY (files from the build context or a URL) and RUN (a command run on the build machine).

use super::*;

impl Parser<'_> {
    /// The arguments as a list of strings: a JSON array or shell-form words, expanded.
    pub(super) fn list(&self, ins: &Instruction) -> Result<Vec<(String, Pos)>, KubefileError> {
        let ex = self.expander();
        if is_json_form(&ins.args) {
            parse_json_array(self.file, &ins.args)?
                .into_iter()
                .map(|s| Ok((ex.plain(&s.chars, false)?, s.pos)))
                .collect()
        } else {
            Ok(ex.words(&ins.args)?.into_iter().map(|w| (w.text, w.pos)).collect())
        }
    }

    pub(super) fn copy(&mut self, ins: &Instruction) -> Result<(), KubefileError> {
        if ins.args.first().is_some_and(|p| p.c == '-') && ins.args.get(1).is_some_and(|p| p.c == '-') {
            let end = ins
                .args
                .iter()
                .position(|p| p.c.is_whitespace())
                .unwrap_or(ins.args.len());
            let flag = collect(&ins.args[..end]);
            let name = flag.split('=').next().unwrap_or_default();
            let hint = match name {
                "--chown" | "--chmod" => {
                    "set the permission bits on the files in the build context instead; COPY keeps them"
                }
                "--from" => "multi-stage builds are not supported; COPY takes files from the build context only",
                _ => "COPY takes only sources and a destination",
            };
            return Err(err!(
                self.file,
                ins.args[0].pos,
                UnsupportedFlag {
                    instruction: "COPY",
                    flag,
                    hint,
                }
            ));
        }
        let mut items = self.list(ins)?;
        if items.len() < 2 {
            let problem = if items.is_empty() {
                "needs a source and a destination"
            } else {
                "needs at least one source and a destination"
            };
            return Err(self.bad_args(ins.at, "COPY", problem, &ins.args, COPY_USAGE));
        }
        if let Some((_, pos)) = items.iter().find(|(s, _)| s.is_empty()) {
            return Err(self.bad_args(*pos, "COPY", "has an empty path", &ins.args, COPY_USAGE));
        }
        if let Some((text, pos)) = items.iter().find(|(s, _)| s.chars().any(char::is_control)) {
            return Err(err!(
                self.file,
                *pos,
                InvalidName {
                    what: "COPY path",
                    name: text.escape_debug().to_string(),
                    rule: "paths must not contain control characters (newline, escape, NUL, ...)",
                }
            ));
        }
        let dest = items.pop().unwrap_or_default();
        self.copies.push(Copy {
            sources: items,
            dest,
            at: ins.at,
        });
        Ok(())
    }

    pub(super) fn run(&mut self, ins: &Instruction) -> Result<(), KubefileError> {
        let command = if is_json_form(&ins.args) {
            let argv: Vec<String> = parse_json_array(self.file, &ins.args)?
                .iter()
                .map(|s| collect(&s.chars))
                .collect();
            if argv.first().is_none_or(|p| p.is_empty()) {
                return Err(self.bad_args(ins.at, "RUN", "needs a program", &ins.args, RUN_USAGE));
            }
            RunCommand::Exec(argv)
        } else {
            let text = collect(&ins.args);
            if text.trim().is_empty() {
                return Err(self.bad_args(ins.at, "RUN", "needs a command", &ins.args, RUN_USAGE));
            }
            RunCommand::Shell(text)
        };
        self.runs.push(Run { command, at: ins.at });
        Ok(())
    }
}
