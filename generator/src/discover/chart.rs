//! Helm charts: finding them (directories and archives), their metadata, subcharts and the
//! values files they are scanned with.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::manifest::{is_image_list, is_yaml};
use super::yaml::{merge, parse_values, parse_yaml, Node, Value};
use super::{DiscoverError, Scan, MAX_CHART_DEPTH, MAX_CHART_EXPANDED, MAX_CHART_MEMBER};

/// The bytes of a chart file: still on disk, or read from an archive.
#[derive(Clone)]
pub(super) enum Blob {
    Disk(PathBuf),
    Memory(Rc<[u8]>),
}

pub(super) struct Chart {
    /// Names the chart's files in messages: `charts/redis/` or `charts/redis-1.0.tgz:redis/`.
    pub(super) label: String,
    /// Chart-relative path (`values.yaml`, `templates/deployment.yaml`) to contents.
    pub(super) files: BTreeMap<String, Blob>,
}

impl Chart {
    pub(super) fn read(&self, rel: &str) -> Option<Result<Cow<'_, [u8]>, DiscoverError>> {
        Some(match self.files.get(rel)? {
            Blob::Memory(b) => Ok(Cow::Borrowed(&b[..])),
            Blob::Disk(p) => read_disk(&format!("{}{rel}", self.label), p).map(Cow::Owned),
        })
    }

    /// The chart whose files are under `prefix` (a subchart directory, `charts/x/`).
    pub(super) fn sub(&self, prefix: &str) -> Chart {
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
pub(super) struct ChartMeta {
    pub(super) name: String,
    pub(super) app_version: Option<String>,
    /// (name, alias) of each dependency.
    pub(super) dependencies: Vec<(String, Option<String>)>,
}

/// A chart found at the top of the bundle (not inside another chart), ready to render and scan.
pub(super) struct TopChart {
    pub(super) chart: Chart,
    pub(super) meta: ChartMeta,
    /// The vendor's values file beside the chart (its name even when absent, for hints).
    pub(super) override_file: String,
    pub(super) override_bytes: Option<Vec<u8>>,
}

/// What a chart's values are walked with.
pub(super) struct ValuesCtx {
    pub(super) app_version: Option<String>,
    pub(super) global_registry: Option<String>,
    /// Where this chart's values sit in the top chart's values (`["redis"]` for a subchart).
    pub(super) key_path: Vec<String>,
    /// The override file a vendor edits to change the top chart's values.
    pub(super) override_file: String,
}

/// Read what matters here from a chart's Chart.yaml (and a v1 chart's requirements.yaml).
pub(super) fn chart_meta(chart: &Chart) -> Result<ChartMeta, DiscoverError> {
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
pub(super) fn chart_root(bundle_path: &str) -> Option<&str> {
    match bundle_path.rsplit_once('/') {
        Some((dir, "Chart.yaml")) => Some(dir),
        None if bundle_path == "Chart.yaml" => Some(""),
        _ => None,
    }
}

/// Whether `root` is `<chart>/charts/<name>` of another chart root (Helm loads only those).
pub(super) fn is_subchart_root(root: &str, roots: &BTreeSet<&str>) -> bool {
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
pub(super) fn split_dir(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

/// The stem of a chart archive's file name: `redis-1.0` of `charts/redis-1.0.tgz`.
pub(super) fn archive_stem(path: &str) -> Option<&str> {
    let name = split_dir(path).1;
    name.strip_suffix(".tgz")
        .or_else(|| name.strip_suffix(".tar.gz"))
        .filter(|s| !s.is_empty())
}

pub(super) fn read_disk(file: &str, path: &Path) -> Result<Vec<u8>, DiscoverError> {
    fs::read(path).map_err(|source| DiscoverError::Io {
        file: file.into(),
        path: path.into(),
        source,
    })
}

/// The precedence of a values file: a parent's values beat its subchart's, the override beats all.
pub(super) fn values_layer(depth: u32) -> u32 {
    MAX_CHART_DEPTH + 1 - depth.min(MAX_CHART_DEPTH + 1)
}
pub(super) const OVERRIDE_LAYER: u32 = MAX_CHART_DEPTH + 2;

impl Scan<'_> {
    /// Scan a chart that is not a subchart, with the override file beside it in `dir`.
    /// Reads a top chart's metadata and the vendor's override file beside it (consumed, so it is
    /// not scanned as a manifest). `None` when that failed (the error is recorded).
    pub(super) fn top_chart_prepare(
        &mut self,
        chart: Chart,
        dir: &str,
        stem: &str,
        files: &BTreeMap<&str, &Path>,
        consumed: &mut BTreeSet<String>,
    ) -> Option<TopChart> {
        let meta = match chart_meta(&chart) {
            Ok(m) => m,
            Err(e) => {
                self.errors.push(e);
                return None;
            }
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
        let mut override_bytes = None;
        if let Some(file) = found {
            consumed.insert(file.clone());
            match read_disk(file, files[file.as_str()]) {
                Ok(bytes) => override_bytes = Some(bytes),
                Err(e) => {
                    self.errors.push(e);
                    return None;
                }
            }
        }
        Some(TopChart {
            chart,
            meta,
            override_file,
            override_bytes,
        })
    }

    /// Scan one chart: its values merged with `overrides`, templates, CRDs, subcharts.
    pub(super) fn chart(
        &mut self,
        chart: &Chart,
        meta: &ChartMeta,
        overrides: Option<Node>,
        depth: u32,
        mut ctx: ValuesCtx,
    ) {
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
    pub(super) fn load_archive(&mut self, label: &str, reader: impl Read) -> Result<Option<Chart>, DiscoverError> {
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
                Err(DiscoverError::ChartArchive {
                    file: label.into(),
                    reason: printable(&e.to_string()),
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
}

/// A reader's error fit for a terminal line: tar's header errors quote bytes of the file, which
/// for a binary that is no tar is noise (or escape sequences), so such a message is replaced.
fn printable(text: &str) -> String {
    if text.len() <= 200 && text.chars().all(|c| c.is_ascii_graphic() || c == ' ') {
        text.to_string()
    } else {
        "the data is not a gzipped tar archive".to_string()
    }
}
