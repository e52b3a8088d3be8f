//! Loading a chart as Helm's `pkg/chart/loader` does: the files of a directory or `.tgz`
//! (size-capped), Chart.yaml (with requirements.yaml for apiVersion v1), values.yaml,
//! templates/, `.Files`, and subcharts from charts/<dir>/ and charts/*.tgz, recursively.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::files::Files;
use crate::value::{to_str, Map, Value};
use crate::yaml;

/// Largest file accepted in a chart.
pub const MAX_FILE: u64 = 10 << 20;
/// Largest total size of a chart's files.
pub const MAX_TOTAL: u64 = 100 << 20;
/// Subcharts nested deeper than this are refused.
const MAX_CHART_DEPTH: usize = 16;

/// Why a chart could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("failed to read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("failed to read chart archive: {source}")]
    Archive { source: std::io::Error },
    #[error("chart file {path} is {size} bytes, more than the {limit} allowed")]
    FileTooLarge { path: String, size: u64, limit: u64 },
    #[error("chart files total more than {limit} bytes")]
    ChartTooLarge { limit: u64 },
    #[error("chart archive entry {path:?} escapes the chart or has no top-level directory")]
    BadEntryPath { path: String },
    #[error("chart {chart} has no Chart.yaml")]
    MissingChartYaml { chart: String },
    #[error("chart {chart}: invalid {file}: {source}")]
    BadYaml {
        chart: String,
        file: String,
        source: yaml::YamlError,
    },
    #[error("chart {chart}: Chart.yaml has no name")]
    MissingName { chart: String },
    #[error("chart {chart}: subcharts nested too deep")]
    TooDeep { chart: String },
    #[error("failed to start the rendering thread: {source}")]
    Thread { source: std::io::Error },
    #[error("rendering panicked (a bug in helm-render)")]
    Panicked,
    #[error("chart {chart}: subchart {path}: {source}")]
    Subchart {
        chart: String,
        path: String,
        source: Box<ChartError>,
    },
}

/// A chart's files, paths relative to the chart root ("Chart.yaml", "templates/x.yaml",
/// "charts/sub/Chart.yaml", "charts/dep-1.0.tgz").
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChartFiles {
    pub files: BTreeMap<String, Vec<u8>>,
}

impl ChartFiles {
    /// Reads a chart directory (sorted walk, size caps; symlinks are followed).
    pub fn from_dir(dir: &Path) -> Result<Self, ChartError> {
        let mut files = BTreeMap::new();
        let mut total = 0u64;
        walk(dir, dir, &mut files, &mut total, 0)?;
        Ok(ChartFiles { files })
    }

    /// Reads a gzipped chart archive, stripping its single top-level `<name>/` directory.
    pub fn from_tgz(reader: impl Read) -> Result<Self, ChartError> {
        let gz = flate2::read::GzDecoder::new(reader);
        let mut archive = tar::Archive::new(gz);
        let mut files = BTreeMap::new();
        let mut total = 0u64;
        let entries = archive.entries().map_err(|source| ChartError::Archive { source })?;
        for entry in entries {
            let mut entry = entry.map_err(|source| ChartError::Archive { source })?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let raw = entry
                .path()
                .map_err(|source| ChartError::Archive { source })?
                .to_string_lossy()
                .into_owned();
            let path = raw.trim_start_matches("./");
            let Some((_, rel)) = path.split_once('/') else {
                return Err(ChartError::BadEntryPath { path: raw.clone() });
            };
            if rel.is_empty() || rel.split('/').any(|p| p == ".." || p.is_empty() && !rel.ends_with('/')) {
                return Err(ChartError::BadEntryPath { path: raw.clone() });
            }
            let size = entry.header().size().map_err(|source| ChartError::Archive { source })?;
            if size > MAX_FILE {
                return Err(ChartError::FileTooLarge {
                    path: raw,
                    size,
                    limit: MAX_FILE,
                });
            }
            let mut data = Vec::new();
            (&mut entry)
                .take(MAX_FILE + 1)
                .read_to_end(&mut data)
                .map_err(|source| ChartError::Archive { source })?;
            if data.len() as u64 > MAX_FILE {
                return Err(ChartError::FileTooLarge {
                    path: raw,
                    size: data.len() as u64,
                    limit: MAX_FILE,
                });
            }
            total += data.len() as u64;
            if total > MAX_TOTAL {
                return Err(ChartError::ChartTooLarge { limit: MAX_TOTAL });
            }
            files.insert(rel.to_string(), data);
        }
        Ok(ChartFiles { files })
    }
}

