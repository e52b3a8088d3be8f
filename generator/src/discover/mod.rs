//! Image discovery: finds every container image reference in the files a bundle will carry,
//! with the bundle file and line it came from, so that `delivery build` can put every image an
//! offline install needs into the bundle. A missed image is the failure that matters, so the
//! rules lean towards finding too much (an unwanted image is dropped with `--ignore-image`).
//!
//! What counts, by file (bundle paths; sealer's layout plus anything YAML):
//! - **Image lists**: a file named `imageList`, or ending in `.images` or `images.txt`, anywhere
//!   (chart directories and chart archives included): one reference per line; `#` starts a
//!   comment; blank lines are skipped.
//! - **Manifests**: every `*.yaml` / `*.yml` outside a Helm chart, each of its Kubernetes
//!   documents: a mapping with `apiVersion` and `kind` (a `List` with `items` too). A file with
//!   none (a CI workflow, a docker-compose file, mkdocs.yml) is skipped with a warning naming it.
//!   In a Kubernetes document:
//!   - each mapping key `image` with a scalar value is an image (containers, init and ephemeral
//!     containers, custom resources' `spec.image`). An `image` key whose value is a mapping with
//!     `repository` (or `name` + `tag`) is composed as in chart values below, without Helm's
//!     defaults. An empty `image` is a warning.
//!   - operator images (guesses, see `operator.rs`): in every `args` / `command` list,
//!     `--flag=REF` and `--flag REF`; in every `env` list, the value of a variable whose name
//!     mentions IMAGE, one reference or `version=REF` entries separated by new lines, spaces,
//!     commas or semicolons. A value counts when it parses as a reference and has a registry host
//!     or a tag or digest (and a `/` unless the flag or variable names an image); others are
//!     skipped silently. The line is that of the scalar (of the entry's line in a block scalar).
//!
//!   A file that is not valid YAML is an error at file:line:column when it looks like Kubernetes
//!   (a line starts with `apiVersion:` or `kind:`), and a warning otherwise.
//! - **Helm charts** are rendered as `helm template` renders them (`render.rs`, the
//!   `helm-render` crate): with the chart's values, the vendor's `<chart>.values.yaml` beside
//!   it, subcharts, `global`, and the base bundle's Kubernetes version as `.Capabilities`. The
//!   rendered objects are scanned as manifests (so operator args and env count, and components
//!   the values disable do not). A template that fails to render is a warning at
//!   `chart/templates/file:line` with the reason, and that chart's values are then scanned too,
//!   by the rules below; `--chart-images all` scans every chart's values as well.
//!   Charts are found as a directory holding `Chart.yaml`, or a `.tgz` / `.tar.gz` archive whose
//!   members all sit under one `<name>/` directory with `<name>/Chart.yaml` (read in memory:
//!   members over [`MAX_CHART_MEMBER`] are skipped with a warning, an archive expanding past
//!   [`MAX_CHART_EXPANDED`] is an error). An archive under a `charts/` directory that cannot be
//!   read is an error of its own ([`DiscoverError::ChartArchive`]); one that reads but holds no
//!   chart is a warning; elsewhere, a `.tgz` that is no chart (an image tarball) is skipped.
//!   The values scan, for each chart:
//!   - values are `values.yaml`, deep-merged with the override file sealer puts beside the chart,
//!     `<dir>.values.yaml` for `<dir>/` and `<stem>.values.yaml` for `<stem>.tgz` (`.values.yml`
//!     too, then `<chart name>.values.yaml` as a fallback). Merging follows Helm: maps merge key
//!     by key, the override wins, a `null` in the override deletes the key.
//!   - in the merged values: every scalar `image`; every mapping with `repository` (Bitnami's
//!     `{registry, repository, tag, digest}`), with `image` plus `registry`/`tag`/`digest`
//!     (GitLab's), or with `name` + `tag`. A digest wins over the tag (`repo@sha256:...`, as
//!     Bitnami renders it); an empty or missing tag is the chart's `appVersion`;
//!     `global.imageRegistry` replaces the registry of mappings that have a `registry` key.
//!     A plain YAML number as tag is printed as Helm prints it (values become float64 and Go's
//!     `%v` prints them: `7.10` is `7.1`, `1000000` is `1e+06`), with a warning when that differs
//!     from the text. The line is that of the part set by the highest-precedence values file
//!     (so a tag changed by the override points at the override), the `repository` line on a tie.
//!     Scalars under keys ending in `Image` / `_image` / `-image` that hold a tag or digest, and
//!     `{name, tag}` mappings not under an `image`-like key, are guesses: an invalid one is a
//!     warning, not an error (such a scalar without a tag is a warning too: it is usually joined
//!     with a tag elsewhere). Mappings without a repository (only `pullPolicy`) are skipped, and
//!     so are values containing `{{` (resolved by `tpl` at install time), with a warning.
//!   - templates (`templates/**/*.yaml|yml|tpl`) are Go templates and are not parsed: each line
//!     `image: <literal>` (quoted or not, in a list item or not) outside comments is an image; a
//!     value containing `{{` is left to the values scan.
//!   - `crds/**/*.yaml` are plain YAML that Helm applies as-is: scanned as manifests.
//!   - subcharts (`charts/<dir>/` and `charts/*.tgz` of a chart) are charts, with the parent's
//!     values under the subchart's name (or each `alias` of it in the parent's `dependencies`)
//!     overriding, and the parent's `global` merged over the subchart's. Images in disabled
//!     subcharts and components are found too. A dependency missing from `charts/` is a warning.
//!
//! YAML is read as kubectl and Helm read it: a quoted scalar whose continuation lines sit left of
//! its key (which YAML 1.2 forbids but libyaml and go-yaml accept) parses.
//!
//! Every value found must parse as a [`Reference`]; a failure is [`DiscoverError::BadReference`].
//! References equal (normalised) to one in `ignore` are dropped silently; an `ignore` entry that
//! matches nothing is a warning. The result is deduplicated by normalised reference, keeping the
//! first source in (file, line) order, and sorted by reference. All errors of all files are
//! returned at once, sorted by file and line.

