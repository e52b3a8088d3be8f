//! Charts rendered as `helm template` renders them ([`helm_render`]), their images read from
//! the rendered Kubernetes objects with the manifest rules (`image:` fields, operator args and
//! env). This is what gives exact names where a chart's helpers compose them
//! (`v{{ .Chart.AppVersion }}`, `global.image.registry`, digests), and leaves out components
//! that the chart's default (or the vendor's override) values disable.
//!
//! A template that fails to render is a warning naming `chart/templates/file:line` and the
//! reason, and the chart is then also scanned by its values (`values.rs`), so an image is never
//! lost to a template this renderer cannot handle. `--chart-images all` asks for the values scan
//! of every chart as well (the over-inclusion of earlier versions). [`Scan::top_chart`] applies
//! that order to each top chart: its rendering first, then its values where needed.

use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use helm_render::{ChartError, ChartFiles, Options, Rendered};

use super::chart::{Chart, TopChart, ValuesCtx, OVERRIDE_LAYER};
use super::yaml::parse_values;
use super::{DiscoverError, Scan};

/// How chart images are found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ChartImages {
    /// Render every chart; scan a chart's values too only where a template failed.
    #[default]
    Rendered,
    /// Render, and scan every chart's values as well: also the images of components that are
    /// disabled by default.
    All,
    /// Only the values scan (no rendering).
    Values,
}

/// What renders charts: the cluster's Kubernetes version, and the mode.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    pub chart_images: ChartImages,
    /// `.Capabilities.KubeVersion`, e.g. `v1.35.1` (the base bundle's, or the default).
    pub kube_version: String,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            chart_images: ChartImages::default(),
            kube_version: Options::default().kube_version,
        }
    }
}

/// The suffix of a rendered file's name in sources: its lines are lines of the rendered text.
pub const RENDERED: &str = " (rendered)";

/// A chart's rendering: what [`render_all`] gives [`Scan::render_chart`].
pub(super) type Rendering = Result<Rendered, ChartError>;

/// The files and options to render a top chart with (`None` in the values-only mode).
pub(super) fn job(top: &TopChart, render: &RenderOptions) -> Option<Result<(ChartFiles, Options), DiscoverError>> {
    if render.chart_images == ChartImages::Values {
        return None;
    }
    let mut files = ChartFiles::default();
    for rel in top.chart.files.keys() {
        match top.chart.read(rel) {
            Some(Ok(bytes)) => {
                files.files.insert(rel.clone(), bytes.into_owned());
            }
            Some(Err(e)) => return Some(Err(e)),
            None => {}
        }
    }
    let options = Options {
        release_name: top.meta.name.to_ascii_lowercase(),
        namespace: "default".into(),
        kube_version: render.kube_version.clone(),
        api_versions: Vec::new(),
        values_overrides: top.override_bytes.iter().cloned().collect(),
    };
    Some(Ok((files, options)))
}

/// Renders every job, on as many threads as there are cores (rendering is the costly part of
/// discovery, and charts are independent); results in the jobs' order.
pub(super) fn render_all(jobs: Vec<(ChartFiles, Options)>) -> Vec<Rendering> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(jobs.len().max(1));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Rendering>>> = Mutex::new((0..jobs.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((files, options)) = jobs.get(i) else { break };
                let r = helm_render::render(files, options);
                results.lock().expect("no panics while locked")[i] = Some(r);
            });
        }
    });
    results
        .into_inner()
        .expect("no panics while locked")
        .into_iter()
        .map(|r| r.unwrap_or(Err(ChartError::Panicked)))
        .collect()
}

impl Scan<'_> {
    /// Scans a prepared top chart: its rendering (if any), then its values where needed.
    pub(super) fn top_chart(&mut self, top: &TopChart, rendered: Option<Rendering>) {
        let overrides = match &top.override_bytes {
            Some(bytes) => {
                let file_rc: Rc<str> = Rc::from(top.override_file.as_str());
                match parse_values(bytes, &file_rc, OVERRIDE_LAYER) {
                    Ok(v) => v,
                    Err(e) => return self.errors.push(e),
                }
            }
            None => None,
        };
        if !self.render_chart(&top.chart, rendered) {
            return;
        }
        let ctx = ValuesCtx {
            app_version: None,
            global_registry: None,
            key_path: Vec::new(),
            override_file: top.override_file.clone(),
        };
        self.chart(&top.chart, &top.meta, overrides, 0, ctx);
    }

    /// Scans a chart's rendering (`None`: not rendered, values-only mode). Returns whether
    /// the values scan must run too.
    fn render_chart(&mut self, chart: &Chart, rendered: Option<Rendering>) -> bool {
        let mode = self.render.chart_images;
        let Some(rendered) = rendered else {
            return true;
        };
        let rendered = match rendered {
            Ok(r) => r,
            Err(e) => {
                self.warn(
                    &format!("{}Chart.yaml", chart.label),
                    1,
                    format!("the chart could not be rendered ({e}); its images are taken from its values instead"),
                );
                return true;
            }
        };
        for f in &rendered.files {
            let file = format!("{}{}{RENDERED}", chart.label, chart_relative(&f.path));
            if helm_render::split_manifests(&f.content).is_empty() {
                continue; // a template its values switch off
            }
            self.manifest(&file, separators(&f.content).as_bytes());
        }
        for failure in &rendered.failures {
            self.warn(
                &format!("{}{}", chart.label, chart_relative(&failure.path)),
                failure.line,
                format!(
                    "template not rendered: {}; the chart's images are also taken from its values (they may include disabled components)",
                    failure.reason
                ),
            );
        }
        mode == ChartImages::All || !rendered.failures.is_empty()
    }
}

/// The rendered text with every line that starts with `---` made a plain separator, as Helm
/// splits it: `{{- ... -}}` trimming often leaves `---# comment`, which YAML reads as a scalar.
/// Lines keep their numbers.
fn separators(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        if line.starts_with("---") && !line[3..].trim().is_empty() {
            out.push_str("---\n");
        } else {
            out.push_str(line);
        }
    }
    out
}

/// `mychart/templates/x.yaml` (Helm's template name) without the chart's own name.
fn chart_relative(path: &str) -> &str {
    path.split_once('/').map_or(path, |(_, rest)| rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separator_lines_with_text_become_plain_and_keep_line_numbers() {
        let text = "a: 1\n---# Permission\nb: 2\n--- \nc: 3\n---\n";
        assert_eq!(separators(text), "a: 1\n---\nb: 2\n--- \nc: 3\n---\n");
        assert_eq!(separators("x: 1"), "x: 1");
    }
}
