//! The engine of `helm template`: builds each chart's built-in objects (`.Values`,
//! `.Release`, `.Chart`, `.Capabilities`, `.Files`, `.Subcharts`, `.Template`), parses every
//! template of the chart tree into one shared set, and renders each template file on its own,
//! so that one failing file does not stop the others.

use std::sync::Arc;

use crate::chart::{load, Chart, ChartError, ChartFiles};
use crate::template::{parse, Executor, Limits, TemplateSet};
use crate::value::{to_str, Map, Value};
use crate::values::{coalesce, merge_overrides, process_dependencies};
use crate::yaml;

/// What to render with.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub release_name: String,
    pub namespace: String,
    /// e.g. "v1.35.1": `.Capabilities.KubeVersion.{Version,GitVersion,Major,Minor}`.
    pub kube_version: String,
    /// `.Capabilities.APIVersions` beyond [`DEFAULT_API_VERSIONS`].
    pub api_versions: Vec<String>,
    /// YAML documents merged over the chart's values.yaml, in order.
    pub values_overrides: Vec<Vec<u8>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            release_name: "release-name".into(),
            namespace: "default".into(),
            kube_version: "v1.35.1".into(),
            api_versions: Vec::new(),
            values_overrides: Vec::new(),
        }
    }
}

/// One rendered template.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedFile {
    /// Helm's `.Template.Name`: "mychart/templates/x.yaml", "mychart/charts/sub/templates/y.yaml".
    pub path: String,
    /// The rendered text (may hold several YAML documents).
    pub content: String,
}

/// A template that failed to parse or execute.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateFailure {
    pub path: String,
    /// 1-based line of the failing action in that template file.
    pub line: usize,
    pub reason: String,
}

/// The result of rendering a chart.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rendered {
    /// One per template that rendered, sorted by path.
    pub files: Vec<RenderedFile>,
    pub failures: Vec<TemplateFailure>,
    /// Subcharts disabled by condition or tags ("mychart/charts/sub").
    pub skipped_subcharts: Vec<String>,
}

/// Group/versions and group/version/kinds every cluster of a supported Kubernetes serves.
pub const DEFAULT_API_VERSIONS: &[&str] = &[
    "v1",
    "admissionregistration.k8s.io/v1",
    "apiextensions.k8s.io/v1",
    "apiregistration.k8s.io/v1",
    "apps/v1",
    "authentication.k8s.io/v1",
    "authorization.k8s.io/v1",
    "autoscaling/v1",
    "autoscaling/v2",
    "batch/v1",
    "certificates.k8s.io/v1",
    "coordination.k8s.io/v1",
    "discovery.k8s.io/v1",
    "events.k8s.io/v1",
    "flowcontrol.apiserver.k8s.io/v1",
    "networking.k8s.io/v1",
    "node.k8s.io/v1",
    "policy/v1",
    "rbac.authorization.k8s.io/v1",
    "resource.k8s.io/v1",
    "scheduling.k8s.io/v1",
    "storage.k8s.io/v1",
    "v1/ConfigMap",
    "v1/Endpoints",
    "v1/Namespace",
    "v1/Node",
    "v1/PersistentVolume",
    "v1/PersistentVolumeClaim",
    "v1/Pod",
    "v1/Secret",
    "v1/Service",
    "v1/ServiceAccount",
    "admissionregistration.k8s.io/v1/MutatingWebhookConfiguration",
    "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy",
    "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicyBinding",
    "admissionregistration.k8s.io/v1/ValidatingWebhookConfiguration",
    "apiextensions.k8s.io/v1/CustomResourceDefinition",
    "apiregistration.k8s.io/v1/APIService",
    "apps/v1/DaemonSet",
    "apps/v1/Deployment",
    "apps/v1/ReplicaSet",
    "apps/v1/StatefulSet",
    "autoscaling/v1/HorizontalPodAutoscaler",
    "autoscaling/v2/HorizontalPodAutoscaler",
    "batch/v1/CronJob",
    "batch/v1/Job",
    "certificates.k8s.io/v1/CertificateSigningRequest",
    "coordination.k8s.io/v1/Lease",
    "discovery.k8s.io/v1/EndpointSlice",
    "flowcontrol.apiserver.k8s.io/v1/FlowSchema",
    "flowcontrol.apiserver.k8s.io/v1/PriorityLevelConfiguration",
    "networking.k8s.io/v1/Ingress",
    "networking.k8s.io/v1/IngressClass",
    "networking.k8s.io/v1/NetworkPolicy",
    "node.k8s.io/v1/RuntimeClass",
    "policy/v1/PodDisruptionBudget",
    "rbac.authorization.k8s.io/v1/ClusterRole",
    "rbac.authorization.k8s.io/v1/ClusterRoleBinding",
    "rbac.authorization.k8s.io/v1/Role",
    "rbac.authorization.k8s.io/v1/RoleBinding",
    "scheduling.k8s.io/v1/PriorityClass",
    "storage.k8s.io/v1/CSIDriver",
    "storage.k8s.io/v1/CSINode",
    "storage.k8s.io/v1/StorageClass",
    "storage.k8s.io/v1/VolumeAttachment",
];

