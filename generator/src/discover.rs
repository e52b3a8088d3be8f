//! Image discovery: finds every container image reference in the files a bundle will carry,
//! with the bundle file and line it came from, so that `delivery build` can put every image an
//! offline install needs into the bundle. A missed image is the failure that matters, so the
//! rules lean towards finding too much (an unwanted image is dropped with `--ignore-image`).
//!
//! What counts, by file (bundle paths; sealer's layout plus anything YAML):
//! - **Image lists**: a file named `imageList`, or ending in `.images` or `images.txt`, anywhere
//!   (chart directories and chart archives included): one reference per line; `#` starts a
//!   comment; blank lines are skipped.
//! - **Manifests**: every `*.yaml` / `*.yml` outside a Helm chart, all documents. Each mapping key
//!   `image` with a scalar value is an image (containers, init and ephemeral containers, CRDs).
//!   An `image` key whose value is a mapping with `repository` (or `name` + `tag`) is composed as
//!   in chart values below, without Helm's defaults. A file that is not valid YAML is an error
//!   at file:line:column; an empty `image` is a warning.
//! - **Helm charts**: a directory holding `Chart.yaml`, or a `.tgz` / `.tar.gz` archive whose
//!   members all sit under one `<name>/` directory with `<name>/Chart.yaml` (read in memory:
//!   members over [`MAX_CHART_MEMBER`] are skipped with a warning, an archive expanding past
//!   [`MAX_CHART_EXPANDED`] is an error). An archive under a `charts/` directory that cannot be
//!   read is an error; elsewhere, a `.tgz` that is no chart (an image tarball) is skipped.
//!   For each chart:
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
//! Every value found must parse as a [`Reference`]; a failure is [`DiscoverError::BadReference`].
//! References equal (normalised) to one in `ignore` are dropped silently; an `ignore` entry that
//! matches nothing is a warning. The result is deduplicated by normalised reference, keeping the
//! first source in (file, line) order, and sorted by reference. All errors of all files are
//! returned at once, sorted by file and line.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bundle_format::reference::{Reference, ReferenceError};
use saphyr_parser::{Event, Parser, ScalarStyle};

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
}

impl DiscoverError {
    /// (file, line) for ordering; 0 for errors about a whole file.
    fn at(&self) -> (&str, usize) {
        match self {
            DiscoverError::Yaml { file, line, .. } | DiscoverError::BadReference { file, line, .. } => (file, *line),
            DiscoverError::Io { file, .. } | DiscoverError::Chart { file, .. } => (file, 0),
        }
    }
}

/// Find every image reference in `files`: (bundle path, path on disk) of every file the bundle
/// will contain. See the module doc for the rules.
pub fn discover(files: &[(String, PathBuf)], ignore: &[Reference]) -> Result<Discovery, Vec<DiscoverError>> {
    let files: BTreeMap<&str, &Path> = files.iter().map(|(b, p)| (b.as_str(), p.as_path())).collect();
    let mut scan = Scan {
        ignore,
        ignore_used: vec![false; ignore.len()],
        ..Scan::default()
    };

    let roots: BTreeSet<&str> = files.keys().filter_map(|b| chart_root(b)).collect();
    let in_chart = |b: &str| {
        roots
            .iter()
            .any(|r| r.is_empty() || b.strip_prefix(r).is_some_and(|s| s.starts_with('/')))
    };
    let mut consumed: BTreeSet<String> = BTreeSet::new();

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
        scan.top_chart(&chart, dir, stem, &files, &mut consumed);
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
        scan.top_chart(&chart, dir, stem, &files, &mut consumed);
    }

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
                    "named like a chart values override, but no chart beside it has that name; scanned as a manifest",
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
    ignore_used: Vec<bool>,
    found: Vec<Found>,
    warnings: Vec<String>,
    errors: Vec<DiscoverError>,
}

impl Scan<'_> {
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

// ---------------------------------------------------------------------------------------------
// Image lists and manifests

fn is_image_list(name: &str) -> bool {
    name == "imageList" || name.ends_with(".images") || name.ends_with("images.txt")
}

fn is_yaml(name: &str) -> bool {
    name.ends_with(".yaml") || name.ends_with(".yml")
}

