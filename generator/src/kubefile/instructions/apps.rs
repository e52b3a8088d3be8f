//! The application instructions: APP (and sealer's CNI and CSI), APPCMDS, APPENV, LAUNCH, and
//! CMD/CMDS (the commands run at install time).

use super::*;

impl Parser<'_> {
    pub(super) fn app(&mut self, ins: &Instruction, label_prefix: Option<&str>) -> Result<(), KubefileError> {
        let words = self.expander().words(&ins.args)?;
        if words.len() < 2 {
            let problem = if words.is_empty() {
                "needs a name and at least one local:// source"
            } else {
                "needs at least one local:// source"
            };
            return Err(self.bad_args(ins.at, "APP", problem, &ins.args, APP_USAGE));
        }
        let name = &words[0];
        if !is_app_name(&name.text) {
            return Err(err!(
                self.file,
                name.pos,
                InvalidName {
                    what: "app name",
                    name: name.text.clone(),
                    rule: "app names are letters, digits, `-`, `_` and `.`, starting with a letter or digit",
                }
            ));
        }
        let mut sources = Vec::new();
        for w in &words[1..] {
            let Some((scheme, path)) = w.text.split_once("://") else {
                return Err(err!(self.file, w.pos, MissingScheme { text: w.text.clone() }));
            };
            if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") {
                // Downloaded at build time (download.rs); kept whole, scheme included.
                sources.push((w.text.clone(), w.pos));
                continue;
            }
            if !scheme.eq_ignore_ascii_case("local") {
                return Err(err!(
                    self.file,
                    w.pos,
                    UnsupportedScheme {
                        scheme: scheme.to_string(),
                        text: w.text.clone(),
                    }
                ));
            }
            if path.is_empty() {
                return Err(self.bad_args(w.pos, "APP", "has an empty local:// path", &ins.args, APP_USAGE));
            }
            sources.push((path.to_string(), w.pos));
        }
        if let Some(first) = self.app_pos.get(&name.text) {
            return Err(err!(
                self.file,
                name.pos,
                DuplicateApp {
                    name: name.text.clone(),
                    first_line: first.line,
                    first_column: first.column,
                }
            ));
        }
        self.app_pos.insert(name.text.clone(), name.pos);
        if let Some(prefix) = label_prefix {
            self.labels.insert(format!("{prefix}{}", name.text), "true".to_string());
        }
        self.apps.push(App {
            name: name.text.clone(),
            sources,
            at: ins.at,
            cmds: Vec::new(),
            env: BTreeMap::new(),
        });
        Ok(())
    }

    pub(super) fn check_single_launch(&self, ins: &Instruction, keyword: &'static str) -> Result<(), KubefileError> {
        match &self.launch {
            Some((_, first_instruction, first_line)) => Err(err!(
                self.file,
                ins.at,
                DuplicateLaunch {
                    instruction: keyword,
                    first_instruction,
                    first_line: *first_line,
                }
            )),
            None => Ok(()),
        }
    }

    pub(super) fn launch(&mut self, ins: &Instruction) -> Result<(), KubefileError> {
        self.check_single_launch(ins, "LAUNCH")?;
        let names = self.list(ins)?;
        if names.is_empty() {
            return Err(self.bad_args(ins.at, "LAUNCH", "needs at least one app name", &ins.args, LAUNCH_USAGE));
        }
        self.app_refs
            .extend(names.iter().map(|(n, p)| (n.clone(), *p, "LAUNCH")));
        self.launch = Some((
            Launch::Apps {
                names: names.into_iter().map(|(n, _)| n).collect(),
                at: ins.at,
            },
            "LAUNCH",
            ins.at.line,
        ));
        Ok(())
    }

    pub(super) fn cmds(&mut self, ins: &Instruction, keyword: &'static str) -> Result<(), KubefileError> {
        // Several CMD lines (and CMDS) run in file order, as in sealer; LAUNCH excludes them.
        if let Some((Launch::Apps { .. }, _, _)) = &self.launch {
            self.check_single_launch(ins, keyword)?;
        }
        let cmds: Vec<String> = if is_json_form(&ins.args) {
            let strings = parse_json_array(self.file, &ins.args)?;
            if let Some(s) = strings.iter().find(|s| collect(&s.chars).trim().is_empty()) {
                return Err(self.bad_args(s.pos, keyword, "has an empty command", &ins.args, CMD_USAGE));
            }
            strings.iter().map(|s| collect(&s.chars)).collect()
        } else {
            let cmd = collect(&ins.args);
            if cmd.is_empty() {
                vec![]
            } else {
                vec![cmd]
            }
        };
        if cmds.is_empty() {
            return Err(self.bad_args(ins.at, keyword, "needs at least one command", &ins.args, CMD_USAGE));
        }
        match &mut self.launch {
            Some((Launch::Cmds { cmds: all, .. }, _, _)) => all.extend(cmds),
            _ => self.launch = Some((Launch::Cmds { cmds, at: ins.at }, keyword, ins.at.line)),
        }
        Ok(())
    }

    /// `APPCMDS <app> [json]`: the app name is the first word, the rest a JSON array.
    pub(super) fn appcmds(&mut self, ins: &Instruction) -> Result<(), KubefileError> {
        let end = ins
            .args
            .iter()
            .position(|p| p.c.is_whitespace())
            .unwrap_or(ins.args.len());
        let (name, rest) = (collect(&ins.args[..end]), trim(&ins.args[end..]));
        if name.is_empty() || rest.is_empty() {
            return Err(self.bad_args(
                ins.at,
                "APPCMDS",
                "needs an app name and a JSON array of commands",
                &ins.args,
                APPCMDS_USAGE,
            ));
        }
        if !is_json_form(rest) {
            return Err(self.bad_args(
                rest[0].pos,
                "APPCMDS",
                "takes a JSON array of commands",
                &ins.args,
                APPCMDS_USAGE,
            ));
        }
        let strings = parse_json_array(self.file, rest)?;
        if let Some(s) = strings.iter().find(|s| collect(&s.chars).trim().is_empty()) {
            return Err(self.bad_args(s.pos, "APPCMDS", "has an empty command", &ins.args, APPCMDS_USAGE));
        }
        if strings.is_empty() {
            return Err(self.bad_args(
                rest[0].pos,
                "APPCMDS",
                "needs at least one command",
                &ins.args,
                APPCMDS_USAGE,
            ));
        }
        self.app_refs.push((name.clone(), ins.args[0].pos, "APPCMDS"));
        self.app_cmds
            .push((name, strings.iter().map(|s| collect(&s.chars)).collect()));
        Ok(())
    }

    pub(super) fn appenv(&mut self, ins: &Instruction) -> Result<(), KubefileError> {
        let mut words = self.expander().words(&ins.args)?;
        if words.len() < 2 {
            return Err(self.bad_args(
                ins.at,
                "APPENV",
                "needs an app name and key=value pairs",
                &ins.args,
                APPENV_USAGE,
            ));
        }
        let name = words.remove(0);
        let positions: Vec<Pos> = words.iter().map(|w| w.pos).collect();
        let pairs = self.pairs(ins, words, "APPENV", APPENV_USAGE)?;
        if let Some(((key, _), pos)) = pairs.iter().zip(positions).find(|((k, _), _)| !is_var_name(k)) {
            return Err(err!(
                self.file,
                pos,
                InvalidName {
                    what: "APPENV key",
                    name: key.clone(),
                    rule: "environment variable names are letters, digits and `_`, not starting with a digit",
                }
            ));
        }
        self.app_refs.push((name.text.clone(), name.pos, "APPENV"));
        self.app_env.push((name.text, pairs));
        Ok(())
    }
}

/// Sealer takes any word; we keep names that are safe as a directory and in a shell command.
fn is_app_name(s: &str) -> bool {
    let mut cs = s.chars();
    cs.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && cs.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}