/// The Helm version templates see in `.Capabilities.HelmVersion`.
pub const HELM_VERSION: &str = "v3.16.0";

/// Renders a chart as `helm template` would. `Err` only when the chart itself cannot be
/// loaded (no or bad Chart.yaml, bad values.yaml or override, broken subchart archive).
pub fn render(chart_files: &ChartFiles, opts: &Options) -> Result<Rendered, ChartError> {
    // Templates, YAML and values are walked recursively; a hostile chart can nest deeply
    // within the limits, so the work runs on a thread with a large (lazily committed) stack.
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("helm-render".into())
            .stack_size(RENDER_STACK)
            .spawn_scoped(s, || render_on_this_thread(chart_files, opts))
            .map_err(|source| ChartError::Thread { source })?
            .join()
            .unwrap_or(Err(ChartError::Panicked))
    })
}

/// Stack of the rendering thread.
const RENDER_STACK: usize = 256 << 20;

fn render_on_this_thread(chart_files: &ChartFiles, opts: &Options) -> Result<Rendered, ChartError> {
    let mut chart = load(chart_files)?;
    let mut user = Map::new();
    for (i, doc) in opts.values_overrides.iter().enumerate() {
        let text = String::from_utf8_lossy(doc);
        match yaml::load(&text) {
            Ok(Value::Map(m)) => merge_overrides(&mut user, &m),
            Ok(Value::Null) => {}
            Ok(_) => {
                return Err(ChartError::BadYaml {
                    chart: chart.name.clone(),
                    file: format!("values override #{}", i + 1),
                    source: yaml::YamlError {
                        line: 1,
                        message: "not a map".into(),
                    },
                })
            }
            Err(source) => {
                return Err(ChartError::BadYaml {
                    chart: chart.name.clone(),
                    file: format!("values override #{}", i + 1),
                    source,
                })
            }
        }
    }
    let mut rendered = Rendered::default();
    process_dependencies(&mut chart, &user, &mut rendered.skipped_subcharts);
    let values = coalesce(&chart, user);

    let caps = capabilities(opts);
    let release = release(opts);
    let mut units = Vec::new();
    let root_ctx = context(&chart, Value::Map(values), &caps, &release);
    collect(&chart, &chart.name, &root_ctx, &mut units, 0);

    // Helm parses deepest paths first (and, at equal depth, in reverse order), so a parent's
    // definitions of a name replace a subchart's.
    units.sort_by(|a, b| {
        let da = a.name.matches('/').count();
        let db = b.name.matches('/').count();
        db.cmp(&da).then_with(|| b.name.cmp(&a.name))
    });
    let mut set = TemplateSet::new();
    // A file that does not parse fails on its own (Helm would refuse the whole chart); a
    // partial that does not parse is reported too, as the templates it defines are missing.
    let mut parse_failed = std::collections::BTreeSet::new();
    for u in &units {
        match parse(&u.text) {
            Ok(p) => set.add(&u.name, p),
            Err(e) => {
                parse_failed.insert(u.name.clone());
                rendered.failures.push(TemplateFailure {
                    path: u.name.clone(),
                    line: e.line,
                    reason: format!("parse error: {}", e.message),
                });
            }
        }
    }
    for u in &units {
        let base = u.name.rsplit('/').next().unwrap_or(&u.name);
        if u.library || base.starts_with('_') || base == "NOTES.txt" || parse_failed.contains(&u.name) {
            continue;
        }
        let mut ctx = (*u.ctx).clone();
        if let Value::Map(m) = &mut ctx {
            let mut t = Map::new();
            t.insert("Name".into(), Value::str(u.name.as_str()));
            t.insert("BasePath".into(), Value::String(u.base_path.clone()));
            m.insert("Template".into(), Value::Map(t));
        }
        let mut ex = Executor::new(&set, Limits::default());
        match ex.execute(&u.name, &ctx) {
            Ok(out) => rendered.files.push(RenderedFile {
                path: u.name.clone(),
                content: out.replace("<no value>", ""),
            }),
            Err(e) => rendered.failures.push(TemplateFailure {
                path: u.name.clone(),
                line: e.line,
                reason: e.message,
            }),
        }
    }
    rendered.files.sort_by(|a, b| a.path.cmp(&b.path));
    rendered.failures.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(rendered)
}