impl Scan<'_> {
    fn image_list(&mut self, file: &str, text: &str) {
        for (i, line) in text.lines().enumerate() {
            // A reference never contains `#`, so everything from it on is a comment.
            let value = line.split('#').next().unwrap_or("").trim();
            if !value.is_empty() {
                self.record(value, file, i + 1, Certainty::Certain, || {
                    "fix or remove the line".into()
                });
            }
        }
    }

    fn manifest(&mut self, file: &str, bytes: &[u8]) {
        let file_rc: Rc<str> = Rc::from(file);
        match parse_yaml(bytes, &file_rc, 0) {
            Ok(docs) => {
                for doc in &docs {
                    self.walk_manifest(doc, None);
                }
            }
            Err(mut e) => {
                if let DiscoverError::Yaml { message, .. } = &mut e {
                    if bytes.windows(2).any(|w| w == b"{{") {
                        message
                            .push_str(" (the file holds `{{`: a Helm template whose chart's Chart.yaml is missing?)");
                    }
                }
                self.errors.push(e);
            }
        }
    }

    fn walk_manifest(&mut self, node: &Node, parent_key: Option<&str>) {
        match &node.value {
            Value::Map(entries) => {
                if parent_key == Some("image") {
                    self.image_mapping_in(entries, parent_key, None);
                }
                for (k, v) in entries {
                    let key = k.as_str();
                    if key == Some("image") {
                        if let Value::Scalar { text, .. } = &v.value {
                            if v.is_null() || text.trim().is_empty() {
                                self.warn(&v.file, v.line, "`image` is empty; no image recorded");
                            } else {
                                self.record(text, &v.file, v.line, Certainty::Certain, || {
                                    "fix the `image:` value (a reference is lowercase, like `docker.io/library/nginx:1.25`)"
                                        .into()
                                });
                            }
                        }
                    }
                    self.walk_manifest(v, key);
                }
            }
            Value::Seq(items) => {
                for item in items {
                    self.walk_manifest(item, None);
                }
            }
            Value::Scalar { .. } => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helm charts

/// The bytes of a chart file: still on disk, or read from an archive.
#[derive(Clone)]
enum Blob {
    Disk(PathBuf),
    Memory(Rc<[u8]>),
}

struct Chart {
    /// Names the chart's files in messages: `charts/redis/` or `charts/redis-1.0.tgz:redis/`.
    label: String,
    /// Chart-relative path (`values.yaml`, `templates/deployment.yaml`) to contents.
    files: BTreeMap<String, Blob>,
}

impl Chart {
    fn read(&self, rel: &str) -> Option<Result<Cow<'_, [u8]>, DiscoverError>> {
        Some(match self.files.get(rel)? {
            Blob::Memory(b) => Ok(Cow::Borrowed(&b[..])),
            Blob::Disk(p) => read_disk(&format!("{}{rel}", self.label), p).map(Cow::Owned),
        })
    }

    /// The chart whose files are under `prefix` (a subchart directory, `charts/x/`).
    fn sub(&self, prefix: &str) -> Chart {
        Chart {
            label: format!("{}{prefix}", self.label),
            files: self
                .files
                .iter()
                .filter_map(|(rel, blob)| Some((rel.strip_prefix(prefix)?.to_string(), blob.clone())))
                .collect(),
        }
    }
}

/// What a chart's Chart.yaml (and a v1 chart's requirements.yaml) says that matters here.
struct ChartMeta {
    name: String,
    app_version: Option<String>,
    /// (name, alias) of each dependency.
    dependencies: Vec<(String, Option<String>)>,
}

/// What a chart's values are walked with.
struct ValuesCtx {
    app_version: Option<String>,
    global_registry: Option<String>,
    /// Where this chart's values sit in the top chart's values (`["redis"]` for a subchart).
    key_path: Vec<String>,
    /// The override file a vendor edits to change the top chart's values.
    override_file: String,
}

/// Read what matters here from a chart's Chart.yaml (and a v1 chart's requirements.yaml).
fn chart_meta(chart: &Chart) -> Result<ChartMeta, DiscoverError> {
    let file = format!("{}Chart.yaml", chart.label);
    let bytes = chart.read("Chart.yaml").unwrap_or_else(|| {
        Err(DiscoverError::Chart {
            file: file.clone(),
            message: "missing: a Helm chart needs it".into(),
        })
    })?;
    let root = parse_yaml(&bytes, &Rc::from(file.as_str()), 0)?.into_iter().next();
    let root = root.as_ref();
    let name = root.and_then(|r| r.get("name")).and_then(Node::text).unwrap_or("");
    if name.is_empty() {
        return Err(DiscoverError::Chart {
            file,
            message: "has no `name`".into(),
        });
    }
    let app_version = root
        .and_then(|r| r.get("appVersion"))
        .and_then(Node::text)
        .map(str::to_string);
    let mut dependencies = Vec::new();
    let mut deps_of = |root: Option<&Node>| {
        if let Some(Value::Seq(items)) = root.and_then(|r| r.get("dependencies")).map(|d| &d.value) {
            for item in items {
                if let Some(name) = item.get("name").and_then(Node::text) {
                    let alias = item.get("alias").and_then(Node::text).map(str::to_string);
                    dependencies.push((name.to_string(), alias));
                }
            }
        }
    };
    deps_of(root);
    if let Some(bytes) = chart.read("requirements.yaml") {
        let file: Rc<str> = Rc::from(format!("{}requirements.yaml", chart.label).as_str());
        deps_of(parse_yaml(&bytes?, &file, 0)?.first());
    }
    Ok(ChartMeta {
        name: name.to_string(),
        app_version,
        dependencies,
    })
}

/// The directory of a bundle path whose file name is `Chart.yaml` (`""` at the bundle root).
fn chart_root(bundle_path: &str) -> Option<&str> {
    match bundle_path.rsplit_once('/') {
        Some((dir, "Chart.yaml")) => Some(dir),
        None if bundle_path == "Chart.yaml" => Some(""),
        _ => None,
    }
}

/// Whether `root` is `<chart>/charts/<name>` of another chart root (Helm loads only those).
fn is_subchart_root(root: &str, roots: &BTreeSet<&str>) -> bool {
    let (parent, _) = split_dir(root);
    let Some(parent) = parent.strip_suffix("charts") else {
        return false;
    };
    match parent.strip_suffix('/') {
        Some(grandparent) => roots.contains(grandparent),
        None => parent.is_empty() && roots.contains(""),
    }
}

/// (`dir`, `name`) of `dir/name`; `dir` is empty for a top-level name.
fn split_dir(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

/// The stem of a chart archive's file name: `redis-1.0` of `charts/redis-1.0.tgz`.
fn archive_stem(path: &str) -> Option<&str> {
    let name = split_dir(path).1;
    name.strip_suffix(".tgz")
        .or_else(|| name.strip_suffix(".tar.gz"))
        .filter(|s| !s.is_empty())
}

fn read_disk(file: &str, path: &Path) -> Result<Vec<u8>, DiscoverError> {
    fs::read(path).map_err(|source| DiscoverError::Io {
        file: file.into(),
        path: path.into(),
        source,
    })
}

/// The precedence of a values file: a parent's values beat its subchart's, the override beats all.
fn values_layer(depth: u32) -> u32 {
    MAX_CHART_DEPTH + 1 - depth.min(MAX_CHART_DEPTH + 1)
}
const OVERRIDE_LAYER: u32 = MAX_CHART_DEPTH + 2;

impl Scan<'_> {
    /// Scan a chart that is not a subchart, with the override file beside it in `dir`.
    fn top_chart(
        &mut self,
        chart: &Chart,
        dir: &str,
        stem: &str,
        files: &BTreeMap<&str, &Path>,
        consumed: &mut BTreeSet<String>,
    ) {
        let meta = match chart_meta(chart) {
            Ok(m) => m,
            Err(e) => return self.errors.push(e),
        };
        let at = |name: &str| {
            if dir.is_empty() {
                name.to_string()
            } else {
                format!("{dir}/{name}")
            }
        };
        let candidates = [
            at(&format!("{stem}.values.yaml")),
            at(&format!("{stem}.values.yml")),
            at(&format!("{}.values.yaml", meta.name)),
            at(&format!("{}.values.yml", meta.name)),
        ];
        let found = candidates.iter().find(|c| files.contains_key(c.as_str()));
        let override_file = found.unwrap_or(&candidates[0]).clone();
        let mut overrides = None;
        if let Some(file) = found {
            consumed.insert(file.clone());
            let parsed = read_disk(file, files[file.as_str()]).and_then(|bytes| {
                let file_rc: Rc<str> = Rc::from(file.as_str());
                parse_values(&bytes, &file_rc, OVERRIDE_LAYER)
            });
            match parsed {
                Ok(v) => overrides = v,
                Err(e) => return self.errors.push(e),
            }
        }
        let ctx = ValuesCtx {
            app_version: None,
            global_registry: None,
            key_path: Vec::new(),
            override_file,
        };
        self.chart(chart, &meta, overrides, 0, ctx);
    }

    /// Scan one chart: its values merged with `overrides`, templates, CRDs, subcharts.
    fn chart(&mut self, chart: &Chart, meta: &ChartMeta, overrides: Option<Node>, depth: u32, mut ctx: ValuesCtx) {
        let file_rc: Rc<str> = Rc::from(format!("{}values.yaml", chart.label).as_str());
        let own = match chart.read("values.yaml") {
            None => Ok(None),
            Some(bytes) => bytes.and_then(|b| parse_values(&b, &file_rc, values_layer(depth))),
        };
        let own = match own {
            Ok(v) => v,
            Err(e) => return self.errors.push(e),
        };
        let values = match (own, overrides) {
            (Some(own), Some(over)) => merge(own, over),
            (own, over) => own.or(over).unwrap_or_else(|| Node::empty_map(&file_rc)),
        };
        ctx.app_version = meta.app_version.clone();
        ctx.global_registry = values
            .get("global")
            .and_then(|g| g.get("imageRegistry"))
            .and_then(Node::text)
            .filter(|t| !t.is_empty())
            .map(str::to_string);

        // Subcharts first: their keys in these values are theirs, not this chart's.
        let mut subcharts: Vec<(Chart, ChartMeta)> = Vec::new();
        for rel in chart.files.keys() {
            let Some(rest) = rel.strip_prefix("charts/") else {
                continue;
            };
            let sub = if let Some(dir) = rest.strip_suffix("/Chart.yaml").filter(|d| !d.contains('/')) {
                chart.sub(&format!("charts/{dir}/"))
            } else if archive_stem(rest).is_some() && !rest.contains('/') {
                let label = format!("{}{rel}", chart.label);
                let loaded = match chart.read(rel).expect("the key was just listed") {
                    Ok(bytes) => self.load_archive(&label, &bytes[..]),
                    Err(e) => Err(e),
                };
                match loaded {
                    Ok(Some(sub)) => sub,
                    Ok(None) => continue,
                    Err(e) => {
                        self.errors.push(e);
                        continue;
                    }
                }
            } else {
                continue;
            };
            match chart_meta(&sub) {
                Ok(sub_meta) => subcharts.push((sub, sub_meta)),
                Err(e) => self.errors.push(e),
            }
        }
        let mut sub_keys: BTreeSet<String> = BTreeSet::new();
        let mut plan: Vec<(usize, String)> = Vec::new();
        for (i, (_, sub_meta)) in subcharts.iter().enumerate() {
            let mut keys: Vec<String> = meta
                .dependencies
                .iter()
                .filter(|(name, _)| *name == sub_meta.name)
                .map(|(name, alias)| alias.clone().unwrap_or_else(|| name.clone()))
                .collect();
            if keys.is_empty() {
                keys.push(sub_meta.name.clone());
            }
            keys.sort();
            keys.dedup();
            for key in keys {
                sub_keys.insert(key.clone());
                plan.push((i, key));
            }
        }
        for (name, alias) in &meta.dependencies {
            if !subcharts.iter().any(|(_, m)| m.name == *name) {
                self.warn(
                    &format!("{}Chart.yaml", chart.label),
                    1,
                    format!("dependency `{name}` is not in charts/ (run `helm dependency build` before the bundle build); its images are not discovered"),
                );
                sub_keys.insert(alias.clone().unwrap_or_else(|| name.clone()));
            }
        }

        let mut path = Vec::new();
        self.walk_values(&values, &mut path, &sub_keys, &ctx);

        for (rel, blob) in &chart.files {
            let in_templates = rel.starts_with("templates/");
            let in_crds = rel.starts_with("crds/");
            let name = split_dir(rel).1;
            let memory_list = matches!(blob, Blob::Memory(_)) && is_image_list(name) && !rel.starts_with("charts/");
            let template = in_templates && (is_yaml(name) || name.ends_with(".tpl"));
            if !(template || (in_crds && is_yaml(name)) || memory_list) {
                continue;
            }
            let file = format!("{}{rel}", chart.label);
            let bytes = match chart.read(rel).expect("the key was just listed") {
                Ok(b) => b,
                Err(e) => {
                    self.errors.push(e);
                    continue;
                }
            };
            if template {
                self.template(&file, &String::from_utf8_lossy(&bytes));
            } else if memory_list {
                self.image_list(&file, &String::from_utf8_lossy(&bytes));
            } else {
                self.manifest(&file, &bytes);
            }
        }

        if !plan.is_empty() && depth >= MAX_CHART_DEPTH {
            let file = format!("{}charts/", chart.label);
            let message = format!("subcharts nested more than {MAX_CHART_DEPTH} deep");
            return self.errors.push(DiscoverError::Chart { file, message });
        }
        for (i, key) in plan {
            let (sub, sub_meta) = &subcharts[i];
            let mut over = values.get(&key).filter(|v| matches!(v.value, Value::Map(_))).cloned();
            if let Some(global) = values.get("global").filter(|g| matches!(g.value, Value::Map(_))) {
                let mut o = over.unwrap_or_else(|| Node::empty_map(&global.file));
                let merged = match o.get("global") {
                    Some(g) => merge(g.clone(), global.clone()),
                    None => global.clone(),
                };
                o.set("global", merged);
                over = Some(o);
            }
            let mut key_path = ctx.key_path.clone();
            key_path.push(key);
            let sub_ctx = ValuesCtx {
                app_version: None,
                global_registry: None,
                key_path,
                override_file: ctx.override_file.clone(),
            };
            self.chart(sub, sub_meta, over, depth + 1, sub_ctx);
        }
    }

    /// Read a chart archive in memory; `Ok(None)` when it is not a chart.
    fn load_archive(&mut self, label: &str, reader: impl Read) -> Result<Option<Chart>, DiscoverError> {
        let under_charts = label.split('/').any(|c| c == "charts");
        let mut top: Option<String> = None;
        let mut has_chart_yaml = false;
        let mut total: u64 = 0;
        let mut files: BTreeMap<String, Blob> = BTreeMap::new();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(reader));
        // A `.tgz` among charts is meant to be one: unreadable, it is an error; elsewhere it may
        // be anything (an image tarball), so it is skipped.
        let unreadable = |e: io::Error, has_chart_yaml: bool| -> Result<Option<Chart>, DiscoverError> {
            if has_chart_yaml || under_charts {
                Err(DiscoverError::Chart {
                    file: label.into(),
                    message: format!("cannot read the chart archive: {e}"),
                })
            } else {
                Ok(None)
            }
        };
        let entries = match archive.entries() {
            Ok(entries) => entries,
            Err(e) => return unreadable(e, false),
        };
        for entry in entries {
            let mut entry = match entry {
                Ok(entry) => entry,
                Err(e) => return unreadable(e, has_chart_yaml),
            };
            let kind = entry.header().entry_type();
            if matches!(kind, tar::EntryType::XGlobalHeader | tar::EntryType::XHeader) {
                continue;
            }
            let raw_path = match entry.path() {
                Ok(p) => p.to_string_lossy().into_owned(),
                Err(e) => return unreadable(e, has_chart_yaml),
            };
            let parts: Vec<&str> = raw_path.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
            if raw_path.starts_with('/') || parts.contains(&"..") {
                self.warn(
                    label,
                    1,
                    format!("member `{raw_path}` escapes the chart directory; ignored"),
                );
                continue;
            }
            let Some((&first, rest)) = parts.split_first() else {
                continue;
            };
            let rest = rest.join("/");
            match &top {
                None if rest.is_empty() && !kind.is_dir() => return Ok(None), // a file at the top: not a chart
                None => top = Some(first.to_string()),
                Some(t) if t != first => {
                    if !has_chart_yaml {
                        return Ok(None);
                    }
                    self.warn(
                        label,
                        1,
                        format!("member `{raw_path}` is outside the chart directory `{t}/`; ignored"),
                    );
                    continue;
                }
                Some(_) => {}
            }
            if rest.is_empty() || !kind.is_file() {
                continue;
            }
            let size = entry.header().size().unwrap_or(u64::MAX);
            total = total.saturating_add(size);
            if total > MAX_CHART_EXPANDED {
                if !has_chart_yaml {
                    return Ok(None);
                }
                let message = format!(
                    "expands to more than {} MiB; not a chart Helm would load",
                    MAX_CHART_EXPANDED >> 20
                );
                return Err(DiscoverError::Chart {
                    file: label.into(),
                    message,
                });
            }
            has_chart_yaml |= rest == "Chart.yaml";
            let name = split_dir(&rest).1;
            let wanted = is_yaml(name) || name.ends_with(".tpl") || archive_stem(name).is_some() || is_image_list(name);
            if !wanted {
                continue;
            }
            if size > MAX_CHART_MEMBER {
                let mib = MAX_CHART_MEMBER >> 20;
                self.warn(
                    label,
                    1,
                    format!("member `{raw_path}` is over {mib} MiB; skipped, images in it are not discovered"),
                );
                continue;
            }
            let mut buf = Vec::with_capacity(size as usize);
            if let Err(e) = entry.by_ref().take(MAX_CHART_MEMBER + 1).read_to_end(&mut buf) {
                return unreadable(e, has_chart_yaml);
            }
            files.insert(rest, Blob::Memory(buf.into()));
        }
        match top {
            Some(top) if has_chart_yaml => Ok(Some(Chart {
                label: format!("{label}:{top}/"),
                files,
            })),
            _ => {
                if under_charts {
                    self.warn(
                        label,
                        1,
                        "not a Helm chart (no `<name>/Chart.yaml`); not scanned for images",
                    );
                }
                Ok(None)
            }
        }
    }

    // -- values

    fn walk_values(&mut self, node: &Node, path: &mut Vec<String>, skip_top: &BTreeSet<String>, ctx: &ValuesCtx) {
        match &node.value {
            Value::Scalar { .. } => {}
            Value::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    path.push(format!("[{i}]"));
                    self.walk_values(item, path, skip_top, ctx);
                    path.pop();
                }
            }
            Value::Map(entries) => {
                let parent_key = path.last().map(String::as_str).filter(|k| !k.starts_with('['));
                let image_used = self.image_mapping_in(entries, parent_key, Some((path, ctx)));
                for (k, v) in entries {
                    let Some(key) = k.as_str() else { continue };
                    if path.is_empty() && skip_top.contains(key) {
                        continue;
                    }
                    path.push(key.to_string());
                    if let Value::Scalar { text, .. } = &v.value {
                        if key == "image" && !image_used && !v.is_null() && !text.is_empty() {
                            self.values_scalar(v, text, Certainty::Certain, path, ctx);
                        } else if is_imageish(key) && !v.is_null() && text.contains(['/', ':', '@']) {
                            self.values_scalar(v, text, Certainty::Guess, path, ctx);
                        }
                    }
                    self.walk_values(v, path, skip_top, ctx);
                    path.pop();
                }
            }
        }
    }

    fn values_scalar(&mut self, v: &Node, text: &str, certainty: Certainty, path: &[String], ctx: &ValuesCtx) {
        if text.contains("{{") {
            if certainty == Certainty::Certain {
                let message = format!("`{text}` is a template that Helm's `tpl` resolves at install time; list the image it names in an imageList file");
                self.warn(&v.file, v.line, message);
            }
            return;
        }
        let last = text.rsplit('/').next().unwrap_or(text);
        if certainty == Certainty::Guess && !last.contains(':') && !text.contains('@') {
            // `baseImage: quay.io/x/y` is usually joined with a tag elsewhere: bundling `:latest`
            // would fetch an image nobody runs.
            let key = path.last().map(String::as_str).unwrap_or_default();
            let message = format!(
                "`{key}: {text}` has no tag; not bundled (list the image in an imageList file if it is needed)"
            );
            return self.warn(&v.file, v.line, message);
        }
        self.record(text, &v.file, v.line, certainty, || values_hint(path, ctx));
    }

    /// Compose an image from a mapping's parts (`{registry, repository, tag, digest}` and kin);
    /// `values` is set for Helm values (Helm's defaults apply). Returns whether the mapping's
    /// `image` key was taken as a part, so that it is not also an image of its own.
    fn image_mapping_in(
        &mut self,
        entries: &[(Node, Node)],
        parent_key: Option<&str>,
        values: Option<(&[String], &ValuesCtx)>,
    ) -> bool {
        let get = |k: &str| {
            entries
                .iter()
                .rev()
                .find(|(key, _)| key.as_str() == Some(k))
                .map(|(_, v)| v)
        };
        let scalar = |k: &str| get(k).filter(|n| matches!(n.value, Value::Scalar { .. }));
        let present = |k: &str| get(k).is_some_and(|n| !n.is_null());
        let imageish_parent = parent_key.is_some_and(|k| k == "image" || is_imageish(k));
        let (name, certainty, image_used) = if let Some(r) = scalar("repository") {
            (r, Certainty::Certain, false)
        } else if let Some(i) = scalar("image").filter(|_| present("tag") || present("registry") || present("digest")) {
            (i, Certainty::Certain, true)
        } else if let Some(n) = scalar("name").filter(|_| get("tag").is_some()) {
            (
                n,
                if imageish_parent {
                    Certainty::Certain
                } else {
                    Certainty::Guess
                },
                false,
            )
        } else {
            return false;
        };
        let Some(name_text) = name.text().filter(|t| !t.is_empty()) else {
            return image_used;
        };
        if name_text.contains("{{") {
            if certainty == Certainty::Certain {
                let message = format!("`{name_text}` is a template that Helm's `tpl` resolves at install time; list the image it names in an imageList file");
                self.warn(&name.file, name.line, message);
            }
            return image_used;
        }
        let ctx = values.map(|(_, c)| c);
        let mut parts: Vec<&Node> = vec![name];
        let nonempty = |k: &str| scalar(k).filter(|n| n.text().is_some_and(|t| !t.is_empty()));
        let registry: Option<String> = match (get("registry"), ctx.and_then(|c| c.global_registry.as_deref())) {
            (Some(_), Some(global)) => Some(global.to_string()),
            (Some(_), None) => nonempty("registry").map(|r| {
                parts.push(r);
                r.text().unwrap_or_default().to_string()
            }),
            (None, _) => None,
        };
        let digest = nonempty("digest").map(|d| {
            parts.push(d);
            d.text().unwrap_or_default().to_string()
        });
        let mut number_note = None;
        let tag = if digest.is_some() {
            None // Bitnami renders `repository@digest` when a digest is set
        } else {
            nonempty("tag").map(|t| {
                parts.push(t);
                let text = t.text().unwrap_or_default();
                match (ctx, t.is_plain(), helm_number(text)) {
                    (Some(_), true, Some(rendered)) if rendered != text => {
                        let note = format!("tag `{text}` is a YAML number, which Helm renders as `{rendered}`; quote it (`tag: \"{text}\"`) if `{text}` is meant");
                        self.warn(&t.file, t.line, &note);
                        number_note = Some(note);
                        rendered
                    }
                    _ => text.to_string(),
                }
            })
        };
        // The part set by the highest-precedence file tells where to change the reference.
        let at = parts
            .iter()
            .fold(name, |best, p| if p.layer > best.layer { p } else { best });
        let last = name_text.rsplit('/').next().unwrap_or(name_text);
        let suffix = if let Some(d) = &digest {
            format!("@{d}")
        } else if let Some(t) = &tag {
            format!(":{t}")
        } else if last.contains(':') || name_text.contains('@') {
            String::new()
        } else if let Some(v) = ctx.and_then(|c| c.app_version.as_deref()).filter(|v| !v.is_empty()) {
            format!(":{v}")
        } else {
            if ctx.is_some() {
                let message = format!("`{name_text}` has no tag and the chart no appVersion; assuming `latest`");
                self.warn(&at.file, at.line, message);
            }
            String::new()
        };
        let text = match registry
            .as_deref()
            .map(|r| r.trim_end_matches('/'))
            .filter(|r| !r.is_empty())
        {
            Some(r) => format!("{r}/{name_text}{suffix}"),
            None => format!("{name_text}{suffix}"),
        };
        let (file, line) = (at.file.clone(), at.line);
        self.record(&text, &file, line, certainty, || {
            let hint = match values {
                Some((path, ctx)) => values_hint(path, ctx),
                None => "fix the image's parts in the manifest (a reference is lowercase)".into(),
            };
            match number_note {
                Some(note) => format!("{hint}; {note}"),
                None => hint,
            }
        });
        image_used
    }

    // -- templates

    /// Scan a Go template line by line for `image: <literal>`.
    fn template(&mut self, file: &str, text: &str) {
        let mut in_comment = false;
        for (i, line) in text.lines().enumerate() {
            let t = line.trim();
            if in_comment {
                in_comment = !t.contains("*/");
                continue;
            }
            if t.starts_with("{{/*") || t.starts_with("{{- /*") {
                in_comment = !t.contains("*/");
                continue;
            }
            if t.starts_with('#') {
                continue;
            }
            let mut t = t;
            while let Some(rest) = t.strip_prefix('-').filter(|r| r.starts_with([' ', '\t'])) {
                t = rest.trim_start();
            }
            let Some(value) = ["image:", "\"image\":", "'image':"]
                .iter()
                .find_map(|k| t.strip_prefix(k))
            else {
                continue;
            };
            if !(value.is_empty() || value.starts_with([' ', '\t'])) {
                continue; // `image:foo` is a scalar, not a key
            }
            let Some(value) = template_literal(value.trim()) else {
                continue;
            };
            self.record(value, file, i + 1, Certainty::Certain, || {
                "fix the literal in the template, or take it from the chart's values".into()
            });
        }
    }
}

