//! Renders Helm charts in process, the way `helm template` does, so that the images a chart
//! deploys can be read from its rendered manifests with the exact names Helm would write.
//!
//! ```no_run
//! use helm_render::{render, ChartFiles, Options};
//! let chart = ChartFiles::from_dir(std::path::Path::new("charts/metrics-server")).unwrap();
//! let out = render(&chart, &Options::default()).unwrap();
//! for f in &out.files {
//!     println!("# {}\n{}", f.path, f.content);
//! }
//! for f in &out.failures {
//!     eprintln!("{}:{}: {}", f.path, f.line, f.reason);
//! }
//! ```
//!
//! # What it implements
//! - Chart loading ([`chart`]): Chart.yaml (v1 and v2, requirements.yaml for v1), values.yaml,
//!   templates/, `.Files`, subcharts in charts/<dir>/ and charts/*.tgz, aliases,
//!   `condition`/`tags`, library charts (their templates only define).
//! - Values ([`values`]): overrides deep-merged in order, coalesced over values.yaml (null
//!   deletes), parent values scoped to subcharts, `global` copied down; every YAML number is
//!   a float64 as after Helm's YAML-to-JSON step ([`yaml`]), so 8080 prints "8080" and
//!   1000000 prints "1e+06".
//! - Go text/template ([`template`]): the whole language as Helm uses it, with one template
//!   namespace shared by the chart and its subcharts (parent definitions win, as Helm parses
//!   deepest paths first).
//! - Helm's and Sprig's functions ([`funcs`]): `include`, `tpl`, `toYaml`, `required`,
//!   `lookup` (always an empty map), ~170 Sprig functions. Random strings, UUIDs,
//!   certificates and password hashes are deterministic placeholders of the right shape.
//!
//! A template that fails (unknown function, `required`, `fail`, nil field access) is
//! reported in [`Rendered::failures`] with its line; the other templates still render.
//! Hostile input is bounded: template call depth 100, output 16 MiB per file, loop
//! iterations, YAML alias expansion, chart file sizes (10 MiB each, 100 MiB in all).
//!
//! # Where it differs from Helm
//! - Not implemented: `import-values`/`exports` between charts, `.helmignore`,
//!   values.schema.json validation, the methods of `.Values` (`AsMap`, `YAML`, `Table`),
//!   real `lookup`/DNS/time zones (`lookup` is an empty map, dates are UTC, `toDate` is the
//!   epoch).
//! - More lenient than Go: functions convert their arguments (a missing value passed where
//!   Go wants a string renders as "" instead of failing "wrong type for value"); `eq`/`lt`
//!   compare an int with a float as numbers; unknown functions and undefined variables fail
//!   when executed, not when the file is parsed.
//! - Maps are values, not Go's shared references: `set`/`unset`/`merge` change the variable
//!   or field they were given, and a template run by `template`/`include`/`tpl` that changes
//!   its data hands the change back to the caller's argument (vault's `set . "x"` helpers);
//!   a change made through another path to the same map (a `with` element, a map inside a
//!   `dict`) is not seen elsewhere.
//! - Helm fails the whole chart on any error; here each file fails on its own.
//!
//! # Why not an existing crate
//! `gtmpl` 0.7 (the only Go-template crate of note) passes functions only their argument
//! values, so `include` and `tpl` cannot reach the template set; it has no `break`/
//! `continue`, no method calls on objects (`.Files.Get`, `.Capabilities.APIVersions.Has`)
//! and no Sprig. Those are what charts lean on, hence this implementation.

pub mod chart;
pub mod files;
pub mod funcs;
mod render;
pub mod template;
pub mod value;
pub mod values;
pub mod yaml;

pub use chart::{ChartError, ChartFiles};
pub use files::Files;
pub use render::{
    render, split_manifests, Options, Rendered, RenderedFile, TemplateFailure, DEFAULT_API_VERSIONS, HELM_VERSION,
};
pub use value::{Map, Value};
pub use yaml::{load as load_yaml, load_all as load_yaml_all, to_yaml, YamlError};