/// Splits rendered text into YAML documents as Helm's `releaseutil.SplitManifests` does:
/// at every `---` that starts a line (or the text), whatever follows it on that line, so
/// `---# comment` (what `{{- ... -}}` trimming often leaves) still separates documents.
/// Documents are trimmed; empty ones are dropped.
pub fn split_manifests(text: &str) -> Vec<String> {
    static SEP: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let sep = SEP.get_or_init(|| regex::Regex::new(r"(?:^|\s*\n)---\s*").expect("constant regex is valid"));
    sep.split(text.trim())
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_string)
        .collect()
}

/// One template file of the chart tree with the context it renders in.
struct Unit {
    name: String,
    base_path: String,
    text: String,
    ctx: Arc<Value>,
    library: bool,
}

fn collect(chart: &Chart, id: &str, ctx: &Value, out: &mut Vec<Unit>, depth: usize) {
    if depth > 32 {
        return;
    }
    let shared = Arc::new(ctx.clone());
    for (path, text) in &chart.templates {
        // Helm leaves a library chart's non-partial files out of the template set entirely.
        let base = path.rsplit('/').next().unwrap_or(path);
        if chart.is_library() && !base.starts_with('_') {
            continue;
        }
        out.push(Unit {
            name: format!("{id}/{path}"),
            base_path: format!("{id}/templates"),
            text: text.clone(),
            ctx: shared.clone(),
            library: chart.is_library(),
        });
    }
    for sub in &chart.subcharts {
        let sub_ctx = ctx
            .path(&format!("Subcharts.{}", sub.name))
            .cloned()
            .unwrap_or(Value::Null);
        collect(sub, &format!("{id}/charts/{}", sub.name), &sub_ctx, out, depth + 1);
    }
}

/// The top-level object a chart's templates see.
fn context(chart: &Chart, values: Value, caps: &Value, release: &Value) -> Value {
    let mut subcharts = Map::new();
    for sub in &chart.subcharts {
        let sv = values
            .as_map()
            .and_then(|m| m.get(&sub.name))
            .cloned()
            .unwrap_or_else(|| Value::Map(Map::new()));
        subcharts.insert(sub.name.clone(), context(sub, sv, caps, release));
    }
    let mut m = Map::new();
    m.insert("Values".into(), values);
    m.insert("Chart".into(), chart_object(chart));
    m.insert("Release".into(), release.clone());
    m.insert("Capabilities".into(), caps.clone());
    m.insert("Files".into(), Value::Files(Arc::new(chart.files.clone())));
    m.insert("Subcharts".into(), Value::Map(subcharts));
    Value::Map(m)
}