/// The literal reference of a template line's `image:` value, if it is one.
fn template_literal(value: &str) -> Option<&str> {
    if value.contains("{{") {
        return None; // rendered from values, which the values scan covers
    }
    let literal = if let Some(rest) = value.strip_prefix('"') {
        &rest[..rest.find('"')?]
    } else if let Some(rest) = value.strip_prefix('\'') {
        &rest[..rest.find('\'')?]
    } else {
        // A plain scalar ends at ` #`; a block (`|`, `>`), flow collection, anchor, alias or tag
        // is not a literal reference.
        if value.starts_with(['|', '>', '{', '[', '&', '*', '!']) {
            return None;
        }
        value.split(" #").next().unwrap_or("").trim_end().trim_end_matches(',')
    };
    Some(literal.trim()).filter(|l| !l.is_empty())
}

/// Keys whose scalar is probably an image: `sidecarImage`, `kubectl_image`, `init-image`.
fn is_imageish(key: &str) -> bool {
    key.len() > "image".len() && (key.ends_with("Image") || key.ends_with("_image") || key.ends_with("-image"))
}

fn values_hint(path: &[String], ctx: &ValuesCtx) -> String {
    let mut key = String::new();
    for part in ctx.key_path.iter().chain(path) {
        if !key.is_empty() && !part.starts_with('[') {
            key.push('.');
        }
        key.push_str(part);
    }
    format!("override `{key}` in `{}` (null drops it)", ctx.override_file)
}