mod chart;
mod manifest;
pub(crate) use manifest::{is_image_list, is_yaml};
mod operator;
mod render;
mod template;
mod values;
mod yaml;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use bundle_format::reference::{Reference, ReferenceError};

pub use render::{ChartImages, RenderOptions};

use chart::{archive_stem, chart_root, is_subchart_root, read_disk, split_dir, Blob, Chart};

/// Members of a chart archive larger than this are skipped (with a warning if they matter).
pub const MAX_CHART_MEMBER: u64 = 10 << 20;
/// A chart archive that expands to more than this is an error (Helm's own loader stops at 100 MiB).
pub const MAX_CHART_EXPANDED: u64 = 100 << 20;
/// Subcharts nested deeper than this are an error (only a crafted archive gets there).
const MAX_CHART_DEPTH: u32 = 8;
/// YAML nested deeper than this is an error: the tree walks are recursive.
const MAX_YAML_DEPTH: usize = 256;
/// YAML documents whose aliases expand to more nodes than this are an error.
const MAX_YAML_NODES: usize = 1_000_000;

/// One image reference found in the bundle's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub reference: Reference,
    /// Bundle path, e.g. `manifests/app.yaml` or `charts/redis-1.0.tgz:redis/values.yaml`.
    pub file: String,
    /// 1-based line of the value.
    pub line: usize,
}