fn walk(
    root: &Path,
    dir: &Path,
    out: &mut BTreeMap<String, Vec<u8>>,
    total: &mut u64,
    depth: usize,
) -> Result<(), ChartError> {
    if depth > 32 {
        return Ok(());
    }
    let io = |source| ChartError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        let meta = std::fs::metadata(&path).map_err(|source| ChartError::Io {
            path: path.clone(),
            source,
        })?;
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .to_string_lossy()
            .replace('\\', "/");
        if meta.is_dir() {
            walk(root, &path, out, total, depth + 1)?;
        } else if meta.is_file() {
            if meta.len() > MAX_FILE {
                return Err(ChartError::FileTooLarge {
                    path: rel,
                    size: meta.len(),
                    limit: MAX_FILE,
                });
            }
            *total += meta.len();
            if *total > MAX_TOTAL {
                return Err(ChartError::ChartTooLarge { limit: MAX_TOTAL });
            }
            let data = std::fs::read(&path).map_err(|source| ChartError::Io {
                path: path.clone(),
                source,
            })?;
            out.insert(rel, data);
        }
    }
    Ok(())
}

/// A dependency entry of Chart.yaml (or requirements.yaml).
#[derive(Debug, Clone, PartialEq)]
pub struct Dependency {
    pub name: String,
    pub alias: Option<String>,
    pub condition: Option<String>,
    pub tags: Vec<String>,
}

/// A loaded chart.
#[derive(Debug, Clone)]
pub struct Chart {
    /// The name templates see (the alias when a parent renamed it).
    pub name: String,
    /// Chart.yaml as loaded (numbers kept as text).
    pub metadata: Map,
    pub values: Map,
    /// templates/** files: (path relative to the chart, text).
    pub templates: Vec<(String, String)>,
    pub files: Files,
    pub dependencies: Vec<Dependency>,
    pub subcharts: Vec<Chart>,
}

impl Chart {
    /// Whether Chart.yaml says `type: library`.
    pub fn is_library(&self) -> bool {
        self.metadata.get("type").map(to_str).as_deref() == Some("library")
    }
}

/// Loads a chart and its subcharts.
pub fn load(files: &ChartFiles) -> Result<Chart, ChartError> {
    load_at(files, "chart", 0)
}

fn load_at(cf: &ChartFiles, label: &str, depth: usize) -> Result<Chart, ChartError> {
    if depth > MAX_CHART_DEPTH {
        return Err(ChartError::TooDeep {
            chart: label.to_string(),
        });
    }
    let text = |k: &str| cf.files.get(k).map(|b| String::from_utf8_lossy(b).into_owned());
    let chart_yaml = text("Chart.yaml").ok_or_else(|| ChartError::MissingChartYaml {
        chart: label.to_string(),
    })?;
    let bad = |file: &str, source| ChartError::BadYaml {
        chart: label.to_string(),
        file: file.to_string(),
        source,
    };
    let metadata = match yaml::load_text_numbers(&chart_yaml).map_err(|e| bad("Chart.yaml", e))? {
        Value::Map(m) => m,
        _ => {
            return Err(ChartError::MissingChartYaml {
                chart: label.to_string(),
            })
        }
    };
    let name = metadata.get("name").map(to_str).unwrap_or_default();
    if name.is_empty() {
        return Err(ChartError::MissingName {
            chart: label.to_string(),
        });
    }
    let values = match text("values.yaml") {
        Some(t) => match yaml::load(&t).map_err(|e| bad("values.yaml", e))? {
            Value::Map(m) => m,
            Value::Null => Map::new(),
            _ => {
                return Err(bad(
                    "values.yaml",
                    yaml::YamlError {
                        line: 1,
                        message: "not a map".into(),
                    },
                ))
            }
        },
        None => Map::new(),
    };
    let mut deps_value = metadata.get("dependencies").cloned();
    if metadata.get("apiVersion").map(to_str).as_deref() != Some("v2") {
        if let Some(t) = text("requirements.yaml") {
            let req = yaml::load_text_numbers(&t).map_err(|e| bad("requirements.yaml", e))?;
            deps_value = req.path("dependencies").cloned();
        }
    }
    let dependencies = parse_dependencies(deps_value.as_ref());

    let mut templates = Vec::new();
    let mut other = BTreeMap::new();
    let mut sub_dirs: BTreeMap<String, ChartFiles> = BTreeMap::new();
    let mut sub_tgz: Vec<(String, &Vec<u8>)> = Vec::new();
    for (path, data) in &cf.files {
        if let Some(t) = path.strip_prefix("templates/") {
            let _ = t;
            templates.push((path.clone(), String::from_utf8_lossy(data).into_owned()));
        } else if let Some(rest) = path.strip_prefix("charts/") {
            match rest.split_once('/') {
                Some((dir, inner)) => {
                    sub_dirs
                        .entry(dir.to_string())
                        .or_default()
                        .files
                        .insert(inner.to_string(), data.clone());
                }
                None if rest.ends_with(".tgz") || rest.ends_with(".tar.gz") => sub_tgz.push((path.clone(), data)),
                None => {}
            }
        } else if !matches!(
            path.as_str(),
            "Chart.yaml" | "values.yaml" | "requirements.yaml" | "requirements.lock"
        ) {
            other.insert(path.clone(), data.clone());
        }
    }
    let mut subcharts = Vec::new();
    let sub_err = |path: &str, e: ChartError| ChartError::Subchart {
        chart: name.clone(),
        path: path.to_string(),
        source: Box::new(e),
    };
    for (dir, files) in &sub_dirs {
        let path = format!("charts/{dir}");
        if !files.files.contains_key("Chart.yaml") {
            continue;
        }
        subcharts.push(load_at(files, &path, depth + 1).map_err(|e| sub_err(&path, e))?);
    }
    for (path, data) in sub_tgz {
        let files = ChartFiles::from_tgz(data.as_slice()).map_err(|e| sub_err(&path, e))?;
        subcharts.push(load_at(&files, &path, depth + 1).map_err(|e| sub_err(&path, e))?);
    }
    Ok(Chart {
        name,
        metadata,
        values,
        templates,
        files: Files::new(other),
        dependencies,
        subcharts,
    })
}

