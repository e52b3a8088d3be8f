use super::*;

fn parse_with(text: &str, build_args: &[(&str, &str)]) -> Result<Kubefile, KubefileErrors> {
    let args = build_args.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    parse(Path::new("Kubefile"), text, &args, "amd64")
}

fn ok(text: &str) -> Kubefile {
    match parse_with(text, &[]) {
        Ok(k) => k,
        Err(e) => panic!("unexpected errors:\n{e}"),
    }
}

fn errs(text: &str) -> Vec<KubefileError> {
    match parse_with(text, &[]) {
        Ok(k) => panic!("expected errors, got {k:?}"),
        Err(e) => e.0,
    }
}

fn one_err(text: &str) -> KubefileError {
    let mut e = errs(text);
    assert_eq!(e.len(), 1, "expected one error, got {e:#?}");
    e.remove(0)
}

fn p(line: usize, column: usize) -> Pos {
    Pos::new(line, column)
}

fn s(v: &str, line: usize, column: usize) -> (String, Pos) {
    (v.to_string(), p(line, column))
}

#[test]
fn minimal_scratch() {
    let k = ok("FROM scratch\n");
    assert_eq!(k.base, Base::Scratch);
    assert_eq!(k.path, PathBuf::from("Kubefile"));
    assert_eq!(k.args.get("ARCH").map(String::as_str), Some("amd64"));
    assert!(k.copies.is_empty() && k.apps.is_empty() && k.launch.is_none());
    assert!(k.warnings.is_empty());
}

#[test]
fn from_bundle_with_variable_and_case_insensitive_keywords() {
    let k = ok("arg V=1.2\nfrom  ../base/k8s-${V}-$ARCH.run\n");
    assert_eq!(
        k.base,
        Base::Bundle {
            path: "../base/k8s-1.2-amd64.run".into(),
            at: p(2, 7)
        }
    );
    assert_eq!(ok("FROM SCRATCH").base, Base::Scratch);
}