/// How Helm prints a plain YAML scalar it reads as a number: values go through
/// sigs.k8s.io/yaml (YAML 1.1 ints and floats, then JSON) into float64, and templates print
/// them with Go's `%v`. `None` when the scalar is not a number.
fn helm_number(text: &str) -> Option<String> {
    let plain: String = text.chars().filter(|&c| c != '_').collect();
    let (negative, body) = match plain.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, plain.strip_prefix('+').unwrap_or(&plain)),
    };
    if body.is_empty() {
        return None;
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let int = if let Some(h) = body.strip_prefix("0x") {
        u64::from_str_radix(h, 16).ok()
    } else if let Some(o) = body.strip_prefix("0o") {
        u64::from_str_radix(o, 8).ok()
    } else if let Some(b) = body.strip_prefix("0b") {
        u64::from_str_radix(b, 2).ok()
    } else if body.len() > 1 && body.starts_with('0') && digits(body) {
        u64::from_str_radix(body, 8).ok()
    } else if digits(body) {
        body.parse::<u64>().ok()
    } else {
        None
    };
    let value = match int {
        Some(i) => i as f64,
        None if is_yaml11_float(body) => body.parse::<f64>().ok()?,
        None => return None,
    };
    Some(go_format_float(if negative { -value } else { value }))
}