/// `.Chart`: Chart.yaml's fields under Go's names; missing strings are "".
fn chart_object(chart: &Chart) -> Value {
    const FIELDS: &[(&str, &str)] = &[
        ("name", "Name"),
        ("home", "Home"),
        ("version", "Version"),
        ("description", "Description"),
        ("icon", "Icon"),
        ("apiVersion", "APIVersion"),
        ("condition", "Condition"),
        ("tags", "Tags"),
        ("appVersion", "AppVersion"),
        ("kubeVersion", "KubeVersion"),
        ("type", "Type"),
    ];
    let mut m = Map::new();
    for (yaml_key, go_key) in FIELDS {
        let v = chart.metadata.get(*yaml_key).map(to_str).unwrap_or_default();
        m.insert((*go_key).into(), Value::String(v));
    }
    m.insert("Name".into(), Value::String(chart.name.clone()));
    for (yaml_key, go_key) in [
        ("keywords", "Keywords"),
        ("sources", "Sources"),
        ("annotations", "Annotations"),
    ] {
        m.insert(
            go_key.into(),
            chart.metadata.get(yaml_key).cloned().unwrap_or(Value::Null),
        );
    }
    const DEP_FIELDS: &[(&str, &str)] = &[
        ("name", "Name"),
        ("version", "Version"),
        ("repository", "Repository"),
        ("condition", "Condition"),
        ("tags", "Tags"),
        ("enabled", "Enabled"),
        ("import-values", "ImportValues"),
        ("alias", "Alias"),
    ];
    const MAINTAINER_FIELDS: &[(&str, &str)] = &[("name", "Name"), ("email", "Email"), ("url", "URL")];
    m.insert(
        "Dependencies".into(),
        go_named_list(chart.metadata.get("dependencies"), DEP_FIELDS),
    );
    m.insert(
        "Maintainers".into(),
        go_named_list(chart.metadata.get("maintainers"), MAINTAINER_FIELDS),
    );
    m.insert(
        "Deprecated".into(),
        Value::Bool(chart.metadata.get("deprecated").is_some_and(Value::truthy)),
    );
    Value::Map(m)
}

/// A list of Chart.yaml maps as Go structs show them: the listed fields under Go's names.
fn go_named_list(v: Option<&Value>, fields: &[(&str, &str)]) -> Value {
    let Some(Value::List(items)) = v else {
        return Value::Null;
    };
    let list = items
        .iter()
        .map(|item| {
            let mut m = Map::new();
            for (yaml_key, go_key) in fields {
                let x = item.as_map().and_then(|im| im.get(*yaml_key)).cloned();
                m.insert((*go_key).into(), x.unwrap_or_else(|| Value::str("")));
            }
            Value::Map(m)
        })
        .collect();
    Value::List(list)
}

fn release(opts: &Options) -> Value {
    let mut m = Map::new();
    m.insert("Name".into(), Value::str(opts.release_name.as_str()));
    m.insert("Namespace".into(), Value::str(opts.namespace.as_str()));
    m.insert("IsInstall".into(), Value::Bool(true));
    m.insert("IsUpgrade".into(), Value::Bool(false));
    m.insert("Revision".into(), Value::Int(1));
    m.insert("Service".into(), Value::str("Helm"));
    Value::Map(m)
}