#[test]
fn full_example_from_the_reference() {
    let text = "\
# Build with: delivery build -f Kubefile --build-arg VERSION=1.2.0
ARG VERSION=1.0.0
FROM scratch
ENV CLUSTER_NAME=demo REGISTRY=\"registry.local:5000\"
LABEL org.example.version=${VERSION} maintainer=\"ops team\"
COPY images/${ARCH}/ images/
COPY [\"charts/nginx\", \"charts/redis\", \"charts/\"]
APP nginx local://apps/nginx/values.yaml local://apps/nginx/chart
APP redis local://apps/redis
LAUNCH [\"nginx\", \"redis\"]
";
    let k = parse_with(text, &[("VERSION", "1.2.0")]).unwrap();
    assert_eq!(k.args.get("VERSION").map(String::as_str), Some("1.2.0"));
    assert_eq!(k.env.get("REGISTRY").map(String::as_str), Some("registry.local:5000"));
    assert_eq!(k.labels.get("org.example.version").map(String::as_str), Some("1.2.0"));
    assert_eq!(k.labels.get("maintainer").map(String::as_str), Some("ops team"));
    assert_eq!(k.copies[0].sources, vec![s("images/amd64/", 6, 6)]);
    assert_eq!(k.copies[0].dest, s("images/", 6, 22));
    assert_eq!(k.copies[0].at, p(6, 1));
    assert_eq!(
        k.copies[1].sources,
        vec![s("charts/nginx", 7, 7), s("charts/redis", 7, 23)]
    );
    assert_eq!(k.copies[1].dest, s("charts/", 7, 39));
    assert_eq!(k.apps[0].name, "nginx");
    assert_eq!(
        k.apps[0].sources,
        vec![s("apps/nginx/values.yaml", 8, 11), s("apps/nginx/chart", 8, 42)]
    );
    assert_eq!(k.apps[1].at, p(9, 1));
    assert_eq!(
        k.launch,
        Some(Launch::Apps {
            names: vec!["nginx".into(), "redis".into()],
            at: p(10, 1)
        })
    );
}

#[test]
fn continuations_and_comments_keep_original_positions() {
    let text = "\
# comment
ARG VERSION=1.0

FROM scratch
COPY a \\
  # a comment inside the continuation

  b \\
\tdest/
ADD make x
";
    let e = errs(text);
    assert_eq!(e.len(), 1);
    match &e[0] {
        KubefileError::UnknownInstruction {
            line, column, keyword, ..
        } => {
            assert_eq!((*line, *column), (10, 1));
            assert_eq!(keyword, "ADD");
        }
        other => panic!("{other:?}"),
    }
    let k = ok(&text.replace("ADD make x\n", ""));
    assert_eq!(k.copies[0].sources, vec![s("a", 5, 6), s("b", 8, 3)]);
    assert_eq!(k.copies[0].dest, s("dest/", 9, 2));
}

#[test]
fn continuation_at_eof_and_crlf() {
    let k = ok("FROM scratch\r\nCOPY a \\\r\n  b\r\nCMD echo \\");
    assert_eq!(k.copies[0].dest, s("b", 3, 3));
    assert_eq!(
        k.launch,
        Some(Launch::Cmds {
            cmds: vec!["echo".into()],
            at: p(4, 1)
        })
    );
}

#[test]
fn columns_count_characters() {
    let e = one_err("FROM scratch\nLABEL ünïcode=\"x\" \t$NOPE=1\n");
    match e {
        KubefileError::UndefinedVariable { line, column, name, .. } => {
            assert_eq!((line, column, name.as_str()), (2, 20, "NOPE"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_instruction_has_hint() {
    let e = one_err("FROM scratch\n  ADD x y\n");
    assert!(matches!(
        &e,
        KubefileError::UnknownInstruction { line: 2, column: 3, keyword, .. } if keyword == "ADD"
    ));
    let text = e.to_string();
    assert!(text.starts_with("Kubefile:2:3: unknown instruction `ADD`\n  hint: use COPY"));
    assert!(text.contains("FROM, ARG, ENV, LABEL, MAINTAINER, COPY, RUN, APP, CNI, CSI, APPCMDS"));
    for kw in ["ENTRYPOINT x", "ONBUILD x", "healthcheck echo"] {
        let e = one_err(&format!("FROM scratch\n{kw}\n"));
        assert!(matches!(
            e,
            KubefileError::UnknownInstruction { line: 2, column: 1, .. }
        ));
    }
}

#[test]
fn missing_from() {
    for text in ["", "\n# only a comment\n", "ARG A=1\n"] {
        let e = one_err(text);
        assert_eq!(
            e,
            KubefileError::MissingFrom {
                file: "Kubefile".into(),
                line: 1,
                column: 1
            }
        );
        assert_eq!(
            e.to_string().lines().next(),
            Some("Kubefile:1:1: Kubefile has no FROM instruction")
        );
    }
    // Without any FROM, other problems are still reported, but not "before FROM".
    let e = errs("COPY a\n");
    assert_eq!(e.len(), 2);
    assert!(matches!(e[0], KubefileError::MissingFrom { .. }));
    assert!(matches!(e[1], KubefileError::BadArguments { line: 1, .. }));
}

#[test]
fn only_arg_before_from_and_one_from() {
    let e = one_err("ARG A=1\nENV B=2\nFROM scratch\n");
    assert!(matches!(&e, KubefileError::BeforeFrom { line: 2, column: 1, keyword, .. } if keyword == "ENV"));
    let e = one_err("FROM scratch\n\nFROM other.run\n");
    assert!(matches!(
        &e,
        KubefileError::DuplicateFrom { line: 3, column: 1, first_line: 1, text, .. } if text == "other.run"
    ));
}

#[test]
fn from_takes_one_argument() {
    let e = one_err("FROM base.run AS x\n");
    assert!(matches!(
        &e,
        KubefileError::BadArguments { line: 1, column: 15, instruction: "FROM", text, .. } if text == "base.run AS x"
    ));
    let e = one_err("FROM\nCOPY a b\n");
    assert!(matches!(e, KubefileError::BadArguments { line: 1, column: 1, .. }));
}

#[test]
fn args_defaults_build_args_and_warnings() {
    let text = "ARG A=default\nARG B\nARG C=$A-c\nFROM scratch\nENV X=$A/$B/$C\n";
    let k = parse_with(text, &[("B", "bee"), ("UNUSED", "1")]).unwrap();
    assert_eq!(k.env.get("X").map(String::as_str), Some("default/bee/default-c"));
    assert_eq!(k.args.len(), 4); // A, B, C and ARCH
    assert_eq!(
        k.warnings,
        vec!["--build-arg UNUSED was given but the Kubefile declares no ARG UNUSED".to_string()]
    );
    let k = parse_with(text, &[("B", "b"), ("A", "override")]).unwrap();
    assert_eq!(k.env.get("X").map(String::as_str), Some("override/b/override-c"));
}

#[test]
fn arg_without_value_is_an_error() {
    let e = errs("FROM scratch\nARG  NEEDED\nENV X=$NEEDED\n");
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(matches!(
        &e[0],
        KubefileError::MissingArgValue { line: 2, column: 6, name, .. } if name == "NEEDED"
    ));
    assert!(e[0].to_string().contains("--build-arg NEEDED=value"));
    let e = one_err("FROM scratch\nARG 1BAD=x\n");
    assert!(matches!(
        e,
        KubefileError::InvalidName {
            line: 2,
            column: 5,
            what: "ARG name",
            ..
        }
    ));
}

#[test]
fn arch_is_predefined_and_overridable() {
    let k = ok("FROM scratch\nCOPY images/$ARCH/ images/\n");
    assert_eq!(k.copies[0].sources[0].0, "images/amd64/");
    let k = parse_with("FROM scratch\nCOPY images/${ARCH}/ images/\n", &[("ARCH", "arm64")]).unwrap();
    assert_eq!(k.copies[0].sources[0].0, "images/arm64/");
    assert_eq!(k.args.get("ARCH").map(String::as_str), Some("arm64"));
    assert!(k.warnings.is_empty());
    let k = ok("ARG ARCH=ppc64le\nFROM scratch\n");
    assert_eq!(k.args.get("ARCH").map(String::as_str), Some("amd64"));
    assert_eq!(k.warnings.len(), 1);
    assert!(k.warnings[0].contains("ARG ARCH=ppc64le"), "{:?}", k.warnings);
}

#[test]
fn variable_expansion_forms() {
    let text = r#"ARG A=aa
ARG EMPTY=
FROM scratch
ENV E=env
LABEL l1=$A l2=${A} l3=${UNSET:-dflt} l4=${EMPTY:-fallback} l5=${A:-unused} l6=\$A l7="\$A" l8='$A' l9=${UNSET:-${ARCH}-x} l10=${A:+alt} l11=${UNSET:+alt} l12=$E-$A l13=cost$ l14=a$.b
"#;
    let k = ok(text);
    let l = |k2: &str| k.labels.get(k2).map(String::as_str);
    assert_eq!(l("l1"), Some("aa"));
    assert_eq!(l("l2"), Some("aa"));
    assert_eq!(l("l3"), Some("dflt"));
    assert_eq!(l("l4"), Some("fallback"));
    assert_eq!(l("l5"), Some("aa"));
    assert_eq!(l("l6"), Some("$A"));
    assert_eq!(l("l7"), Some("$A"));
    assert_eq!(l("l8"), Some("$A"));
    assert_eq!(l("l9"), Some("amd64-x"));
    assert_eq!(l("l10"), Some("alt"));
    assert_eq!(l("l11"), Some(""));
    assert_eq!(l("l12"), Some("env-aa"));
    assert_eq!(l("l13"), Some("cost$"));
    assert_eq!(l("l14"), Some("a$.b"));
}

#[test]
fn env_is_visible_only_after_it_is_set() {
    let e = one_err("FROM scratch\nCOPY $DIR x\nENV DIR=manifests\nCOPY $DIR y\n");
    assert!(matches!(
        &e,
        KubefileError::UndefinedVariable { line: 2, column: 6, name, text, .. } if name == "DIR" && text == "$DIR"
    ));
    let k = ok("FROM scratch\nENV DIR=manifests\nCOPY ${DIR}/ y\n");
    assert_eq!(k.copies[0].sources[0].0, "manifests/");
}

#[test]
fn malformed_variables() {
    let e = one_err("FROM scratch\nLABEL a=${UNCLOSED\n");
    assert!(matches!(e, KubefileError::BadVariable { line: 2, column: 9, .. }));
    let e = one_err("FROM scratch\nLABEL a=x${}\n");
    assert!(
        matches!(e, KubefileError::BadVariable { line: 2, column: 10, ref problem, .. } if problem == "empty variable name")
    );
    let e = one_err("FROM scratch\nLABEL a=${A:?err}\n");
    assert!(matches!(e, KubefileError::BadVariable { line: 2, column: 9, ref text, .. } if text == "${A:?err}"));
    let e = one_err("FROM scratch\nLABEL a=${NOPE}\n");
    assert!(matches!(e, KubefileError::UndefinedVariable { line: 2, column: 9, .. }));
}

#[test]
fn env_forms() {
    let k = ok(r#"FROM scratch
ENV A=1 B="two words" C="say \"hi\"" D=
ENV LEGACY value with  spaces
ENV QUOTED "x y"
"#);
    let e = |k2: &str| k.env.get(k2).map(String::as_str);
    assert_eq!(e("A"), Some("1"));
    assert_eq!(e("B"), Some("two words"));
    assert_eq!(e("C"), Some("say \"hi\""));
    assert_eq!(e("D"), Some(""));
    assert_eq!(e("LEGACY"), Some("value with  spaces"));
    assert_eq!(e("QUOTED"), Some("x y"));
    let err = one_err("FROM scratch\nENV A=1 =2\n");
    assert!(
        matches!(&err, KubefileError::EmptyKey { line: 2, column: 9, instruction: "ENV", text, .. } if text == "=2")
    );
    let err = one_err("FROM scratch\nENV A=1 B\n");
    assert!(matches!(err, KubefileError::BadArguments { line: 2, column: 9, .. }));
    let err = one_err("FROM scratch\nENV ONLYKEY\n");
    assert!(matches!(err, KubefileError::BadArguments { line: 2, column: 5, .. }));
    let err = one_err("FROM scratch\nENV A=\"open\n");
    assert!(matches!(
        err,
        KubefileError::UnterminatedQuote {
            line: 2,
            column: 7,
            quote: '"',
            ..
        }
    ));
}

#[test]
fn label_forms() {
    let k = ok("FROM scratch\nLABEL a=1 \"b c\"=2\n");
    assert_eq!(k.labels.get("b c").map(String::as_str), Some("2"));
    let e = one_err("FROM scratch\nLABEL novalue\n");
    assert!(matches!(
        e,
        KubefileError::BadArguments {
            line: 2,
            column: 7,
            instruction: "LABEL",
            ..
        }
    ));
    let e = one_err("FROM scratch\nLABEL =x\n");
    assert!(matches!(e, KubefileError::EmptyKey { line: 2, column: 7, .. }));
}

#[test]
fn copy_forms() {
    let k = ok("FROM scratch\nCOPY a \"b c\" d/\nCOPY [\"x y\", \"$ARCH\\/z\"]\nCOPY [ab]*.yaml etc/\n");
    assert_eq!(k.copies[0].sources, vec![s("a", 2, 6), s("b c", 2, 8)]);
    assert_eq!(k.copies[1].sources, vec![s("x y", 3, 7)]);
    assert_eq!(k.copies[1].dest, s("amd64/z", 3, 14));
    assert_eq!(k.copies[2].sources, vec![s("[ab]*.yaml", 4, 6)]);
    let e = one_err("FROM scratch\nCOPY onlyone\n");
    assert!(matches!(
        e,
        KubefileError::BadArguments {
            line: 2,
            column: 1,
            instruction: "COPY",
            ..
        }
    ));
    let e = one_err("FROM scratch\nCOPY [\"onlyone\"]\n");
    assert!(matches!(e, KubefileError::BadArguments { line: 2, column: 1, .. }));
}

#[test]
fn copy_flags_are_not_supported() {
    let e = one_err("FROM scratch\nCOPY --chown=1000:1000 a b\n");
    match &e {
        KubefileError::UnsupportedFlag { line, column, flag, .. } => {
            assert_eq!((*line, *column), (2, 6));
            assert_eq!(flag, "--chown=1000:1000");
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("not supported"));
    let e = one_err("FROM scratch\nCOPY  --from=builder [\"a\", \"b\"]\n");
    assert!(matches!(e, KubefileError::UnsupportedFlag { line: 2, column: 7, .. }));
}

#[test]
fn malformed_json_arrays() {
    let cases = [
        ("COPY [\"a\", \"b\"", 15, "expected `,` or `]`, found end of line"),
        ("COPY [\"a\" \"b\"]", 11, "expected `,` or `]`, found `\"`"),
        ("COPY [\"a\", b]", 12, "expected a string, found `b`"),
        ("COPY [\"a\\x\", \"b\"]", 9, "invalid escape `\\x`"),
        ("COPY [\"a\", \"b\"] extra", 17, "unexpected `e` after `]`"),
        ("COPY [\"a\", \"b", 12, "unterminated string"),
        ("LAUNCH [\"\\u12G4\"]", 14, "expected 4 hex digits in `\\u` escape"),
        ("CMDS [\"a\",]", 11, "expected a string, found `]`"),
    ];
    for (line, column, problem) in cases {
        let e = one_err(&format!("FROM scratch\n{line}\n"));
        match &e {
            KubefileError::Json {
                line: l,
                column: c,
                problem: pr,
                ..
            } => {
                assert_eq!((*l, *c, pr.as_str()), (2, column, problem), "{line}");
            }
            other => panic!("{line}: {other:?}"),
        }
    }
}

#[test]
fn json_escapes() {
    let k = ok(r#"FROM scratch
CMDS ["echo \"a\\b\"\t\u00e9\ud83d\ude00", "kubectl apply -f $HOME/x"]
"#);
    assert_eq!(
        k.launch,
        Some(Launch::Cmds {
            cmds: vec![
                "echo \"a\\b\"\t\u{e9}\u{1F600}".into(),
                "kubectl apply -f $HOME/x".into()
            ],
            at: p(2, 1)
        })
    );
}

#[test]
fn app_rules() {
    let e = one_err("FROM scratch\nAPP -nginx local://a\n");
    assert!(
        matches!(&e, KubefileError::InvalidName { line: 2, column: 5, what: "app name", name, .. } if name == "-nginx")
    );
    let e = one_err("FROM scratch\nAPP a/b local://a\n");
    assert!(matches!(&e, KubefileError::InvalidName { line: 2, column: 5, .. }));
    // sealer's camelCase names
    assert_eq!(
        ok("FROM scratch\nAPP businessApp local://a\n").apps[0].name,
        "businessApp"
    );
    let e = one_err("FROM scratch\nAPP web ftp://example.com/x.yaml\n");
    assert!(matches!(
        &e,
        KubefileError::UnsupportedScheme { line: 2, column: 9, scheme, .. } if scheme == "ftp"
    ));
    assert!(e.to_string().contains("`ftp`"));
    // URLs are kept whole: downloaded at build time
    let k = ok("FROM scratch\nAPP mysql https://charts.example/mysql.tgz\n");
    assert_eq!(k.apps[0].sources, vec![s("https://charts.example/mysql.tgz", 2, 11)]);
    let e = one_err("FROM scratch\nAPP web manifests/\n");
    assert!(matches!(e, KubefileError::MissingScheme { line: 2, column: 9, .. }));
    let e = one_err("FROM scratch\nAPP web\n");
    assert!(matches!(
        e,
        KubefileError::BadArguments {
            line: 2,
            column: 1,
            instruction: "APP",
            ..
        }
    ));
    let e = one_err("FROM scratch\nAPP web local://a\nAPP  web local://b\n");
    assert_eq!(
        e,
        KubefileError::DuplicateApp {
            file: "Kubefile".into(),
            line: 3,
            column: 6,
            name: "web".into(),
            first_line: 2,
            first_column: 5
        }
    );
    assert!(e.to_string().contains("already defined at Kubefile:2:5"));
    let k = ok("FROM scratch\nAPP a-1_b.c local://x local://y/${ARCH}\n");
    assert_eq!(k.apps[0].sources, vec![s("x", 2, 13), s("y/amd64", 2, 23)]);
}

#[test]
fn launch_rules() {
    let k = ok("FROM scratch\nLAUNCH web db\nAPP db local://db\nAPP web local://web\n");
    assert_eq!(
        k.launch,
        Some(Launch::Apps {
            names: vec!["web".into(), "db".into()],
            at: p(2, 1)
        })
    );
    let e = one_err("FROM scratch\nAPP web local://web\nLAUNCH [\"web\", \"nope\"]\n");
    assert!(matches!(&e, KubefileError::UnknownApp { line: 3, column: 16, name, .. } if name == "nope"));
    assert!(e.to_string().contains("defined apps: web"));
    let e = one_err("FROM scratch\nAPP web local://web\nLAUNCH web\nCMDS [\"echo\"]\n");
    assert_eq!(
        e,
        KubefileError::DuplicateLaunch {
            file: "Kubefile".into(),
            line: 4,
            column: 1,
            instruction: "CMDS",
            first_instruction: "LAUNCH",
            first_line: 3
        }
    );
    let e = one_err("FROM scratch\nCMD a\nAPP web local://web\nLAUNCH web\n");
    assert!(matches!(
        e,
        KubefileError::DuplicateLaunch {
            line: 4,
            first_line: 2,
            instruction: "LAUNCH",
            ..
        }
    ));
    let e = one_err("FROM scratch\nLAUNCH []\n");
    assert!(matches!(
        e,
        KubefileError::BadArguments {
            line: 2,
            instruction: "LAUNCH",
            ..
        }
    ));
}

#[test]
fn cmd_shell_form_is_verbatim() {
    let k = ok("FROM scratch\nCMD [ -f /etc/x ] && kubectl apply -f \"$DIR\" \\\n    --wait\n");
    assert_eq!(
        k.launch,
        Some(Launch::Cmds {
            cmds: vec!["[ -f /etc/x ] && kubectl apply -f \"$DIR\"     --wait".into()],
            at: p(2, 1)
        })
    );
    let e = one_err("FROM scratch\nCMDS [\"ok\", \"  \"]\n");
    assert!(matches!(
        e,
        KubefileError::BadArguments {
            line: 2,
            column: 13,
            ..
        }
    ));
}

#[test]
fn all_errors_are_reported_sorted() {
    let text = "FROM scratch\nLAUNCH ghost\nADD x y\nCOPY a\nAPP -bad local://x\nENV X=$NOPE\n";
    let e = parse_with(text, &[]).unwrap_err();
    let positions: Vec<Pos> = e.iter().map(KubefileError::pos).collect();
    assert_eq!(positions, vec![p(2, 8), p(3, 1), p(4, 1), p(5, 5), p(6, 7)]);
    let shown = e.to_string();
    assert_eq!(shown.matches("Kubefile:").count(), 5, "{shown}");
    assert!(shown.starts_with("Kubefile:2:8: LAUNCH names app `ghost`"));
}

// Sealer's instructions, as its catalogue and documentation write them.

#[test]
fn several_cmd_lines_and_cmds_run_in_file_order() {
    let k = ok("FROM scratch\nCMD helm install wordpress wordpress-chart  # run on creating a cluster\nCMD helm list # multi CMD is valid\nCMDS [\"a\", \"b\"]\n");
    assert_eq!(
        k.launch,
        Some(Launch::Cmds {
            cmds: vec![
                "helm install wordpress wordpress-chart  # run on creating a cluster".into(),
                "helm list # multi CMD is valid".into(),
                "a".into(),
                "b".into()
            ],
            at: p(2, 1)
        })
    );
}

#[test]
fn appcmds_and_appenv_belong_to_their_app() {
    let k = ok("FROM scratch\nAPP mixedapp local://install.sh local://mixedcontext\nAPPCMDS mixedapp [\"kubectl apply -f app.yaml\"]\nAPPENV mixedapp key1=value1 key2=${ARCH}\nLAUNCH [\"mixedapp\"]\n");
    let app = &k.apps[0];
    assert_eq!(app.cmds, vec!["kubectl apply -f app.yaml".to_string()]);
    assert_eq!(app.env.get("key2").map(String::as_str), Some("amd64"));
    let e = errs("FROM scratch\nAPPCMDS ghost [\"x\"]\nAPPENV ghost2 a=b\n");
    assert!(
        matches!(&e[0], KubefileError::UnknownApp { line: 2, column: 9, instruction: "APPCMDS", name, .. } if name == "ghost")
    );
    assert!(matches!(
        &e[1],
        KubefileError::UnknownApp {
            line: 3,
            column: 8,
            instruction: "APPENV",
            ..
        }
    ));
    assert!(e[0].to_string().contains("APPCMDS names app `ghost`"), "{}", e[0]);
    let e = one_err("FROM scratch\nAPP a local://a\nAPPCMDS a kubectl apply -f x\n");
    assert!(matches!(
        e,
        KubefileError::BadArguments {
            line: 3,
            column: 11,
            instruction: "APPCMDS",
            ..
        }
    ));
}

#[test]
fn cni_csi_are_apps_with_sealer_labels() {
    let k = ok(
        "FROM scratch\nCNI calico local://calico.sh\nCSI openebs local://openebs\nLAUNCH [\"calico\", \"openebs\"]\n",
    );
    assert_eq!(k.apps.len(), 2);
    assert_eq!(
        k.labels
            .get("cluster.alpha.sealer.io/kube-cni-calico")
            .map(String::as_str),
        Some("true")
    );
    assert_eq!(
        k.labels
            .get("cluster.alpha.sealer.io/kube-csi-openebs")
            .map(String::as_str),
        Some("true")
    );
}

#[test]
fn kubeversion_is_a_checked_constraint() {
    let k = ok("FROM scratch\nKUBEVERSION 1.22 - 1.24\n");
    assert_eq!(k.kube_version, Some(("1.22 - 1.24".to_string(), p(2, 13))));
    assert_eq!(
        k.labels.get(KUBE_VERSION_LABEL).map(String::as_str),
        Some("1.22 - 1.24")
    );
    let e = one_err("FROM scratch\nKUBEVERSION >=1.x.2\n");
    assert!(matches!(
        e,
        KubefileError::BadArguments {
            line: 2,
            column: 13,
            instruction: "KUBEVERSION",
            ..
        }
    ));
}

#[test]
fn run_keeps_its_text_for_the_shell() {
    let k = ok("FROM scratch\nRUN mkdir zookeeper && echo $HOME # made at build\nRUN [\"touch\", \"a b\"]\n");
    assert_eq!(
        k.runs,
        vec![
            Run {
                command: RunCommand::Shell("mkdir zookeeper && echo $HOME # made at build".into()),
                at: p(2, 1)
            },
            Run {
                command: RunCommand::Exec(vec!["touch".into(), "a b".into()]),
                at: p(3, 1)
            }
        ]
    );
    assert!(matches!(
        one_err("FROM scratch\nRUN []\n"),
        KubefileError::BadArguments {
            line: 2,
            instruction: "RUN",
            ..
        }
    ));
}

#[test]
fn quoted_defaults_lose_their_quotes_as_in_docker() {
    // sealos' bitnami-postgresql Kubefile, as written
    let text = "FROM scratch\n\nENV NAME=${NAME:-\"bitnami-postgresql\"}\nENV HELM_OPTS=${HELM_OPTS:-\" \\\n--set primary.service.type=NodePort \\\n\"}\nENV Q=${Q:-'a  b'}x\n";
    let k = ok(text);
    assert_eq!(k.env["NAME"], "bitnami-postgresql");
    assert_eq!(k.env["HELM_OPTS"], " --set primary.service.type=NodePort ");
    assert_eq!(k.env["Q"], "a  bx");
    // JSON strings keep what they say
    let k = ok("FROM scratch\nCOPY [\"${D:-\\\"q\\\"}\", \"x/\"]\n");
    assert_eq!(k.copies[0].sources[0].0, "\"q\"");
}

#[test]
fn trailing_comments_outside_shell_text() {
    let k = ok("FROM scratch # Base Image\nCOPY wordpress-chart . # copy files to ClusterImage\nCOPY \"a #b\" c#d dest/\nLABEL a=b # note\n");
    assert_eq!(k.base, Base::Scratch);
    assert_eq!(k.copies[0].sources, vec![s("wordpress-chart", 2, 6)]);
    assert_eq!(k.copies[0].dest.0, ".");
    assert_eq!(k.copies[1].sources[0].0, "a #b");
    assert_eq!(k.copies[1].sources[1].0, "c#d");
    assert_eq!(k.labels.len(), 1);
}

#[test]
fn maintainer_and_from_platform() {
    let k = ok(
        "FROM --platform=linux/amd64 registry.example/sealer-apps/helm:v3.6.0\nMAINTAINER ops team <ops@example.com>\n",
    );
    assert_eq!(
        k.base,
        Base::Bundle {
            path: "registry.example/sealer-apps/helm:v3.6.0".into(),
            at: p(1, 29)
        }
    );
    assert_eq!(k.labels["maintainer"], "ops team <ops@example.com>");
    assert!(k.warnings[0].contains("--platform=linux/amd64"), "{:?}", k.warnings);
}

#[test]
fn doubling_args_stop_at_the_expansion_cap_with_line_and_column() {
    // 40 lines of ARG A{n+1}=${An}${An} would ask for 2^40 x 16 bytes.
    let mut text = String::from("ARG A0=0123456789abcdef\n");
    for n in 0..40 {
        text.push_str(&format!("ARG A{}=${{A{n}}}${{A{n}}}\n", n + 1));
    }
    text.push_str("FROM scratch\n");
    let e = errs(&text);
    let first = &e[0];
    assert!(
        matches!(first, KubefileError::BadVariable { line: 17, column: 15, problem, .. } if problem.contains("more than 1 MiB")),
        "{first:?}"
    );
}

#[test]
fn a_kubefile_of_many_megabytes_is_refused_at_line_1_without_parsing_it() {
    let text = format!("FROM scratch\n{}", "LABEL a=b\n".repeat(500_000));
    let e = one_err(&text);
    assert!(
        matches!(&e, KubefileError::TooLarge { line: 1, column: 1, .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("limit of 4 MiB"), "{e}");
}

#[test]
fn an_instruction_of_a_megabyte_is_refused_at_its_line_and_the_rest_still_checked() {
    let text = format!("FROM scratch\nRUN echo \\\n{}\nCMD [\"x\"\n", "a".repeat(300 << 10));
    let e = errs(&text);
    assert!(
        matches!(&e[0], KubefileError::TooLarge { line: 2, column: 1, what, .. } if what.contains("RUN")),
        "{:?}",
        e[0]
    );
    assert!(e[0].to_string().len() < 1000, "the error quotes the instruction");
    assert_eq!(e.len(), 2, "the CMD after it is still checked: {e:?}");
}

#[test]
fn ten_thousand_and_one_instructions_are_refused_at_the_first_over_the_limit() {
    let text = format!("FROM scratch\n{}", "LABEL a=b\n".repeat(10_000));
    let e = one_err(&text);
    assert!(matches!(&e, KubefileError::TooLarge { line: 10_001, .. }), "{e:?}");
    let under = format!("FROM scratch\n{}", "LABEL a=b\n".repeat(9_999));
    assert_eq!(ok(&under).labels["a"], "b");
}

#[test]
fn control_characters_in_paths_env_keys_and_labels_are_refused_at_their_line() {
    let e = one_err("FROM scratch\nCOPY [\"a\", \"etc/passwd\\n-rw-r--r-- root\"]\n");
    assert!(
        matches!(
            &e,
            KubefileError::InvalidName {
                line: 2,
                column: 12,
                what: "COPY path",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(!e.to_string().contains("passwd\n"), "{e}");
    let e = one_err("FROM scratch\nCOPY [\"a\\u001b[2J\", \"x/\"]\n");
    assert!(
        matches!(&e, KubefileError::InvalidName { line: 2, column: 7, .. }),
        "{e:?}"
    );
    let e = one_err("FROM scratch\nENV A-B=x\n");
    assert!(
        matches!(
            &e,
            KubefileError::InvalidName {
                line: 2,
                column: 5,
                what: "ENV key",
                ..
            }
        ),
        "{e:?}"
    );
    let e = one_err("FROM scratch\nLABEL a=b\u{0}c\n");
    assert!(
        matches!(&e, KubefileError::BadArguments { line: 2, .. }) || matches!(&e, KubefileError::Json { .. }),
        "{e:?}"
    );
}

#[test]
fn an_error_quoting_a_huge_line_shows_an_excerpt() {
    // Under the instruction limit (256 KiB), so the error is COPY's own, quoting the line.
    let text = format!("FROM scratch\nCOPY {}\n", "x".repeat(200 << 10));
    let e = parse_with(&text, &[]).unwrap_err();
    let shown = e.to_string();
    assert!(shown.len() < 2000, "{} bytes", shown.len());
    assert!(shown.starts_with("Kubefile:2:1: COPY"), "{}", &shown[..100]);
    assert!(shown.contains("more characters)"), "{shown}");
}

/// 10,000 `LABEL` lines of four 256 KiB references each would hold 10 GiB of labels: the
/// references of one Kubefile produce at most 16 MiB in all, and the error says where the
/// budget ran out. Thousands of such errors print as 50 and a count.
#[test]
fn many_lines_of_large_references_hit_the_total_expansion_budget() {
    let value = "x".repeat(250 << 10);
    let mut text = format!("FROM scratch\nARG A={value}\n");
    for i in 0..200 {
        text.push_str(&format!("LABEL l{i}=${{A}}${{A}}${{A}}${{A}}\n"));
    }
    let errors = parse(Path::new("Kubefile"), &text, &BTreeMap::new(), "amd64").unwrap_err();
    // 16 MiB is 16 lines of 1000 KiB: the 17th line is the first refused, at its first `$`
    // that crosses the budget.
    let first = errors.0[0].to_string();
    assert!(first.starts_with("Kubefile:19:"), "{first}");
    assert!(first.contains("more than 16 MiB in all"), "{first}");
    assert_eq!(errors.0.len(), 200 - 16);
    let shown = errors.to_string();
    assert!(
        shown.ends_with("... and 134 more errors"),
        "{}",
        &shown[shown.len() - 200..]
    );
    assert_eq!(shown.matches("Kubefile:").count(), 50);
}