/// `(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`, go-yaml v2's float (sign already taken).
fn is_yaml11_float(s: &str) -> bool {
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => (int.is_empty() && !frac.is_empty() || !int.is_empty()) && digits(int) && digits(frac),
        None => !mantissa.is_empty() && digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

/// Go's `fmt.Sprint(float64)`: the shortest digits, in `%e` form when the exponent is below
/// -4 or at least 6 (strconv's `'g'` with precision -1), with a two-digit exponent.
fn go_format_float(v: f64) -> String {
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').expect("`{:e}` always writes an exponent");
    let exp: i32 = exp.parse().expect("`{:e}` writes an integer exponent");
    if v != 0.0 && !(-4..6).contains(&exp) {
        format!("{mantissa}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
    } else {
        format!("{v}")
    }
}

// ---------------------------------------------------------------------------------------------
// YAML with positions

/// A YAML node with where it came from. Values merged from several files keep each node's own
/// file and line.
#[derive(Debug, Clone)]
struct Node {
    value: Value,
    /// 1-based line of the node's first character.
    line: usize,
    /// Bundle path of the file the node was read from.
    file: Rc<str>,
    /// Precedence of the values file it came from; see [`values_layer`].
    layer: u32,
}

#[derive(Debug, Clone)]
enum Value {
    /// `plain`: written without quotes or tag, so YAML may resolve it to null, a number or a bool.
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    fn empty_map(file: &Rc<str>) -> Node {
        Node {
            value: Value::Map(Vec::new()),
            line: 1,
            file: file.clone(),
            layer: 0,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// The text of a non-null scalar.
    fn text(&self) -> Option<&str> {
        self.as_str().filter(|_| !self.is_null())
    }

    fn is_plain(&self) -> bool {
        matches!(self.value, Value::Scalar { plain: true, .. })
    }

    fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, plain: true } if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// The value of `key` in a mapping (the last one, if repeated).
    fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .rev()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    fn set(&mut self, key: &str, value: Node) {
        if let Value::Map(entries) = &mut self.value {
            match entries.iter_mut().find(|(k, _)| k.as_str() == Some(key)) {
                Some((_, v)) => *v = value,
                None => {
                    let k = Node {
                        value: Value::Scalar {
                            text: key.into(),
                            plain: true,
                        },
                        line: value.line,
                        file: value.file.clone(),
                        layer: value.layer,
                    };
                    entries.push((k, value));
                }
            }
        }
    }
}

/// Helm's coalescing of values: maps merge key by key, `over` wins, a null in `over` deletes.
fn merge(base: Node, over: Node) -> Node {
    match (base.value, over.value) {
        (Value::Map(mut entries), Value::Map(over_entries)) => {
            for (k, v) in over_entries {
                let key = k.as_str().map(str::to_string);
                let at = entries
                    .iter()
                    .position(|(bk, _)| key.is_some() && bk.as_str() == key.as_deref());
                match (at, v.is_null()) {
                    (Some(i), true) => {
                        entries.remove(i);
                    }
                    (None, true) => {}
                    (Some(i), false) => {
                        let (bk, bv) = entries.remove(i);
                        entries.insert(i, (bk, merge(bv, v)));
                    }
                    (None, false) => entries.push((k, v)),
                }
            }
            Node {
                value: Value::Map(entries),
                ..base
            }
        }
        (_, over_value) => Node {
            value: over_value,
            ..over
        },
    }
}

/// The first document of a values file, which must be a mapping (or empty: `None`).
fn parse_values(bytes: &[u8], file: &Rc<str>, layer: u32) -> Result<Option<Node>, DiscoverError> {
    let root = parse_yaml(bytes, file, layer)?.into_iter().next();
    match root {
        None => Ok(None),
        Some(n) if n.is_null() => Ok(None),
        Some(
            n @ Node {
                value: Value::Map(_), ..
            },
        ) => Ok(Some(n)),
        Some(n) => Err(DiscoverError::Chart {
            file: format!("{file}:{}", n.line),
            message: "values must be a mapping at the top".into(),
        }),
    }
}

/// Parse every document of a YAML stream into nodes, resolving aliases and `<<` merge keys.
fn parse_yaml(bytes: &[u8], file: &Rc<str>, layer: u32) -> Result<Vec<Node>, DiscoverError> {
    let error = |line: usize, column: usize, message: String| DiscoverError::Yaml {
        file: file.to_string(),
        line,
        column,
        message,
    };
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let valid = &bytes[..e.valid_up_to()];
        let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = String::from_utf8_lossy(valid.rsplit(|&b| b == b'\n').next().unwrap_or(valid))
            .chars()
            .count()
            + 1;
        error(line, column, "not UTF-8".into())
    })?;

    enum Frame {
        Seq {
            items: Vec<Node>,
            line: usize,
            anchor: usize,
            size: usize,
        },
        Map {
            entries: Vec<(Node, Node)>,
            key: Option<Node>,
            line: usize,
            anchor: usize,
            size: usize,
        },
    }
    let mut docs = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, (Node, usize)> = HashMap::new();
    let mut total = 0usize;
    let node = |value: Value, line: usize| Node {
        value,
        line,
        file: file.clone(),
        layer,
    };

    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| error(e.marker().line(), e.marker().col() + 1, e.info().to_string()))?;
        let line = span.start.line();
        let is_alias = matches!(event, Event::Alias(_));
        // A finished node with the number of nodes it stands for.
        let done: Option<(Node, usize)> = match event {
            Event::Scalar(text, style, anchor, tag) => {
                let plain = style == ScalarStyle::Plain && tag.is_none();
                let n = node(
                    Value::Scalar {
                        text: text.into_owned(),
                        plain,
                    },
                    line,
                );
                if anchor > 0 {
                    anchors.insert(anchor, (n.clone(), 1));
                }
                Some((n, 1))
            }
            Event::Alias(id) => {
                let (n, size) = anchors
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| error(line, span.start.col() + 1, "alias to an unknown anchor".into()))?;
                Some((n, size))
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if stack.len() >= MAX_YAML_DEPTH {
                    let message = format!("nested more than {MAX_YAML_DEPTH} levels deep");
                    return Err(error(line, span.start.col() + 1, message));
                }
                stack.push(match event {
                    Event::SequenceStart(..) => Frame::Seq {
                        items: Vec::new(),
                        line,
                        anchor,
                        size: 1,
                    },
                    _ => Frame::Map {
                        entries: Vec::new(),
                        key: None,
                        line,
                        anchor,
                        size: 1,
                    },
                });
                None
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (n, anchor, size) = match stack.pop().expect("the parser balances start and end events") {
                    Frame::Seq {
                        items,
                        line,
                        anchor,
                        size,
                    } => (node(Value::Seq(items), line), anchor, size),
                    Frame::Map {
                        entries,
                        line,
                        anchor,
                        size,
                        ..
                    } => (node(Value::Map(apply_merge_keys(entries)), line), anchor, size),
                };
                if anchor > 0 {
                    anchors.insert(anchor, (n.clone(), size));
                }
                Some((n, size))
            }
            Event::DocumentStart(_) => {
                anchors.clear(); // anchors do not cross documents
                None
            }
            _ => None,
        };
        let Some((n, size)) = done else { continue };
        // Only aliases multiply nodes beyond what the file spells out (a "billion laughs"
        // document); a large plain file is fine.
        if is_alias {
            total += size;
        }
        if total > MAX_YAML_NODES {
            let message = format!("expands to more than {MAX_YAML_NODES} nodes (through aliases?)");
            return Err(error(line, span.start.col() + 1, message));
        }
        match stack.last_mut() {
            None => docs.push(n),
            Some(Frame::Seq { items, size: s, .. }) => {
                *s += size;
                items.push(n);
            }
            Some(Frame::Map {
                entries, key, size: s, ..
            }) => {
                *s += size;
                match key.take() {
                    Some(k) => entries.push((k, n)),
                    None => *key = Some(n),
                }
            }
        }
    }
    Ok(docs)
}

