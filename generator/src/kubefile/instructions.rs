//! The Kubefile's instructions: checks each one's arguments and builds the [`Kubefile`] from
//! them, collecting every error of the file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::words::*;
use super::{
    App, Base, Copy, Kubefile, KubefileError, KubefileErrors, Launch, Pos, Run, RunCommand, INSTRUCTIONS,
    KUBE_VERSION_LABEL,
};

const FROM_USAGE: &str = "`FROM scratch` or `FROM <path to a base delivery.run>`";
const ARG_USAGE: &str = "`ARG <name>` or `ARG <name>=<default>`";
const ENV_USAGE: &str = "`ENV <key>=<value> [<key>=<value> ...]` or `ENV <key> <value>`";
const LABEL_USAGE: &str = "`LABEL <key>=<value> [<key>=<value> ...]`";
const COPY_USAGE: &str = "`COPY <src> [<src> ...] <dest>` or `COPY [\"<src>\", ..., \"<dest>\"]`";
const APP_USAGE: &str = "`APP <name> local://<path> [local://<path> ...]`";
const APPCMDS_USAGE: &str = "`APPCMDS <app> [\"<command>\", ...]`";
const APPENV_USAGE: &str = "`APPENV <app> <key>=<value> [<key>=<value> ...]`";
const RUN_USAGE: &str = "`RUN <shell command>` or `RUN [\"<program>\", \"<arg>\", ...]`";
const KUBEVERSION_USAGE: &str = "`KUBEVERSION <constraint>`, e.g. `KUBEVERSION 1.22 - 1.24` or `KUBEVERSION >=1.25`";
const LAUNCH_USAGE: &str = "`LAUNCH [\"<app>\", ...]` or `LAUNCH <app> [<app> ...]`";
const CMD_USAGE: &str =
    "a JSON array of shell commands, e.g. `CMDS [\"kubectl apply -f app.yaml\"]`, or one shell command";

pub(super) struct Parser<'a> {
    file: &'a Path,
    build_args: &'a BTreeMap<String, String>,
    arch: String,
    pub(super) errors: Vec<KubefileError>,
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
    /// Apps named by LAUNCH, APPCMDS and APPENV, checked once every APP is known.
    app_refs: Vec<(String, Pos, &'static str)>,
    app_cmds: Vec<(String, Vec<String>)>,
    app_env: Vec<(String, Vec<(String, String)>)>,
    runs: Vec<Run>,
    kube_version: Option<(String, Pos)>,
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
            app_refs: Vec::new(),
            app_cmds: Vec::new(),
            app_env: Vec::new(),
            runs: Vec::new(),
            kube_version: None,
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
        // The shell reads these texts, `#` comments included; elsewhere ` #` ends the line.
        let stripped;
        let ins = if matches!(keyword, "CMD" | "CMDS" | "APPCMDS" | "RUN") {
            ins
        } else {
            stripped = Instruction {
                keyword: ins.keyword.clone(),
                at: ins.at,
                args: strip_comment(&ins.args).to_vec(),
            };
            &stripped
        };
        let result = match keyword {
            "FROM" => self.from(ins),
            "ARG" => self.arg(ins),
            "ENV" => self.env(ins),
            "LABEL" => self.label(ins),
            "MAINTAINER" => self.maintainer(ins),
            "COPY" => self.copy(ins),
            "RUN" => self.run(ins),
            "APP" => self.app(ins, None),
            "CNI" => self.app(ins, Some("cluster.alpha.sealer.io/kube-cni-")),
            "CSI" => self.app(ins, Some("cluster.alpha.sealer.io/kube-csi-")),
            "APPCMDS" => self.appcmds(ins),
            "APPENV" => self.appenv(ins),
            "KUBEVERSION" => self.kubeversion(ins),
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

    fn label(&mut self, ins: &Instruction) -> Result<(), KubefileError> {
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

    fn app(&mut self, ins: &Instruction, label_prefix: Option<&str>) -> Result<(), KubefileError> {
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

    fn cmds(&mut self, ins: &Instruction, keyword: &'static str) -> Result<(), KubefileError> {
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

    fn maintainer(&mut self, ins: &Instruction) -> Result<(), KubefileError> {
        let text = self.expander().whole(&ins.args)?;
        self.labels.insert("maintainer".to_string(), text);
        Ok(())
    }

    fn run(&mut self, ins: &Instruction) -> Result<(), KubefileError> {
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

    /// `APPCMDS <app> [json]`: the app name is the first word, the rest a JSON array.
    fn appcmds(&mut self, ins: &Instruction) -> Result<(), KubefileError> {
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

    fn appenv(&mut self, ins: &Instruction) -> Result<(), KubefileError> {
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

    fn kubeversion(&mut self, ins: &Instruction) -> Result<(), KubefileError> {
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
            return Err(self.bad_args(at, "KUBEVERSION", problem, &ins.args, KUBEVERSION_USAGE));
        }
        self.labels.insert(KUBE_VERSION_LABEL.to_string(), text.clone());
        self.kube_version = Some((text, at));
        Ok(())
    }

    pub(super) fn finish(mut self) -> (Kubefile, KubefileErrors) {
        for (name, pos, instruction) in std::mem::take(&mut self.app_refs) {
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
                self.errors.push(err!(
                    self.file,
                    pos,
                    UnknownApp {
                        instruction,
                        name,
                        hint
                    }
                ));
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
        self.errors.sort_by_key(KubefileError::pos);
        let mut apps = self.apps;
        for (name, cmds) in self.app_cmds {
            if let Some(app) = apps.iter_mut().find(|a| a.name == name) {
                app.cmds = cmds; // a later APPCMDS replaces an earlier one, as in sealer
            }
        }
        for (name, pairs) in self.app_env {
            if let Some(app) = apps.iter_mut().find(|a| a.name == name) {
                app.env.extend(pairs);
            }
        }
        let kubefile = Kubefile {
            path: self.file.to_path_buf(),
            base,
            args: self.args,
            env: self.env,
            labels: self.labels,
            copies: self.copies,
            apps,
            runs: self.runs,
            launch: self.launch.map(|(l, _, _)| l),
            kube_version: self.kube_version,
            warnings: self.warnings,
        };
        (kubefile, KubefileErrors(self.errors))
    }
}

/// Sealer takes any word; we keep names that are safe as a directory and in a shell command.
fn is_app_name(s: &str) -> bool {
    let mut cs = s.chars();
    cs.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && cs.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `args` up to a `#` that follows whitespace outside quotes (a trailing comment).
fn strip_comment(args: &[PChar]) -> &[PChar] {
    let (mut single, mut double, mut escaped) = (false, false, false);
    for (i, p) in args.iter().enumerate() {
        match p.c {
            _ if escaped => escaped = false,
            '\\' if !single => escaped = true,
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && i > 0 && args[i - 1].c.is_whitespace() => return trim(&args[..i]),
            _ => {}
        }
    }
    args
}
