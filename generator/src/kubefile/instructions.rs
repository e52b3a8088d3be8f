//! The Kubefile's instructions: checks each one's arguments and builds the [`Kubefile`] from
//! them, collecting every error of the file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::words::*;
use super::{App, Base, Copy, Kubefile, KubefileError, KubefileErrors, Launch, Pos, INSTRUCTIONS};

const FROM_USAGE: &str = "`FROM scratch` or `FROM <path to a base delivery.run>`";
const ARG_USAGE: &str = "`ARG <name>` or `ARG <name>=<default>`";
const ENV_USAGE: &str = "`ENV <key>=<value> [<key>=<value> ...]` or `ENV <key> <value>`";
const LABEL_USAGE: &str = "`LABEL <key>=<value> [<key>=<value> ...]`";
const COPY_USAGE: &str = "`COPY <src> [<src> ...] <dest>` or `COPY [\"<src>\", ..., \"<dest>\"]`";
const APP_USAGE: &str = "`APP <name> local://<path> [local://<path> ...]`";
const LAUNCH_USAGE: &str = "`LAUNCH [\"<app>\", ...]` or `LAUNCH <app> [<app> ...]`";
const CMD_USAGE: &str =
    "a JSON array of shell commands, e.g. `CMDS [\"kubectl apply -f app.yaml\"]`, or one shell command";

pub(super) struct Parser<'a> {
    file: &'a Path,
    build_args: &'a BTreeMap<String, String>,
    arch: String,
    errors: Vec<KubefileError>,
    warnings: Vec<String>,
    args: BTreeMap<String, String>,
    declared: BTreeSet<String>,
    env: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
    from: Option<(Base, usize)>,
    copies: Vec<Copy>,
    apps: Vec<App>,
    app_pos: BTreeMap<String, Pos>,
    launch: Option<(Launch, &'static str, usize)>,
    launch_refs: Vec<(String, Pos)>,
}

impl<'a> Parser<'a> {
    pub(super) fn new(file: &'a Path, build_args: &'a BTreeMap<String, String>, arch: &str) -> Self {
        let arch = build_args.get("ARCH").cloned().unwrap_or_else(|| arch.to_string());
        let mut args = BTreeMap::new();
        args.insert("ARCH".to_string(), arch.clone());
        Parser {
            file,
            build_args,
            arch,
            errors: Vec::new(),
            warnings: Vec::new(),
            args,
            declared: BTreeSet::new(),
            env: BTreeMap::new(),
            labels: BTreeMap::new(),
            from: None,
            copies: Vec::new(),
            apps: Vec::new(),
            app_pos: BTreeMap::new(),
            launch: None,
            launch_refs: Vec::new(),
        }
    }

