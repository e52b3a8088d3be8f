//! Reading the Kubefile a build starts from: capped, UTF-8 (an error at line:column if not), with
//! `--build-arg` values; on parse errors, the COPY and APP sources of what did parse are checked
//! against the build context too, so that every problem of the file is reported at once.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};

use crate::cli::KubefileArgs;
use crate::kubefile::{self, Kubefile};
use crate::{context, download};

/// The Kubefile's directory, and the build context (`--context`, else that directory).
pub(super) fn dirs(args: &KubefileArgs) -> (PathBuf, PathBuf) {
    let kubefile_dir = match args.kubefile.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let context_dir = args.context.clone().unwrap_or_else(|| kubefile_dir.clone());
    (kubefile_dir, context_dir)
}

pub(crate) fn load_kubefile(args: &KubefileArgs) -> Result<Kubefile> {
    let path = &args.kubefile;
    // Read at most one byte past the limit: a huge file is refused by the parser, not slurped.
    let mut bytes = Vec::new();
    fs::File::open(path)
        .and_then(|f| f.take(kubefile::MAX_KUBEFILE_BYTES as u64 + 1).read_to_end(&mut bytes))
        .with_context(|| format!("failed to read Kubefile {}", path.display()))?;
    if bytes.len() > kubefile::MAX_KUBEFILE_BYTES {
        return Err(kubefile::too_large(path).into());
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = valid.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(&valid[line_start..]).chars().count() + 1;
        anyhow!(
            "{}:{line}:{column}: the Kubefile is not UTF-8 text\n  hint: save it as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)",
            path.display()
        )
    })?;
    let mut build_args = BTreeMap::new();
    for a in &args.build_args {
        let (k, v) = a
            .split_once('=')
            .ok_or_else(|| anyhow!("--build-arg `{a}` is not NAME=VALUE"))?;
        build_args.insert(k.to_string(), v.to_string());
    }
    let (kubefile, errors) = kubefile::parse_partial(path, &text, &build_args, &args.arch);
    if !errors.is_empty() {
        // The COPY and APP sources of what did parse are checked too: every problem at once.
        let (_, context_dir) = dirs(args);
        let mut local = kubefile.clone();
        for c in &mut local.copies {
            c.sources.retain(|(s, _)| !download::is_remote(s));
        }
        local.copies.retain(|c| !c.sources.is_empty());
        for a in &mut local.apps {
            a.sources.retain(|(s, _)| !download::is_remote(s));
        }
        let context_errors = context::resolve_layer(&context_dir, &local, &context::Layer::default())
            .err()
            .unwrap_or_default();
        let n = errors.len() + context_errors.len();
        let mut text = errors.to_string();
        for e in &context_errors {
            text.push('\n');
            text.push_str(&e.to_string());
        }
        bail!(
            "{text}\n{n} error{} in {}",
            if n == 1 { "" } else { "s" },
            path.display()
        );
    }
    for w in &kubefile.warnings {
        terminal::log(format_args!("warning: {w}"));
    }
    Ok(kubefile)
}
