//! Discovery over real third-party inputs: the shared corpus's cases (see its README), read in
//! place. Each case's TRUTH.txt lists the `[default]` images that must be found with their exact
//! names, `[optional]` ones that may be, and `[not-deployed-traps]` that must not be.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use bundle_format::reference::Reference;

use super::{discover_with, RenderOptions};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus");

/// The sections of a TRUTH.txt, each a set of normalised references.
#[derive(Default)]
struct Truth {
    default: BTreeSet<String>,
    optional: BTreeSet<String>,
    traps: BTreeSet<String>,
}

fn truth(path: &Path) -> Truth {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut truth = Truth::default();
    let mut section = "";
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.starts_with('[') {
            section = line;
            continue;
        }
        if line.is_empty() {
            continue;
        }
        let reference: Reference = line
            .parse()
            .unwrap_or_else(|e| panic!("{}: `{line}`: {e}", path.display()));
        let set = match section {
            "[default]" => &mut truth.default,
            "[optional]" => &mut truth.optional,
            "[not-deployed-traps]" => &mut truth.traps,
            other => panic!("{}: unknown section `{other}`", path.display()),
        };
        set.insert(reference.to_string());
    }
    truth
}

/// Every file under the case's `context/`, as (path relative to it, path on disk).
fn context_files(context: &Path) -> Vec<(String, PathBuf)> {
    let mut files: Vec<(String, PathBuf)> = walkdir::WalkDir::new(context)
        .sort_by_file_name()
        .into_iter()
        .map(|e| e.expect("the corpus is readable"))
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e.path().strip_prefix(context).expect("walked under the context");
            (rel.to_string_lossy().replace('\\', "/"), e.path().to_path_buf())
        })
        .collect();
    files.sort();
    files
}

/// Discovery over the case's context finds every `[default]` image, nothing outside
/// `[default]` and `[optional]`, and no trap.
fn check_case(case: &str) {
    let dir = Path::new(CORPUS).join(case);
    if !dir.is_dir() {
        return eprintln!("skipped: the corpus case {} is absent", dir.display());
    }
    let truth = truth(&dir.join("TRUTH.txt"));
    let files = context_files(&dir.join("context"));
    let discovery = match discover_with(&files, &[], &RenderOptions::default()) {
        Ok(d) => d,
        Err(errors) => panic!(
            "{case}: {:#?}",
            errors.iter().map(|e| e.to_string()).collect::<Vec<_>>()
        ),
    };
    let found: BTreeSet<String> = discovery.images.iter().map(|f| f.reference.to_string()).collect();
    let missing: Vec<&String> = truth.default.difference(&found).collect();
    let unexpected: Vec<String> = discovery
        .images
        .iter()
        .filter(|f| {
            let r = f.reference.to_string();
            !truth.default.contains(&r) && !truth.optional.contains(&r)
        })
        .map(|f| format!("{} ({}:{})", f.reference, f.file, f.line))
        .collect();
    let traps: Vec<&String> = truth.traps.intersection(&found).collect();
    assert!(
        missing.is_empty() && unexpected.is_empty() && traps.is_empty(),
        "{case}: missing {missing:#?}\nunexpected {unexpected:#?}\ntraps {traps:#?}\nwarnings {:#?}",
        discovery.warnings
    );
}

#[test]
fn corpus_m01_calico_manifest() {
    check_case("manifests/M01-calico");
}

#[test]
fn corpus_m06_kube_prometheus_with_the_operators_config_reloader() {
    check_case("manifests/M06-kube-prometheus");
}

#[test]
fn corpus_k05_mysql_operator_yaml_in_the_context_root() {
    check_case("kubefiles/K05-sealer-app-mysql-operator");
}

// Charts: rendered as `helm template` renders them, so helper-composed names are exact and
// components disabled by default stay out.

#[test]
fn corpus_c02_cert_manager_with_the_acmesolver_from_the_controller_args() {
    check_case("charts/C02-cert-manager");
}

#[test]
fn corpus_c04_metrics_server_tag_as_its_helper_writes_it() {
    check_case("charts/C04-metrics-server");
}

#[test]
fn corpus_c06_longhorn_images_in_args_and_env() {
    check_case("charts/C06-longhorn");
}

#[test]
fn corpus_k14_bitnami_postgresql_through_the_common_library_chart() {
    check_case("kubefiles/K14-sealos-bitnami-postgresql");
}

#[test]
fn corpus_k08_k10_k13_sealer_apps() {
    for case in [
        "kubefiles/K08-sealer-app-zookeeper",
        "kubefiles/K10-sealer-fixture-appcmds",
        "kubefiles/K13-sealer-doc-kyverno-appimage",
    ] {
        check_case(case);
    }
}