/// Every image the bundle's files name, and what looked wrong without being an error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovery {
    /// Deduplicated by normalised reference (keeping the first source), sorted by reference.
    pub images: Vec<Found>,
    /// `file:line: message` lines, in the order the files were scanned.
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("{file}:{line}:{column}: invalid YAML: {message}")]
    Yaml {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{file}:{line}: invalid image reference `{text}`: {reason}; {hint}")]
    BadReference {
        file: String,
        line: usize,
        text: String,
        reason: String,
        hint: String,
    },
    #[error("failed to read {file} from {}: {source}", path.display())]
    Io {
        file: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{file}: {message}")]
    Chart { file: String, message: String },
    /// A `.tgz` among charts (or one holding a Chart.yaml) that cannot be read as a gzipped tar.
    #[error("{file}: not a readable Helm chart archive ({reason}); a `.tgz` in a `charts/` directory must be a chart packaged by `helm package`: repackage it, or move it out of `charts/` if it is something else")]
    ChartArchive { file: String, reason: String },
}

impl DiscoverError {
    /// (file, line) for ordering; 0 for errors about a whole file.
    fn at(&self) -> (&str, usize) {
        match self {
            DiscoverError::Yaml { file, line, .. } | DiscoverError::BadReference { file, line, .. } => (file, *line),
            DiscoverError::Io { file, .. }
            | DiscoverError::Chart { file, .. }
            | DiscoverError::ChartArchive { file, .. } => (file, 0),
        }
    }
}

/// Find every image reference in `files`: (bundle path, path on disk) of every file the bundle
/// will contain. See the module doc for the rules.
/// The values scan alone (no rendering): what the unit tests of `values.rs` exercise.
#[cfg(test)]
pub fn discover(files: &[(String, PathBuf)], ignore: &[Reference]) -> Result<Discovery, Vec<DiscoverError>> {
    let values = RenderOptions {
        chart_images: ChartImages::Values,
        ..RenderOptions::default()
    };
    discover_with(files, ignore, &values)
}

/// [`discover`], with charts rendered as `render` says.
pub fn discover_with(
    files: &[(String, PathBuf)],
    ignore: &[Reference],
    render: &RenderOptions,
) -> Result<Discovery, Vec<DiscoverError>> {
    let files: BTreeMap<&str, &Path> = files.iter().map(|(b, p)| (b.as_str(), p.as_path())).collect();
    let mut scan = Scan {
        ignore,
        ignore_used: vec![false; ignore.len()],
        render: render.clone(),
        ..Scan::default()
    };

    let roots: BTreeSet<&str> = files.keys().filter_map(|b| chart_root(b)).collect();
    let in_chart = |b: &str| {
        roots
            .iter()
            .any(|r| r.is_empty() || b.strip_prefix(r).is_some_and(|s| s.starts_with('/')))
    };
    let mut consumed: BTreeSet<String> = BTreeSet::new();
    // Charts are rendered a batch at a time, on every core; a batch bounds the memory that
    // charts read from archives hold.
    const BATCH: usize = 16;
    let mut tops = Vec::new();

    for &root in &roots {
        if is_subchart_root(root, &roots) {
            continue; // scanned by its parent, with the parent's values
        }
        let prefix = if root.is_empty() {
            String::new()
        } else {
            format!("{root}/")
        };
        let chart = Chart {
            label: prefix.clone(),
            files: files
                .iter()
                .filter_map(|(b, p)| Some((b.strip_prefix(&prefix)?.to_string(), Blob::Disk(p.to_path_buf()))))
                .collect(),
        };
        let (dir, stem) = split_dir(root);
        tops.extend(scan.top_chart_prepare(chart, dir, stem, &files, &mut consumed));
        if tops.len() >= BATCH {
            scan.top_charts(std::mem::take(&mut tops));
        }
    }

    for (&bundle_path, &path) in &files {
        let Some(stem) = archive_stem(bundle_path) else {
            continue;
        };
        if in_chart(bundle_path) {
            continue; // a subchart archive is scanned by its chart; elsewhere in a chart it is not a chart
        }
        let file = match fs::File::open(path) {
            Ok(f) => f,
            Err(source) => {
                scan.errors.push(DiscoverError::Io {
                    file: bundle_path.into(),
                    path: path.into(),
                    source,
                });
                continue;
            }
        };
        let chart = match scan.load_archive(bundle_path, io::BufReader::new(file)) {
            Ok(Some(chart)) => chart,
            Ok(None) => continue,
            Err(e) => {
                scan.errors.push(e);
                continue;
            }
        };
        let (dir, _) = split_dir(bundle_path);
        tops.extend(scan.top_chart_prepare(chart, dir, stem, &files, &mut consumed));
        if tops.len() >= BATCH {
            scan.top_charts(std::mem::take(&mut tops));
        }
    }
    scan.top_charts(tops);

    for (&bundle_path, &path) in &files {
        let name = bundle_path.rsplit('/').next().unwrap_or(bundle_path);
        if is_image_list(name) {
            match read_disk(bundle_path, path) {
                Ok(bytes) => scan.image_list(bundle_path, &String::from_utf8_lossy(&bytes)),
                Err(e) => scan.errors.push(e),
            }
        } else if is_yaml(name) && !in_chart(bundle_path) && !consumed.contains(bundle_path) {
            if name.ends_with(".values.yaml") || name.ends_with(".values.yml") {
                scan.warn(
                    bundle_path,
                    1,
                    "named like a chart values override, but no chart beside it has that name; read as a manifest (only its Kubernetes objects count)",
                );
            }
            match read_disk(bundle_path, path) {
                Ok(bytes) => scan.manifest(bundle_path, &bytes),
                Err(e) => scan.errors.push(e),
            }
        }
    }
    scan.finish()
}

// ---------------------------------------------------------------------------------------------
// Collecting results

#[derive(Clone, Copy, PartialEq, Eq)]
enum Certainty {
    /// Where only an image can be: an invalid value is an error.
    Certain,
    /// A heuristic match: an invalid value is a warning, and nothing is recorded.
    Guess,
}

#[derive(Default)]
struct Scan<'a> {
    ignore: &'a [Reference],
    render: RenderOptions,
    ignore_used: Vec<bool>,
    found: Vec<Found>,
    warnings: Vec<String>,
    errors: Vec<DiscoverError>,
}