fn parse_dependencies(v: Option<&Value>) -> Vec<Dependency> {
    let Some(Value::List(items)) = v else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|d| {
            let m = d.as_map()?;
            let s = |k: &str| m.get(k).map(to_str).filter(|s| !s.is_empty());
            Some(Dependency {
                name: s("name")?,
                alias: s("alias"),
                condition: s("condition"),
                tags: match m.get("tags") {
                    Some(Value::List(l)) => l.iter().map(to_str).collect(),
                    _ => Vec::new(),
                },
            })
        })
        .collect()
}

#[cfg(test)]
impl ChartFiles {
    /// A chart from (path, text) pairs: the test fixtures of this crate.
    pub(crate) fn from_pairs(files: &[(&str, &str)]) -> ChartFiles {
        ChartFiles {
            files: files
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(files: &[(&str, &str)]) -> ChartFiles {
        ChartFiles::from_pairs(files)
    }

    #[test]
    fn loads_parts_and_subcharts() {
        let cf = chart(&[
            ("Chart.yaml", "apiVersion: v2\nname: top\nversion: 1.10\ndependencies:\n- name: sub\n  alias: s2\n  condition: s2.enabled\n"),
            ("values.yaml", "a: 1\n"),
            ("templates/x.yaml", "x"),
            ("files/f.txt", "f"),
            ("charts/sub/Chart.yaml", "name: sub\nversion: 0.1.0\n"),
            ("charts/sub/templates/y.yaml", "y"),
        ]);
        let c = load(&cf).unwrap();
        assert_eq!(c.name, "top");
        assert_eq!(c.metadata["version"], Value::str("1.10"));
        assert_eq!(c.templates.len(), 1);
        assert_eq!(c.files.get("files/f.txt"), "f");
        assert_eq!(c.subcharts[0].name, "sub");
        assert_eq!(c.dependencies[0].alias.as_deref(), Some("s2"));
    }

    #[test]
    fn missing_chart_yaml_is_an_error() {
        assert!(matches!(
            load(&chart(&[("values.yaml", "a: 1")])),
            Err(ChartError::MissingChartYaml { .. })
        ));
        assert!(matches!(
            load(&chart(&[("Chart.yaml", "name: x"), ("values.yaml", "a: [")])),
            Err(ChartError::BadYaml { .. })
        ));
    }

    #[test]
    fn tgz_strips_top_dir_and_rejects_traversal() {
        let build = |path: &str| {
            let mut tar = tar::Builder::new(Vec::new());
            let data = b"name: x\n";
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            // set_path refuses "..", so write the raw name.
            let name = h.as_old_mut().name.as_mut();
            name[..path.len()].copy_from_slice(path.as_bytes());
            h.set_cksum();
            tar.append(&h, &data[..]).unwrap();
            let raw = tar.into_inner().unwrap();
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut gz, &raw).unwrap();
            gz.finish().unwrap()
        };
        let ok = ChartFiles::from_tgz(build("x/Chart.yaml").as_slice()).unwrap();
        assert!(ok.files.contains_key("Chart.yaml"));
        assert!(matches!(
            ChartFiles::from_tgz(build("x/../../etc").as_slice()),
            Err(ChartError::BadEntryPath { .. })
        ));
    }
}