/// YAML 1.1 merge keys (`<<: *defaults`), which Helm's and kubectl's parsers honour: keys of the
/// merged mappings are added unless the mapping sets them itself; earlier mappings win.
fn apply_merge_keys(entries: Vec<(Node, Node)>) -> Vec<(Node, Node)> {
    let is_merge = |k: &Node| k.is_plain() && k.as_str() == Some("<<");
    if !entries
        .iter()
        .any(|(k, v)| is_merge(k) && matches!(v.value, Value::Map(_) | Value::Seq(_)))
    {
        return entries;
    }
    let mut own = Vec::new();
    let mut merged = Vec::new();
    for (k, v) in entries {
        match (is_merge(&k), v.value) {
            (true, Value::Map(m)) => merged.push(m),
            (true, Value::Seq(items)) => merged.extend(items.into_iter().filter_map(|i| match i.value {
                Value::Map(m) => Some(m),
                _ => None,
            })),
            (_, value) => own.push((k, Node { value, ..v })),
        }
    }
    for (k, v) in merged.into_iter().flatten() {
        if !own
            .iter()
            .any(|(ok, _)| ok.as_str().is_some() && ok.as_str() == k.as_str())
        {
            own.push((k, v));
        }
    }
    own
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A build context in a temp dir: files written to disk and listed as the bundle's.
    struct Bundle {
        dir: tempfile::TempDir,
        files: Vec<(String, PathBuf)>,
    }

    impl Bundle {
        fn new() -> Self {
            Bundle {
                dir: tempfile::tempdir().unwrap(),
                files: Vec::new(),
            }
        }

        fn add(&mut self, bundle_path: &str, content: impl AsRef<[u8]>) -> &mut Self {
            let path = self.dir.path().join(bundle_path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, content).unwrap();
            self.files.push((bundle_path.to_string(), path));
            self
        }

        fn discover(&self) -> Result<Discovery, Vec<DiscoverError>> {
            discover(&self.files, &[])
        }

        fn ok(&self) -> Discovery {
            match self.discover() {
                Ok(d) => d,
                Err(errors) => panic!(
                    "unexpected errors: {:#?}",
                    errors.iter().map(|e| e.to_string()).collect::<Vec<_>>()
                ),
            }
        }
    }

    /// (normalised reference, file, line) of each image.
    fn found(d: &Discovery) -> Vec<(String, String, usize)> {
        d.images
            .iter()
            .map(|f| (f.reference.to_string(), f.file.clone(), f.line))
            .collect()
    }

    fn f(reference: &str, file: &str, line: usize) -> (String, String, usize) {
        (reference.to_string(), file.to_string(), line)
    }

    fn r(s: &str) -> Reference {
        s.parse().unwrap()
    }

    /// A gzipped tar of `(path, contents)` members, in that order (as `helm package` writes them).
    fn tgz(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
        for (path, data) in members {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, path, *data).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    const SHA: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    #[test]
    fn manifest_every_container_kind_with_the_value_line() {
        let manifest = format!(
            "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      initContainers:
        - name: init
          image: busybox:1.36
      containers:
        - name: web
          image: \"nginx:1.25\"
      ephemeralContainers:
        - name: debug
          image: registry.k8s.io/e2e-test-images/agnhost:2.47
---
apiVersion: batch/v1
kind: CronJob
metadata: {{name: job}}
spec:
  schedule: '@daily'
  jobTemplate:
    spec:
      template:
        spec:
          containers:
            - name: job
              image:
                quay.io/org/job@{SHA}
            - {{name: again, image: 'nginx:1.25'}}
---
apiVersion: example.com/v1
kind: Backup
spec:
  image: ghcr.io/acme/backup:v2
  imagePullPolicy: Always
"
        );
        let d = Bundle::new().add("manifests/app.yaml", manifest).ok();
        assert_eq!(
            found(&d),
            vec![
                f("docker.io/library/busybox:1.36", "manifests/app.yaml", 10),
                f("docker.io/library/nginx:1.25", "manifests/app.yaml", 13),
                f("ghcr.io/acme/backup:v2", "manifests/app.yaml", 36),
                f(&format!("quay.io/org/job@{SHA}"), "manifests/app.yaml", 30),
                f("registry.k8s.io/e2e-test-images/agnhost:2.47", "manifests/app.yaml", 16),
            ]
        );
        assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    }

    #[test]
    fn manifest_anchors_merge_keys_and_image_mappings() {
        let manifest = "\
defaults: &defaults
  image: alpine:3.19
a:
  <<: *defaults
b:
  image:
    repository: quay.io/prometheus/node-exporter
    tag: v1.7.0
c:
  image: ''
";
        let d = Bundle::new().add("k8s/x.yml", manifest).ok();
        assert_eq!(
            found(&d),
            vec![
                f("docker.io/library/alpine:3.19", "k8s/x.yml", 2),
                f("quay.io/prometheus/node-exporter:v1.7.0", "k8s/x.yml", 7),
            ]
        );
        assert_eq!(d.warnings, vec!["k8s/x.yml:10: `image` is empty; no image recorded"]);
    }

    #[test]
    fn image_lists_skip_comments_blank_lines_and_trailing_space() {
        let d = Bundle::new()
            .add(
                "imageList",
                "# images for the app\nnginx:1.25\n\n  registry.k8s.io/pause:3.9   # sandbox\n\t\nquay.io/a/b:v1 \r\n",
            )
            .add("extra/app.images", "busybox:1.36\n")
            .add("extra/more-images.txt", "alpine:3.19\n")
            .add("extra/notes.txt", "not-an-image: at all\n")
            .ok();
        assert_eq!(
            found(&d),
            vec![
                f("docker.io/library/alpine:3.19", "extra/more-images.txt", 1),
                f("docker.io/library/busybox:1.36", "extra/app.images", 1),
                f("docker.io/library/nginx:1.25", "imageList", 2),
                f("quay.io/a/b:v1", "imageList", 6),
                f("registry.k8s.io/pause:3.9", "imageList", 4),
            ]
        );
    }

    const REDIS_CHART: &str = "apiVersion: v2\nname: redis\nversion: 19.0.0\nappVersion: 7.2.4\n";
    const REDIS_VALUES: &str = "\
image:
  registry: docker.io
  repository: bitnami/redis
  tag: 7.2.4-debian-12-r0
  digest: \"\"
  pullPolicy: IfNotPresent
metrics:
  enabled: false
  image:
    registry: docker.io
    repository: bitnami/redis-exporter
    tag: 1.58.0
volumePermissions:
  image:
    pullPolicy: IfNotPresent
";
    const REDIS_TEMPLATE: &str = "\
apiVersion: apps/v1
kind: StatefulSet
spec:
  template:
    spec:
      containers:
        - name: redis
          image: {{ include \"common.images.image\" (dict \"imageRoot\" .Values.image \"global\" .Values.global) }}
";

    #[test]
    fn bitnami_chart_dir_with_override_that_changes_the_tag() {
        let d = Bundle::new()
            .add("charts/redis/Chart.yaml", REDIS_CHART)
            .add("charts/redis/values.yaml", REDIS_VALUES)
            .add("charts/redis/templates/statefulset.yaml", REDIS_TEMPLATE)
            .add("charts/redis.values.yaml", "# vendor settings\nimage:\n  tag: 7.2.5\n")
            .ok();
        assert_eq!(
            found(&d),
            vec![
                f("docker.io/bitnami/redis:7.2.5", "charts/redis.values.yaml", 3),
                f(
                    "docker.io/bitnami/redis-exporter:1.58.0",
                    "charts/redis/values.yaml",
                    11
                ),
            ]
        );
        assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    }

    #[test]
    fn override_null_drops_and_digest_wins_over_tag() {
        let d = Bundle::new()
            .add("charts/redis/Chart.yaml", REDIS_CHART)
            .add("charts/redis/values.yaml", REDIS_VALUES)
            .add(
                "charts/redis.values.yaml",
                format!("metrics:\n  image: null\nimage:\n  digest: {SHA}\n"),
            )
            .ok();
        assert_eq!(
            found(&d),
            vec![f(
                &format!("docker.io/bitnami/redis@{SHA}"),
                "charts/redis.values.yaml",
                4
            )]
        );
    }

    #[test]
    fn chart_archive_read_in_memory_with_override_and_nested_subchart() {
        let common = tgz(&[
            ("common/Chart.yaml", b"name: common\ntype: library\nversion: 2.0.0\n"),
            (
                "common/values.yaml",
                b"exampleValue: common-chart\nimage:\n  repository: bitnami/nested\n  tag: '1'\n",
            ),
        ]);
        let chart = tgz(&[
            ("redis/Chart.yaml", REDIS_CHART.as_bytes()),
            ("redis/values.yaml", REDIS_VALUES.as_bytes()),
            ("redis/templates/statefulset.yaml", REDIS_TEMPLATE.as_bytes()),
            (
                "redis/templates/job.yaml",
                b"spec:\n  containers:\n    - image: bitnami/os-shell:12\n",
            ),
            ("redis/charts/common-2.0.0.tgz", &common),
            (
                "redis/charts/sentinel/Chart.yaml",
                b"name: sentinel\nappVersion: 7.2.4\n",
            ),
            (
                "redis/charts/sentinel/values.yaml",
                b"image:\n  repository: bitnami/redis-sentinel\n",
            ),
            ("redis/README.md", b"image: not-scanned\n"),
        ]);
        let d = Bundle::new()
            .add("charts/redis-19.0.0.tgz", &chart)
            .add(
                "charts/redis-19.0.0.values.yaml",
                "image:\n  registry: harbor.corp:8443\n",
            )
            .add(
                "images/busybox.tgz",
                tgz(&[("manifest.json", b"[]"), ("blobs/sha256/aa", b"x")]),
            )
            .ok();
        let a = "charts/redis-19.0.0.tgz:redis/";
        assert_eq!(
            found(&d),
            vec![
                f(
                    "docker.io/bitnami/nested:1",
                    &format!("{a}charts/common-2.0.0.tgz:common/values.yaml"),
                    3
                ),
                f("docker.io/bitnami/os-shell:12", &format!("{a}templates/job.yaml"), 3),
                f(
                    "docker.io/bitnami/redis-exporter:1.58.0",
                    &format!("{a}values.yaml"),
                    11
                ),
                f(
                    "docker.io/bitnami/redis-sentinel:7.2.4",
                    &format!("{a}charts/sentinel/values.yaml"),
                    2
                ),
                f(
                    "harbor.corp:8443/bitnami/redis:7.2.4-debian-12-r0",
                    "charts/redis-19.0.0.values.yaml",
                    2
                ),
            ]
        );
        assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    }

    #[test]
    fn chart_archive_member_over_the_limit_is_skipped_with_a_warning() {
        let big = vec![b'#'; (MAX_CHART_MEMBER + 1) as usize];
        let chart = tgz(&[
            ("big/Chart.yaml", b"name: big\n"),
            ("big/templates/huge.yaml", &big),
            ("big/templates/small.yaml", b"image: alpine:3.19\n"),
        ]);
        let d = Bundle::new().add("charts/big-1.0.tgz", &chart).ok();
        assert_eq!(
            found(&d),
            vec![f(
                "docker.io/library/alpine:3.19",
                "charts/big-1.0.tgz:big/templates/small.yaml",
                1
            )]
        );
        assert_eq!(d.warnings.len(), 1, "{:?}", d.warnings);
        assert!(d.warnings[0].contains("big/templates/huge.yaml"), "{:?}", d.warnings);
    }

    #[test]
    fn template_literals_outside_comments_and_without_template_actions() {
        let template = "\
spec:
  containers:
    - name: a
      image: \"docker.io/library/busybox:1.36\"
    - name: b
      image: {{ .Values.image.repository }}:{{ .Values.image.tag }}
    - name: c
      image: '{{ .Values.sidecar }}'
  # image: commented-out:1
{{/*
image: in-a-comment:1
*/}}
    - image: alpine:3.19  # pinned
      imagePullPolicy: Always
";
        let d = Bundle::new()
            .add("charts/app/Chart.yaml", "name: app\n")
            .add("charts/app/templates/deployment.yaml", template)
            .add(
                "charts/app/templates/_helpers.tpl",
                "{{- define \"x\" -}}\nimage: bitnami/os-shell:12-debian-12\n{{- end }}\n",
            )
            .add("charts/app/templates/NOTES.txt", "image: not-scanned:1\n")
            .ok();
        assert_eq!(
            found(&d),
            vec![
                f(
                    "docker.io/bitnami/os-shell:12-debian-12",
                    "charts/app/templates/_helpers.tpl",
                    2
                ),
                f(
                    "docker.io/library/alpine:3.19",
                    "charts/app/templates/deployment.yaml",
                    13
                ),
                f(
                    "docker.io/library/busybox:1.36",
                    "charts/app/templates/deployment.yaml",
                    4
                ),
            ]
        );
    }

    #[test]
    fn subchart_values_come_from_the_parent_under_its_alias_with_globals() {
        let parent_chart = "\
apiVersion: v2
name: app
appVersion: \"2.0\"
dependencies:
  - name: redis
    alias: cache
  - name: postgresql
";
        let parent_values = "\
global:
  imageRegistry: mirror.example.com
image:
  repository: example/app
  tag: \"\"
cache:
  image:
    tag: 7.4.0
postgresql:
  image:
    repository: bitnami/postgresql
";
        let d = Bundle::new()
            .add("charts/app/Chart.yaml", parent_chart)
            .add("charts/app/values.yaml", parent_values)
            .add("charts/app/charts/redis/Chart.yaml", REDIS_CHART)
            .add("charts/app/charts/redis/values.yaml", REDIS_VALUES)
            .ok();
        assert_eq!(
            found(&d),
            vec![
                // No `registry` key: global.imageRegistry does not apply; empty tag: appVersion.
                f("docker.io/example/app:2.0", "charts/app/values.yaml", 4),
                // The parent's tag (higher precedence) is where the reference changed.
                f("mirror.example.com/bitnami/redis:7.4.0", "charts/app/values.yaml", 8),
                f(
                    "mirror.example.com/bitnami/redis-exporter:1.58.0",
                    "charts/app/charts/redis/values.yaml",
                    11
                ),
            ]
        );
        assert_eq!(d.warnings.len(), 1, "{:?}", d.warnings);
        assert!(d.warnings[0].starts_with("charts/app/Chart.yaml:1: dependency `postgresql` is not in charts/"));
    }

    #[test]
    fn global_image_registry_from_the_override_file() {
        let d = Bundle::new()
            .add("charts/redis/Chart.yaml", REDIS_CHART)
            .add("charts/redis/values.yaml", REDIS_VALUES)
            .add("charts/redis.values.yaml", "global:\n  imageRegistry: 10.0.0.5:5000\n")
            .ok();
        assert_eq!(
            found(&d),
            vec![
                f(
                    "10.0.0.5:5000/bitnami/redis:7.2.4-debian-12-r0",
                    "charts/redis/values.yaml",
                    3
                ),
                f(
                    "10.0.0.5:5000/bitnami/redis-exporter:1.58.0",
                    "charts/redis/values.yaml",
                    11
                ),
            ]
        );
    }

    #[test]
    fn numeric_tags_render_as_helm_renders_them() {
        let values = "\
image:
  repository: bitnami/redis
  tag: 7.2
exporter:
  image:
    repository: example/exporter
    tag: 1.10
quoted:
  image:
    repository: example/quoted
    tag: \"1.10\"
int:
  image:
    repository: example/int
    tag: 5
";
        let d = Bundle::new()
            .add("charts/x/Chart.yaml", "name: x\n")
            .add("charts/x/values.yaml", values)
            .ok();
        assert_eq!(
            found(&d),
            vec![
                f("docker.io/bitnami/redis:7.2", "charts/x/values.yaml", 2),
                f("docker.io/example/exporter:1.1", "charts/x/values.yaml", 6),
                f("docker.io/example/int:5", "charts/x/values.yaml", 14),
                f("docker.io/example/quoted:1.10", "charts/x/values.yaml", 10),
            ]
        );
        assert_eq!(d.warnings.len(), 1, "{:?}", d.warnings);
        assert!(
            d.warnings[0].starts_with("charts/x/values.yaml:7: tag `1.10` is a YAML number"),
            "{:?}",
            d.warnings
        );
    }

    #[test]
    fn helm_number_matches_go_formatting() {
        for (yaml, go) in [
            ("7.2", "7.2"),
            ("7.10", "7.1"),
            ("5", "5"),
            ("123456", "123456"),
            ("1000000", "1e+06"),
            ("20240101", "2.0240101e+07"),
            ("0.00001", "1e-05"),
            ("0.0001", "0.0001"),
            ("1e3", "1000"),
            ("010", "8"),
            ("0x1F", "31"),
            ("1_000", "1000"),
            ("-1.5", "-1.5"),
            ("0", "0"),
        ] {
            assert_eq!(helm_number(yaml).as_deref(), Some(go), "{yaml}");
        }
        for not_a_number in ["1.2.3", "v1", "7.2-alpine", "latest", "", ".", "1e", "0x"] {
            assert_eq!(helm_number(not_a_number), None, "{not_a_number}");
        }
    }

    #[test]
    fn empty_or_missing_tag_defaults_to_app_version() {
        let values = "\
image:
  repository: acme/api
  tag: ''
worker:
  image:
    repository: acme/worker
pinned:
  image:
    repository: acme/pinned:1.0
";
        let d = Bundle::new()
            .add("charts/api/Chart.yaml", "name: api\nappVersion: v3.1.0\n")
            .add("charts/api/values.yaml", values)
            .ok();
        assert_eq!(
            found(&d),
            vec![
                f("docker.io/acme/api:v3.1.0", "charts/api/values.yaml", 2),
                f("docker.io/acme/pinned:1.0", "charts/api/values.yaml", 9),
                f("docker.io/acme/worker:v3.1.0", "charts/api/values.yaml", 6),
            ]
        );
    }

    #[test]
    fn other_value_patterns_and_guesses() {
        let values = "\
image:
  registry: registry.gitlab.com
  image: gitlab-org/gitlab-runner
  tag: alpine-v16.9.0
sidecar:
  image:
    name: envoyproxy/envoy
    tag: v1.29.1
release:
  name: My Release
  tag: stable
kubectlImage: bitnami/kubectl:1.29
debugImage: Not An Image:x
baseImage: quay.io/prometheus/prometheus
plain: {image: 'busybox:1.36'}
templated:
  image: \"{{ .Values.global.registry }}/app:1\"
";
        let d = Bundle::new()
            .add("charts/r/Chart.yaml", "name: r\n")
            .add("charts/r/values.yaml", values)
            .ok();
        assert_eq!(
            found(&d),
            vec![
                f("docker.io/bitnami/kubectl:1.29", "charts/r/values.yaml", 12),
                f("docker.io/envoyproxy/envoy:v1.29.1", "charts/r/values.yaml", 7),
                f("docker.io/library/busybox:1.36", "charts/r/values.yaml", 15),
                f(
                    "registry.gitlab.com/gitlab-org/gitlab-runner:alpine-v16.9.0",
                    "charts/r/values.yaml",
                    3
                ),
            ]
        );
        // `release` is a {name, tag} mapping that is no image, `debugImage` a bad guess,
        // `baseImage` has no tag, and the templated image cannot be resolved here: warnings.
        assert_eq!(d.warnings.len(), 4, "{:#?}", d.warnings);
        assert!(
            d.warnings[0].starts_with("charts/r/values.yaml:10: `My Release:stable` looks like an image"),
            "{:#?}",
            d.warnings
        );
        assert!(d.warnings[1].starts_with("charts/r/values.yaml:13: `Not An Image:x` looks like an image"));
        assert!(
            d.warnings[2].starts_with("charts/r/values.yaml:14: `baseImage: quay.io/prometheus/prometheus` has no tag")
        );
        assert!(
            d.warnings[3].starts_with("charts/r/values.yaml:17: `{{ .Values.global.registry }}/app:1` is a template")
        );
    }

    #[test]
    fn malformed_yaml_is_an_error_with_line_and_column() {
        let bad = "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n    - name: a\n      image: [nginx\n";
        let errors = Bundle::new()
            .add("manifests/bad-flow.yaml", bad)
            .discover()
            .unwrap_err();
        assert_eq!(errors.len(), 1);
        match &errors[0] {
            DiscoverError::Yaml { file, line, column, .. } => {
                assert_eq!(file, "manifests/bad-flow.yaml");
                assert_eq!((*line, *column), (7, 1), "{}", errors[0]);
            }
            other => panic!("wrong error: {other}"),
        }
        let bad = "a: 1\nb:\n  c: 2\n d: 3\n";
        let errors = Bundle::new().add("bad-indent.yml", bad).discover().unwrap_err();
        assert!(
            matches!(&errors[..], [DiscoverError::Yaml { line: 4, column: 2, .. }]),
            "{:?}",
            errors.iter().map(|e| e.to_string()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn uppercase_reference_is_a_bad_reference_with_its_line() {
        let manifest = "kind: Pod\nspec:\n  containers:\n    - name: web\n      image: Nginx:latest\n";
        let errors = Bundle::new()
            .add("manifests/pod.yaml", manifest)
            .discover()
            .unwrap_err();
        match &errors[..] {
            [DiscoverError::BadReference {
                file,
                line,
                text,
                reason,
                hint,
            }] => {
                assert_eq!(
                    (file.as_str(), *line, text.as_str()),
                    ("manifests/pod.yaml", 5, "Nginx:latest")
                );
                assert!(reason.contains("invalid repository `library/Nginx`"), "{reason}");
                assert!(hint.contains("lowercase"), "{hint}");
            }
            other => panic!("wrong errors: {other:?}"),
        }
    }

    #[test]
    fn all_errors_come_back_at_once() {
        let errors = Bundle::new()
            .add("a/bad.yaml", "key: [unclosed\n")
            .add(
                "b/pod.yaml",
                "image: Nginx:latest\n---\nimage: nginx:1.25\n---\nimage: 'x:-bad'\n",
            )
            .add("c/imageList", "nginx:1.25\nexample.com:port/x\n")
            .add("charts/x/Chart.yaml", "name: x\n")
            .add("charts/x/values.yaml", "image:\n  repository: UPPER/case\n")
            .add("charts/x/templates/t.yaml", "image: \"Bad Ref\"\n")
            .add("charts/broken-1.0.tgz", b"not gzip at all")
            .discover()
            .unwrap_err();
        let at: Vec<(String, usize)> = errors
            .iter()
            .map(|e| match e {
                DiscoverError::Yaml { file, line, .. } | DiscoverError::BadReference { file, line, .. } => {
                    (file.clone(), *line)
                }
                DiscoverError::Chart { file, .. } => (file.clone(), 0),
                other => panic!("unexpected {other}"),
            })
            .collect();
        let expected = [
            ("a/bad.yaml", 2),
            ("b/pod.yaml", 1),
            ("b/pod.yaml", 5),
            ("c/imageList", 2),
            ("charts/broken-1.0.tgz", 0),
            ("charts/x/templates/t.yaml", 1),
            ("charts/x/values.yaml", 2),
        ];
        assert_eq!(at, expected.map(|(f, l)| (f.to_string(), l)));
        let values_error = errors[6].to_string();
        assert!(
            values_error.contains("override `image` in `charts/x.values.yaml`"),
            "{values_error}"
        );
    }

    #[test]
    fn ignored_images_are_dropped_and_unused_ignores_warned() {
        let mut b = Bundle::new();
        b.add(
            "m.yaml",
            "a:\n  image: nginx:1.25\nb:\n  image: docker.io/library/busybox:1.36\n",
        );
        let d = discover(
            &b.files,
            &[r("docker.io/library/nginx:1.25"), r("quay.io/never/used:1")],
        )
        .unwrap();
        assert_eq!(found(&d), vec![f("docker.io/library/busybox:1.36", "m.yaml", 4)]);
        assert_eq!(
            d.warnings,
            vec!["--ignore-image quay.io/never/used:1: no file names this image"]
        );
    }

    #[test]
    fn duplicates_keep_the_first_source_whatever_the_input_order() {
        let mut b = Bundle::new();
        b.add("z.yaml", "image: nginx:1.25\n")
            .add("a.yaml", "x: 1\nimage: index.docker.io/library/nginx:1.25\n");
        b.files.reverse();
        let d = b.ok();
        assert_eq!(found(&d), vec![f("docker.io/library/nginx:1.25", "a.yaml", 2)]);
    }

    #[test]
    fn unreadable_file_is_an_io_error_naming_both_paths() {
        let files = vec![("m.yaml".to_string(), PathBuf::from("/nonexistent/discover-test/m.yaml"))];
        let errors = discover(&files, &[]).unwrap_err();
        assert!(matches!(&errors[..], [DiscoverError::Io { file, .. }] if file == "m.yaml"));
    }

    #[test]
    fn chart_errors_name_the_chart_file() {
        let errors = Bundle::new()
            .add("charts/noname/Chart.yaml", "version: 1.0.0\n")
            .add("charts/list/Chart.yaml", "name: list\n")
            .add("charts/list/values.yaml", "- a\n- b\n")
            .discover()
            .unwrap_err();
        let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert!(
            matches!(&errors[..], [DiscoverError::Chart { .. }, DiscoverError::Chart { .. }]),
            "{text:?}"
        );
        assert!(text[0].starts_with("charts/list/values.yaml:1: "), "{text:?}");
        assert!(
            text[1].starts_with("charts/noname/Chart.yaml: has no `name`"),
            "{text:?}"
        );
    }

    #[test]
    fn a_large_plain_file_is_not_mistaken_for_an_alias_bomb() {
        // Regression: the node guard once counted every node, and a 10 MiB list failed the build.
        let mut big = String::new();
        for i in 0..400_000 {
            big.push_str(&format!("- {{name: s{i}, image: \"example.com/a:{}\"}}\n", i % 3));
        }
        let found = Bundle::new().add("manifests/big.yaml", big).discover().unwrap();
        assert_eq!(found.images.len(), 3);
    }

    #[test]
    fn alias_bomb_and_deep_nesting_are_errors_not_hangs() {
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            bomb.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let deep = format!(
            "{}{}\n",
            "[".repeat(MAX_YAML_DEPTH + 10),
            "]".repeat(MAX_YAML_DEPTH + 10)
        );
        let errors = Bundle::new()
            .add("bomb.yaml", bomb)
            .add("deep.yaml", deep)
            .discover()
            .unwrap_err();
        assert!(matches!(
            &errors[..],
            [DiscoverError::Yaml { .. }, DiscoverError::Yaml { .. }]
        ));
        assert!(errors[0].to_string().contains("nodes"), "{}", errors[0]);
        assert!(
            matches!(errors[1], DiscoverError::Yaml { line: 1, .. }),
            "{}",
            errors[1]
        );
    }

    #[test]
    fn helm_template_outside_a_chart_hints_at_the_missing_chart_yaml() {
        let errors = Bundle::new()
            .add(
                "charts/app/templates/d.yaml",
                "metadata:\n  name: {{ .Release.Name }}-web\n",
            )
            .discover()
            .unwrap_err();
        assert!(errors[0].to_string().contains("Chart.yaml is missing"), "{}", errors[0]);
    }

    #[test]
    fn crds_of_a_chart_are_plain_manifests() {
        let mut file = Vec::new();
        writeln!(
            file,
            "kind: CustomResourceDefinition\nspec:\n  image: ghcr.io/acme/operator:1.0"
        )
        .unwrap();
        let d = Bundle::new()
            .add("c/Chart.yaml", "name: c\n")
            .add("c/crds/crd.yaml", file)
            .ok();
        assert_eq!(found(&d), vec![f("ghcr.io/acme/operator:1.0", "c/crds/crd.yaml", 3)]);
    }
}