impl Scan<'_> {
    /// Renders `tops` in parallel, then scans each in order.
    fn top_charts(&mut self, tops: Vec<chart::TopChart>) {
        let mut jobs = Vec::new();
        // Per top: Ok(Some(index into jobs)) when it renders, Ok(None) in the values-only mode,
        // Err(()) when its files could not be read (the error is recorded).
        let mut slots: Vec<Result<Option<usize>, ()>> = Vec::new();
        for top in &tops {
            match render::job(top, &self.render) {
                Some(Ok(job)) => {
                    slots.push(Ok(Some(jobs.len())));
                    jobs.push(job);
                }
                Some(Err(e)) => {
                    self.errors.push(e);
                    slots.push(Err(()));
                }
                None => slots.push(Ok(None)),
            }
        }
        let mut rendered: Vec<Option<render::Rendering>> = render::render_all(jobs).into_iter().map(Some).collect();
        for (top, slot) in tops.iter().zip(slots) {
            if let Ok(slot) = slot {
                let r = slot.and_then(|i| rendered[i].take());
                self.top_chart(top, r);
            }
        }
    }

    fn warn(&mut self, file: &str, line: usize, message: impl AsRef<str>) {
        self.warnings.push(format!("{file}:{line}: {}", message.as_ref()));
    }

    /// Validate `text` and record it as found at `file:line`.
    fn record(&mut self, text: &str, file: &str, line: usize, certainty: Certainty, hint: impl FnOnce() -> String) {
        match text.parse::<Reference>() {
            Ok(reference) => {
                if let Some(i) = self.ignore.iter().position(|r| *r == reference) {
                    self.ignore_used[i] = true;
                    return;
                }
                self.found.push(Found {
                    reference,
                    file: file.into(),
                    line,
                });
            }
            Err(e) => match certainty {
                Certainty::Certain => self.errors.push(DiscoverError::BadReference {
                    file: file.into(),
                    line,
                    text: text.into(),
                    reason: reason(&e),
                    hint: hint(),
                }),
                Certainty::Guess => {
                    let reason = reason(&e);
                    self.warn(
                        file,
                        line,
                        format!("`{text}` looks like an image but is not a valid reference: {reason}; not bundled"),
                    )
                }
            },
        }
    }

    fn finish(mut self) -> Result<Discovery, Vec<DiscoverError>> {
        if !self.errors.is_empty() {
            self.errors.sort_by(|a, b| a.at().cmp(&b.at()));
            return Err(self.errors);
        }
        for (r, used) in self.ignore.iter().zip(&self.ignore_used) {
            if !used {
                self.warnings
                    .push(format!("--ignore-image {r}: no file names this image"));
            }
        }
        // The first source is the smallest (file, line): independent of the order of `files`.
        let mut by_ref: BTreeMap<Reference, Found> = BTreeMap::new();
        for f in self.found {
            match by_ref.get(&f.reference) {
                Some(first) if (first.file.as_str(), first.line) <= (f.file.as_str(), f.line) => {}
                _ => {
                    by_ref.insert(f.reference.clone(), f);
                }
            }
        }
        Ok(Discovery {
            images: by_ref.into_values().collect(),
            warnings: self.warnings,
        })
    }
}

/// The reason part of a reference error (its display repeats the whole reference).
fn reason(e: &ReferenceError) -> String {
    match e {
        ReferenceError::Length(_) => "empty or longer than 512 characters".into(),
        ReferenceError::Registry { host, .. } => format!("invalid registry host `{host}`"),
        ReferenceError::Repository { repository, .. } => {
            format!("invalid repository `{repository}` (lowercase letters, digits and . _ - separators)")
        }
        ReferenceError::Tag { tag, .. } => format!("invalid tag `{tag}`"),
        ReferenceError::Digest { why, .. } => format!("invalid digest: {why}"),
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod corpus;
