//! The build context's copy semantics, against real directories in a temporary dir.

use super::*;
use crate::kubefile::parse;
use std::os::unix::fs::{symlink, PermissionsExt};

struct Ctx {
    _tmp: tempfile::TempDir,
    /// The canonical build context directory.
    root: PathBuf,
    /// A canonical directory next to the context (outside it).
    outside: PathBuf,
}

fn ctx() -> Ctx {
    let tmp = tempfile::tempdir().unwrap();
    let base = fs::canonicalize(tmp.path()).unwrap();
    let root = base.join("ctx");
    let outside = base.join("outside");
    fs::create_dir(&root).unwrap();
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("secret"), "secret").unwrap();
    Ctx {
        _tmp: tmp,
        root,
        outside,
    }
}

impl Ctx {
    fn file(&self, rel: &str, contents: &str, mode: u32) -> PathBuf {
        let p = self.root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, contents).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        p
    }
    fn dir(&self, rel: &str, mode: u32) -> PathBuf {
        let p = self.root.join(rel);
        fs::create_dir_all(&p).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        p
    }
    fn link(&self, rel: &str, target: &str) -> PathBuf {
        let p = self.root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        symlink(target, &p).unwrap();
        p
    }
    fn plan(&self, kubefile: &str) -> Result<Vec<PlannedEntry>, ContextError> {
        let k = parse(Path::new("Kubefile"), kubefile, &BTreeMap::new(), "amd64").unwrap();
        resolve(&self.root, &k)
    }
    fn ok(&self, kubefile: &str) -> Vec<PlannedEntry> {
        match self.plan(kubefile) {
            Ok(p) => p,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    fn err(&self, kubefile: &str) -> ContextError {
        match self.plan(kubefile) {
            Ok(p) => panic!("expected an error, got {p:#?}"),
            Err(e) => e,
        }
    }
}

/// `dest kind` lines, e.g. `etc d755`, `etc/a f644:5`, `l s->target`.
fn summary(entries: &[PlannedEntry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| match &e.kind {
            Kind::Dir { mode } => format!("{} d{mode:o}", e.dest),
            Kind::File { mode, size } => format!("{} f{mode:o}:{size}", e.dest),
            Kind::Symlink { target } => format!("{} s->{target}", e.dest),
        })
        .collect()
}

fn get<'e>(entries: &'e [PlannedEntry], dest: &str) -> &'e PlannedEntry {
    entries.iter().find(|e| e.dest == dest).unwrap()
}

#[test]
fn directory_copy_with_nested_files() {
    let c = ctx();
    c.file("manifests/a.yaml", "aaaaa", 0o644);
    c.file("manifests/sub/b.yaml", "bb", 0o600);
    c.file("manifests/sub/run.sh", "#!/bin/sh\n", 0o4755);
    c.dir("manifests/sub", 0o750);
    c.dir("manifests", 0o700);
    let plan = c.ok("FROM scratch\nCOPY manifests etc/manifests\n");
    assert_eq!(
        summary(&plan),
        vec![
            "etc d755",
            "etc/manifests d700",
            "etc/manifests/a.yaml f644:5",
            "etc/manifests/sub d750",
            "etc/manifests/sub/b.yaml f600:2",
            "etc/manifests/sub/run.sh f755:10",
        ]
    );
    let a = get(&plan, "etc/manifests/a.yaml");
    assert_eq!(a.source, c.root.join("manifests/a.yaml"));
    assert_eq!(a.from, Pos::new(2, 1));
    assert_eq!(get(&plan, "etc").source, PathBuf::new());
    assert_eq!(get(&plan, "etc/manifests").source, c.root.join("manifests"));
    // Trailing slash and `/.` mean the same; the root as dest copies into the root.
    let plan = c.ok("FROM scratch\nCOPY manifests/. /\n");
    assert_eq!(summary(&plan)[0], "a.yaml f644:5");
    assert_eq!(plan.len(), 4);
}

