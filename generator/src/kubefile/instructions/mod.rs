//! The Kubefile's instructions: checks each one's arguments and builds the [`Kubefile`] from
//! them, collecting every error of the file. This file holds the parser's state, the dispatch
//! by keyword and the final checks across instructions; each instruction's own checks are in
//! `from.rs` (FROM, KUBEVERSION), `variables.rs` (ARG, ENV, LABEL, MAINTAINER), `files.rs`
//! (COPY, RUN) and `apps.rs` (APP, CNI, CSI, APPCMDS, APPENV, LAUNCH, CMD, CMDS).

mod apps;
mod files;
mod from;
mod variables;

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::json_array::{is_json_form, parse_json_array};
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
    /// Bytes that variable references have produced so far, in all instructions.
    expanded: Cell<usize>,
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
            expanded: Cell::new(0),
        }
    }

    fn expander(&self) -> Expander<'_> {
        Expander {
            file: self.file,
            env: &self.env,
            args: &self.args,
            expanded: &self.expanded,
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