fn capabilities(opts: &Options) -> Value {
    let v = opts.kube_version.trim();
    let git = if v.starts_with('v') {
        v.to_string()
    } else {
        format!("v{v}")
    };
    let mut parts = git.trim_start_matches('v').split(['.', '-', '+']);
    let major = parts.next().unwrap_or("1").to_string();
    let minor = parts.next().unwrap_or("0").to_string();
    let mut kv = Map::new();
    kv.insert("Version".into(), Value::String(git.clone()));
    kv.insert("GitVersion".into(), Value::String(git));
    kv.insert("Major".into(), Value::String(major));
    kv.insert("Minor".into(), Value::String(minor));
    let mut hv = Map::new();
    hv.insert("Version".into(), Value::str(HELM_VERSION));
    hv.insert("GitCommit".into(), Value::str(""));
    hv.insert("GitTreeState".into(), Value::str("clean"));
    hv.insert("GoVersion".into(), Value::str("go1.22"));
    let mut apis: Vec<String> = DEFAULT_API_VERSIONS.iter().map(|s| s.to_string()).collect();
    apis.extend(opts.api_versions.iter().cloned());
    let mut m = Map::new();
    m.insert("KubeVersion".into(), Value::Map(kv));
    m.insert("APIVersions".into(), Value::ApiVersions(Arc::new(apis)));
    m.insert("HelmVersion".into(), Value::Map(hv));
    Value::Map(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_helm() {
        assert_eq!(
            split_manifests("a: 1\n---# c\nb: 2\n---\n\n---\nc: 3\n"),
            vec!["a: 1", "# c\nb: 2", "---\nc: 3"]
        );
        assert_eq!(split_manifests("---\na: 1"), vec!["a: 1"]);
    }

    fn chart(files: &[(&str, &str)]) -> ChartFiles {
        ChartFiles::from_pairs(files)
    }

    #[test]
    fn renders_objects_and_records_failures() {
        let c = chart(&[
            ("Chart.yaml", "apiVersion: v2\nname: app\nversion: 1.0.0\nappVersion: \"2.0\"\n"),
            ("values.yaml", "port: 8080\nbig: 1000000\n"),
            ("templates/_helpers.tpl", "{{ define \"app.name\" }}{{ .Chart.Name }}-{{ .Release.Name }}{{ end }}"),
            (
                "templates/ok.yaml",
                "name: {{ include \"app.name\" . }}\nport: {{ .Values.port }}\nbig: {{ .Values.big }}\nv: {{ .Chart.AppVersion }}\nkube: {{ .Capabilities.KubeVersion.Minor }}\nt: {{ .Template.Name }}\nmissing: {{ .Values.nope }}\nhas: {{ .Capabilities.APIVersions.Has \"apps/v1/Deployment\" }}\n",
            ),
            ("templates/bad.yaml", "a\n\n{{ nosuchfunc 1 }}"),
            ("templates/req.yaml", "{{ required \"x is required\" .Values.x }}"),
            ("templates/NOTES.txt", "{{ fail \"notes\" }}"),
        ]);
        let r = render(&c, &Options::default()).unwrap();
        assert_eq!(r.files.len(), 1, "{r:?}");
        assert_eq!(
            r.files[0].content,
            "name: app-release-name\nport: 8080\nbig: 1e+06\nv: 2.0\nkube: 35\nt: app/templates/ok.yaml\nmissing: \nhas: true\n"
        );
        assert_eq!(r.failures.len(), 2);
        assert_eq!(
            (r.failures[0].path.as_str(), r.failures[0].line),
            ("app/templates/bad.yaml", 3)
        );
        assert!(
            r.failures[0].reason.contains("function \"nosuchfunc\" not defined"),
            "{}",
            r.failures[0].reason
        );
        assert!(r.failures[1].reason.contains("required: x is required"));
    }

    #[test]
    fn a_partial_that_does_not_parse_is_reported() {
        let c = chart(&[
            ("Chart.yaml", "apiVersion: v2\nname: app\nversion: 1.0.0\n"),
            ("templates/_h.tpl", "{{ define \"x\" }}\n{{ if }}{{ end }}"),
            ("templates/a.yaml", "{{ include \"x\" . }}"),
            ("templates/b.yaml", "b: {{ 0x1p4 }}"),
        ]);
        let r = render(&c, &Options::default()).unwrap();
        assert_eq!(r.files.len(), 1);
        assert_eq!(r.files[0].content, "b: 16");
        let paths: Vec<(&str, usize)> = r.failures.iter().map(|f| (f.path.as_str(), f.line)).collect();
        assert_eq!(paths, vec![("app/templates/_h.tpl", 2), ("app/templates/a.yaml", 1)]);
        assert!(
            r.failures[0].reason.starts_with("parse error:"),
            "{}",
            r.failures[0].reason
        );
    }

    #[test]
    fn chart_object_uses_go_field_names() {
        let c = chart(&[
            (
                "Chart.yaml",
                "apiVersion: v2\nname: app\nversion: 1.0.0\nmaintainers:\n- name: me\ndependencies:\n- name: db\n  version: 1.x\n",
            ),
            ("templates/a.yaml", "{{ (index .Chart.Maintainers 0).Name }} {{ (first .Chart.Dependencies).Version }} {{ .Chart.Type }}|{{ .Chart.APIVersion }}"),
        ]);
        let r = render(&c, &Options::default()).unwrap();
        assert_eq!(r.files[0].content, "me 1.x |v2");
    }

    #[test]
    fn library_subchart_defines_are_shared_and_parent_wins() {
        let c = chart(&[
            ("Chart.yaml", "apiVersion: v2\nname: app\nversion: 1.0.0\n"),
            ("templates/_h.tpl", "{{ define \"dup\" }}parent{{ end }}"),
            (
                "templates/a.yaml",
                "{{ include \"common.x\" . }} {{ include \"dup\" . }}",
            ),
            (
                "charts/common/Chart.yaml",
                "apiVersion: v2\nname: common\nversion: 1.0.0\ntype: library\n",
            ),
            (
                "charts/common/templates/_x.tpl",
                "{{ define \"common.x\" }}lib-{{ .Chart.Name }}{{ end }}{{ define \"dup\" }}child{{ end }}",
            ),
            ("charts/common/templates/cm.yaml", "should not render"),
        ]);
        let r = render(&c, &Options::default()).unwrap();
        assert_eq!(r.files.len(), 1);
        assert_eq!(r.files[0].content, "lib-app parent");
    }
}