    fn expander(&self) -> Expander<'_> {
        Expander {
            file: self.file,
            env: &self.env,
            args: &self.args,
        }
    }

    fn bad_args(
        &self,
        pos: Pos,
        instruction: &'static str,
        problem: impl Into<String>,
        text: &[PChar],
        usage: &'static str,
    ) -> KubefileError {
        err!(
            self.file,
            pos,
            BadArguments {
                instruction,
                problem: problem.into(),
                text: collect(text),
                usage,
            }
        )
    }

    pub(super) fn instruction(&mut self, ins: &Instruction, has_from: bool) {
        let upper = ins.keyword.to_ascii_uppercase();
        let Some(&keyword) = INSTRUCTIONS.iter().find(|k| **k == upper) else {
            let special = match upper.as_str() {
                "ADD" => "use COPY (remote URLs and archive extraction are not supported); ",
                "RUN" => "nothing runs at build time; use CMDS for commands run at install time; ",
                "ENTRYPOINT" => "use LAUNCH or CMDS; ",
                _ => "",
            };
            self.errors.push(err!(
                self.file,
                ins.at,
                UnknownInstruction {
                    keyword: ins.keyword.clone(),
                    hint: format!("{special}supported instructions are {}", INSTRUCTIONS.join(", ")),
                }
            ));
            return;
        };
        if self.from.is_none() && has_from && keyword != "FROM" && keyword != "ARG" {
            self.errors.push(err!(
                self.file,
                ins.at,
                BeforeFrom {
                    keyword: keyword.to_string(),
                }
            ));
            return;
        }
        let result = match keyword {
            "FROM" => self.from(ins),
            "ARG" => self.arg(ins),
            "ENV" => self.env(ins),
            "LABEL" => self.label(ins),
            "COPY" => self.copy(ins),
            "APP" => self.app(ins),
            "LAUNCH" => self.launch(ins),
            _ => self.cmds(ins, keyword),
        };
        if let Err(e) = result {
            self.errors.push(e);
        }
    }

    fn from(&mut self, ins: &Instruction) -> Result<(), KubefileError> {
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
        let words = self.expander().words(&ins.args)?;
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

    fn arg(&mut self, ins: &Instruction) -> Result<(), KubefileError> {
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
    fn pairs(
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

    fn env(&mut self, ins: &Instruction) -> Result<(), KubefileError> {
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
        self.env.extend(pairs);
        Ok(())
    }

    fn label(&mut self, ins: &Instruction) -> Result<(), KubefileError> {
        let words = self.expander().words(&ins.args)?;
        if words.is_empty() {
            return Err(self.bad_args(ins.at, "LABEL", "needs key=value pairs", &ins.args, LABEL_USAGE));
        }
        let pairs = self.pairs(ins, words, "LABEL", LABEL_USAGE)?;
        self.labels.extend(pairs);
        Ok(())
    }

    /// The arguments as a list of strings: a JSON array or shell-form words, expanded.
    fn list(&self, ins: &Instruction) -> Result<Vec<(String, Pos)>, KubefileError> {
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

    fn copy(&mut self, ins: &Instruction) -> Result<(), KubefileError> {
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
        let dest = items.pop().unwrap_or_default();
        self.copies.push(Copy {
            sources: items,
            dest,
            at: ins.at,
        });
        Ok(())
    }

    fn app(&mut self, ins: &Instruction) -> Result<(), KubefileError> {
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
            return Err(err!(self.file, name.pos, InvalidName {
                what: "app name",
                name: name.text.clone(),
                rule: "app names match [a-z0-9][a-z0-9-_.]*: lowercase letters, digits, `-`, `_` and `.`, starting with a letter or digit",
            }));
        }
        let mut sources = Vec::new();
        for w in &words[1..] {
            let Some((scheme, path)) = w.text.split_once("://") else {
                return Err(err!(self.file, w.pos, MissingScheme { text: w.text.clone() }));
            };
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
        self.apps.push(App {
            name: name.text.clone(),
            sources,
            at: ins.at,
        });
        Ok(())
    }

    fn check_single_launch(&self, ins: &Instruction, keyword: &'static str) -> Result<(), KubefileError> {
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

    fn launch(&mut self, ins: &Instruction) -> Result<(), KubefileError> {
        self.check_single_launch(ins, "LAUNCH")?;
        let names = self.list(ins)?;
        if names.is_empty() {
            return Err(self.bad_args(ins.at, "LAUNCH", "needs at least one app name", &ins.args, LAUNCH_USAGE));
        }
        self.launch_refs.extend(names.iter().cloned());
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

    fn cmds(&mut self, ins: &Instruction, keyword: &'static str) -> Result<(), KubefileError> {
        self.check_single_launch(ins, keyword)?;
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
        self.launch = Some((Launch::Cmds { cmds, at: ins.at }, keyword, ins.at.line));
        Ok(())
    }

    pub(super) fn finish(mut self) -> Result<Kubefile, KubefileErrors> {
        for (name, pos) in std::mem::take(&mut self.launch_refs) {
            if !self.app_pos.contains_key(&name) {
                let hint = if self.app_pos.is_empty() {
                    format!("define it with `APP {name} local://<path>`")
                } else {
                    let known: Vec<&str> = self.app_pos.keys().map(String::as_str).collect();
                    format!(
                        "defined apps: {}; or define it with `APP {name} local://<path>`",
                        known.join(", ")
                    )
                };
                self.errors.push(err!(self.file, pos, UnknownApp { name, hint }));
            }
        }
        for name in self.build_args.keys() {
            if name != "ARCH" && !self.declared.contains(name) {
                self.warnings.push(format!(
                    "--build-arg {name} was given but the Kubefile declares no ARG {name}"
                ));
            }
        }
        let base = match self.from.take() {
            Some((base, _)) => base,
            None => {
                // First, even among other errors at 1:1 (the sort below is stable).
                self.errors.insert(0, err!(self.file, Pos::new(1, 1), MissingFrom {}));
                Base::Scratch
            }
        };
        if !self.errors.is_empty() {
            self.errors.sort_by_key(KubefileError::pos);
            return Err(KubefileErrors(self.errors));
        }
        Ok(Kubefile {
            path: self.file.to_path_buf(),
            base,
            args: self.args,
            env: self.env,
            labels: self.labels,
            copies: self.copies,
            apps: self.apps,
            launch: self.launch.map(|(l, _, _)| l),
            warnings: self.warnings,
        })
    }
}

fn is_app_name(s: &str) -> bool {
    let mut cs = s.chars();
    cs.next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && cs.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}