#[test]
fn whole_context_copy() {
    let c = ctx();
    c.file("x", "1", 0o644);
    c.file("d/y", "22", 0o644);
    c.dir("d", 0o755);
    let plan = c.ok("FROM scratch\nCOPY . /\n");
    assert_eq!(summary(&plan), vec!["d d755", "d/y f644:2", "x f644:1"]);
}

#[test]
fn file_dest_rules() {
    let c = ctx();
    c.file("a.txt", "a", 0o644);
    c.file("b.txt", "b", 0o640);
    c.dir("d", 0o755);
    c.file("d/in", "i", 0o644);
    let dests = |k: &str| -> Vec<String> { c.ok(k).into_iter().map(|e| e.dest).collect() };
    assert_eq!(dests("FROM scratch\nCOPY a.txt renamed.txt\n"), vec!["renamed.txt"]);
    assert_eq!(
        dests("FROM scratch\nCOPY a.txt x/y/renamed\n"),
        vec!["x", "x/y", "x/y/renamed"]
    );
    assert_eq!(dests("FROM scratch\nCOPY a.txt dir/\n"), vec!["dir", "dir/a.txt"]);
    assert_eq!(dests("FROM scratch\nCOPY ./a.txt .\n"), vec!["a.txt"]);
    assert_eq!(dests("FROM scratch\nCOPY a.txt /\n"), vec!["a.txt"]);
    assert_eq!(dests("FROM scratch\nCOPY a.txt /abs/x\n"), vec!["abs", "abs/x"]);
    assert_eq!(
        dests("FROM scratch\nCOPY a.txt b.txt out\n"),
        vec!["out", "out/a.txt", "out/b.txt"]
    );
    // A file next to a directory source goes inside dest too.
    assert_eq!(
        dests("FROM scratch\nCOPY a.txt d out\n"),
        vec!["out", "out/a.txt", "out/in"]
    );
    // A dest that an earlier instruction made a directory is a directory.
    assert_eq!(
        dests("FROM scratch\nCOPY d x\nCOPY a.txt x\n"),
        vec!["x", "x/a.txt", "x/in"]
    );
    match c.err("FROM scratch\nCOPY a.txt  sub/../../x\n") {
        ContextError::BadDest {
            line,
            column,
            text,
            problem,
            ..
        } => {
            assert_eq!((line, column), (2, 13));
            assert_eq!(text, "sub/../../x");
            assert_eq!(problem, "contains `..`");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn globs() {
    let c = ctx();
    c.file("a.yaml", "a", 0o644);
    c.file("b.yaml", "b", 0o644);
    c.file("c.txt", "c", 0o644);
    c.file(".hidden.yaml", "h", 0o644);
    c.file("sub/d.yaml", "d", 0o644);
    c.file("sub/e.txt", "e", 0o644);
    let dests = |k: &str| -> Vec<String> { c.ok(k).into_iter().map(|e| e.dest).collect() };
    assert_eq!(
        dests("FROM scratch\nCOPY *.yaml out/\n"),
        vec!["out", "out/.hidden.yaml", "out/a.yaml", "out/b.yaml"]
    );
    assert_eq!(dests("FROM scratch\nCOPY */*.yaml out\n"), vec!["out"]);
    assert_eq!(dests("FROM scratch\nCOPY s?b/*.yaml out/\n"), vec!["out", "out/d.yaml"]);
    assert_eq!(
        dests("FROM scratch\nCOPY [ab].yaml c.t?t out\n"),
        vec!["out", "out/a.yaml", "out/b.yaml", "out/c.txt"]
    );
    // One match, dest without a slash: the file is renamed.
    assert_eq!(dests("FROM scratch\nCOPY c.t?t renamed\n"), vec!["renamed"]);
    match c.err("FROM scratch\nCOPY a.yaml  nomatch*.x y\n") {
        ContextError::NoMatch {
            line,
            column,
            text,
            instruction,
            ..
        } => {
            assert_eq!((line, column, instruction), (2, 14, "COPY"));
            assert_eq!(text, "nomatch*.x");
        }
        other => panic!("{other:?}"),
    }
    match c.err("FROM scratch\nCOPY [ y\n") {
        ContextError::BadPattern { line, column, text, .. } => {
            assert_eq!((line, column, text.as_str()), (2, 6, "["));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn glob_dir_matches_copy_their_contents() {
    let c = ctx();
    c.file("charts/nginx/Chart.yaml", "n", 0o644);
    c.file("charts/redis/Chart.yaml", "r", 0o644);
    c.dir("charts/nginx", 0o755);
    c.dir("charts/redis", 0o755);
    let plan = c.ok("FROM scratch\nCOPY charts/* all/\n");
    // Docker semantics: each matched directory's contents go into dest.
    assert_eq!(summary(&plan), vec!["all d755", "all/Chart.yaml f644:1"]);
    assert_eq!(
        get(&plan, "all/Chart.yaml").source,
        c.root.join("charts/redis/Chart.yaml")
    );
}

#[test]
fn missing_source() {
    let c = ctx();
    c.file("present", "p", 0o644);
    let e = c.err("FROM scratch\nCOPY present missing.txt dest/\n");
    assert_eq!(
        e,
        ContextError::NotFound {
            file: "Kubefile".into(),
            line: 2,
            column: 14,
            instruction: "COPY",
            text: "missing.txt".into(),
            context: c.root.clone(),
        }
    );
    assert_eq!(
        e.to_string().lines().next().unwrap(),
        format!(
            "Kubefile:2:14: COPY source `missing.txt` not found in build context {}",
            c.root.display()
        )
    );
    let e = c.err("FROM scratch\nAPP web local://nope/x.yaml\n");
    assert!(matches!(
        e,
        ContextError::NotFound {
            line: 2,
            column: 9,
            instruction: "APP",
            ..
        }
    ));
}

#[test]
fn dotdot_source_escapes() {
    let c = ctx();
    c.file("sub/x", "x", 0o644);
    let e = c.err("FROM scratch\nCOPY sub/x ../outside/secret dest/\n");
    match e {
        ContextError::Escapes {
            line,
            column,
            text,
            resolved,
            ..
        } => {
            assert_eq!((line, column), (2, 12));
            assert_eq!(text, "../outside/secret");
            assert_eq!(resolved, c.outside.join("secret"));
        }
        other => panic!("{other:?}"),
    }
    // `..` that stays inside is fine.
    assert_eq!(c.ok("FROM scratch\nCOPY sub/../sub/x y\n")[0].dest, "y");
    let e = c.err("FROM scratch\nCOPY sub/../../x y\n");
    assert!(matches!(e, ContextError::Escapes { line: 2, column: 6, .. }));
}

#[test]
fn absolute_source_escapes() {
    let c = ctx();
    let secret = c.outside.join("secret");
    let e = c.err(&format!("FROM scratch\nCOPY {} y\n", secret.display()));
    match &e {
        ContextError::Escapes {
            line, column, resolved, ..
        } => {
            assert_eq!((*line, *column), (2, 6));
            assert_eq!(resolved, &secret);
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("outside the build context"));
}

#[test]
fn symlink_source_pointing_outside() {
    let c = ctx();
    c.link("escape", &c.outside.join("secret").display().to_string());
    c.link("rel-escape", "../outside");
    match c.err("FROM scratch\nCOPY escape y\n") {
        ContextError::Escapes {
            line,
            column,
            text,
            resolved,
            ..
        } => {
            assert_eq!((line, column, text.as_str()), (2, 6, "escape"));
            assert_eq!(resolved, c.outside.join("secret"));
        }
        other => panic!("{other:?}"),
    }
    // Through a symlinked directory in the middle of the path, and through a glob.
    let e = c.err("FROM scratch\nCOPY rel-escape/secret y\n");
    assert!(matches!(e, ContextError::Escapes { ref resolved, .. } if *resolved == c.outside.join("secret")));
    let e = c.err("FROM scratch\nCOPY rel-*/* y\n");
    assert!(matches!(e, ContextError::Escapes { line: 2, column: 6, .. }));
}

#[test]
fn symlink_source_inside_is_followed() {
    let c = ctx();
    c.file("real/file.txt", "12345", 0o600);
    c.link("alias.txt", "real/file.txt");
    c.link("dir-alias", "real");
    let plan = c.ok("FROM scratch\nCOPY alias.txt out/\nCOPY dir-alias tree/\n");
    assert_eq!(
        summary(&plan),
        vec!["out d755", "out/alias.txt f600:5", "tree d755", "tree/file.txt f600:5"]
    );
    assert_eq!(get(&plan, "out/alias.txt").source, c.root.join("real/file.txt"));
    c.link("dangling", "nowhere");
    let e = c.err("FROM scratch\nCOPY dangling y\n");
    match e {
        ContextError::BrokenSymlink {
            line, column, target, ..
        } => {
            assert_eq!((line, column, target.as_str()), (2, 6, "nowhere"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn symlinks_inside_a_copied_directory() {
    let c = ctx();
    c.file("app/conf/real.yaml", "r", 0o644);
    c.link("app/conf/current.yaml", "real.yaml");
    c.link("app/bin/conf", "../conf");
    c.link("app/self", ".");
    c.link("app/dangling-inside", "conf/not-yet.yaml");
    let plan = c.ok("FROM scratch\nCOPY app opt/app\n");
    let s = summary(&plan);
    assert!(
        s.contains(&"opt/app/conf/current.yaml s->real.yaml".to_string()),
        "{s:#?}"
    );
    assert!(s.contains(&"opt/app/bin/conf s->../conf".to_string()), "{s:#?}");
    assert!(s.contains(&"opt/app/self s->.".to_string()), "{s:#?}");
    assert!(
        s.contains(&"opt/app/dangling-inside s->conf/not-yet.yaml".to_string()),
        "{s:#?}"
    );
    assert_eq!(get(&plan, "opt/app/self").source, c.root.join("app/self"));

    // Relative, but out of the copied tree (though still inside the context).
    c.file("shared/common.yaml", "c", 0o644);
    c.link("app2/common.yaml", "../shared/common.yaml");
    match c.err("FROM scratch\nCOPY \\\n     app2 dest/\n") {
        ContextError::EscapingSymlink {
            line,
            column,
            link,
            target,
            tree,
            ..
        } => {
            assert_eq!((line, column), (3, 6));
            assert_eq!(link, c.root.join("app2/common.yaml"));
            assert_eq!(target, "../shared/common.yaml");
            assert_eq!(tree, c.root.join("app2"));
        }
        other => panic!("{other:?}"),
    }
    c.link("app3/sub/up", "../../x");
    assert!(matches!(
        c.err("FROM scratch\nCOPY app3 d\n"),
        ContextError::EscapingSymlink { ref target, .. } if target == "../../x"
    ));
}

#[test]
fn absolute_symlink_inside_a_directory() {
    let c = ctx();
    c.file("app/a", "a", 0o644);
    let abs = c.root.join("app/a").display().to_string();
    c.link("app/abs", &abs);
    let e = c.err("FROM scratch\nAPP web local://app\n");
    match &e {
        ContextError::AbsoluteSymlink {
            line,
            column,
            instruction,
            link,
            target,
            ..
        } => {
            assert_eq!((*line, *column, *instruction), (2, 9, "APP"));
            assert_eq!(link, &c.root.join("app/abs"));
            assert_eq!(target, &abs);
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().starts_with("Kubefile:2:9: symlink "));
}

#[test]
fn special_files_are_errors() {
    let c = ctx();
    c.dir("run", 0o755);
    let _listener = std::os::unix::net::UnixListener::bind(c.root.join("run/agent.sock")).unwrap();
    match c.err("FROM scratch\nCOPY run /run\n") {
        ContextError::SpecialFile {
            line,
            column,
            path,
            kind,
            ..
        } => {
            assert_eq!((line, column, kind), (2, 6, "socket"));
            assert_eq!(path, c.root.join("run/agent.sock"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        c.err("FROM scratch\nCOPY run/agent.sock x\n"),
        ContextError::SpecialFile { kind: "socket", .. }
    ));
}

#[test]
fn apps_land_under_application_apps() {
    let c = ctx();
    c.file("apps/nginx/deploy.yaml", "d", 0o644);
    c.file("apps/nginx/svc.yaml", "s", 0o644);
    c.dir("apps/nginx", 0o755);
    c.file("values-amd64.yaml", "v", 0o644);
    let plan = c.ok("FROM scratch\nAPP nginx local://apps/nginx local://values-${ARCH}.yaml\n");
    assert_eq!(
        summary(&plan),
        vec![
            "application d755",
            "application/apps d755",
            "application/apps/nginx d755",
            "application/apps/nginx/nginx d755",
            "application/apps/nginx/nginx/deploy.yaml f644:1",
            "application/apps/nginx/nginx/svc.yaml f644:1",
            "application/apps/nginx/values-amd64.yaml f644:1",
        ]
    );
    assert!(plan.iter().all(|e| e.from == Pos::new(2, 1)));
}

#[test]
fn layering_later_copy_wins() {
    let c = ctx();
    c.file("v1/conf.yaml", "one", 0o644);
    c.file("v1/keep.yaml", "keep", 0o644);
    c.file("v2/conf.yaml", "two!", 0o600);
    c.file("flat", "f", 0o644);
    c.dir("v1", 0o755);
    c.dir("v2", 0o700);
    let plan = c.ok("FROM scratch\nCOPY v1 app/\nCOPY v2/conf.yaml app/conf.yaml\n");
    assert_eq!(
        summary(&plan),
        vec!["app d755", "app/conf.yaml f600:4", "app/keep.yaml f644:4"]
    );
    let conf = get(&plan, "app/conf.yaml");
    assert_eq!(
        (conf.source.clone(), conf.from),
        (c.root.join("v2/conf.yaml"), Pos::new(3, 1))
    );
    // A directory over a directory merges, and its mode wins.
    let plan = c.ok("FROM scratch\nCOPY v1 app/\nCOPY v2 app/\n");
    assert_eq!(
        summary(&plan),
        vec!["app d700", "app/conf.yaml f600:4", "app/keep.yaml f644:4"]
    );
    // A file (or symlink) over a directory drops what was under it; a directory needed
    // as a parent replaces a file.
    c.file("t1/sub/a", "a", 0o644);
    c.file("t1/sub/b", "b", 0o644);
    c.file("t2/sub", "now a file", 0o644);
    c.link("t3/sub", "elsewhere");
    let plan = c.ok("FROM scratch\nCOPY t1 app/\nCOPY t2 app/\nCOPY flat x\nCOPY flat x/y\n");
    assert_eq!(
        summary(&plan),
        vec!["app d755", "app/sub f644:10", "x d755", "x/y f644:1"]
    );
    assert_eq!(get(&plan, "x").source, PathBuf::new());
    let plan = c.ok("FROM scratch\nCOPY t1 app/\nCOPY t3 app/\n");
    assert_eq!(summary(&plan), vec!["app d755", "app/sub s->elsewhere"]);
    // A single file onto an existing directory goes inside it, as in Docker.
    let plan = c.ok("FROM scratch\nCOPY t1 app/\nCOPY flat app/sub\n");
    assert_eq!(
        summary(&plan),
        vec![
            "app d755",
            "app/sub d755",
            "app/sub/a f644:1",
            "app/sub/b f644:1",
            "app/sub/flat f644:1"
        ]
    );
    // APP and COPY apply in file order.
    let plan = c.ok("FROM scratch\nAPP web local://v1\nCOPY flat application/apps/web/v1/conf.yaml\n");
    assert_eq!(
        get(&plan, "application/apps/web/v1/conf.yaml").source,
        c.root.join("flat")
    );
}

#[test]
fn bad_context() {
    let c = ctx();
    let k = parse(Path::new("Kubefile"), "FROM scratch\n", &BTreeMap::new(), "amd64").unwrap();
    let missing = c.root.join("nope");
    let e = resolve(&missing, &k).unwrap_err();
    assert!(matches!(e, ContextError::BadContext { ref context, .. } if *context == missing));
}
