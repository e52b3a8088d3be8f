//! Tests of the executor against Go text/template semantics, and of the functions that need
//! an executor (`include`, `tpl`) or whose edge cases Helm charts depend on.

use super::{parse, Executor, Limits, TemplateSet};
use crate::value::Value;
use crate::yaml;

fn ctx() -> Value {
    yaml::load(
        "Values:\n  name: web\n  port: 8080\n  ratio: 0.5\n  empty: ''\n  enabled: true\n  list: [a, b, c]\n  m: {z: 1, a: 2}\n  image: {registry: r.io, repository: app, tag: ''}\nChart:\n  AppVersion: 1.2.3\n  Name: demo\n",
    )
    .expect("constant YAML is valid")
}

fn render_with(defs: &str, text: &str) -> Result<String, String> {
    let mut set = TemplateSet::new();
    set.add("defs", parse(defs).map_err(|e| e.to_string())?);
    set.add("t", parse(text).map_err(|e| e.to_string())?);
    let mut ex = Executor::new(&set, Limits::default());
    ex.execute("t", &ctx()).map_err(|e| e.to_string())
}

fn r(text: &str) -> String {
    match render_with("", text) {
        Ok(s) => s,
        Err(e) => panic!("{text}: {e}"),
    }
}

fn fails(text: &str) -> String {
    render_with("", text).expect_err(text)
}

#[test]
fn fields_variables_and_root() {
    assert_eq!(
        r("{{ .Values.name }}:{{ .Values.port }}:{{ .Values.ratio }}"),
        "web:8080:0.5"
    );
    assert_eq!(
        r("{{ $x := .Values.name }}{{ $x }}{{ $x = \"new\" }}{{ $x }}"),
        "webnew"
    );
    assert_eq!(
        r("{{ with .Values.image }}{{ $.Chart.Name }}/{{ .repository }}{{ end }}"),
        "demo/app"
    );
    assert_eq!(r("{{ .Values.missing }}"), "<no value>");
    assert_eq!(r("{{ (.Values.missing).deeper }}"), "<no value>");
    assert!(fails("{{ .Values.missing.deeper }}").contains("nil pointer evaluating interface {}.deeper"));
    assert!(fails("{{ $nope }}").contains("undefined variable"));
}

#[test]
fn control_structures() {
    assert_eq!(
        r("{{ if .Values.empty }}a{{ else if .Values.enabled }}b{{ else }}c{{ end }}"),
        "b"
    );
    assert_eq!(
        r("{{ range $k, $v := .Values.m }}{{ $k }}={{ $v }};{{ end }}"),
        "a=2;z=1;"
    );
    assert_eq!(
        r("{{ range $i, $v := .Values.list }}{{ $i }}{{ $v }}{{ end }}"),
        "0a1b2c"
    );
    assert_eq!(
        r("{{ range .Values.list }}{{ if eq . \"b\" }}{{ continue }}{{ end }}{{ . }}{{ end }}"),
        "ac"
    );
    assert_eq!(
        r("{{ range .Values.list }}{{ if eq . \"b\" }}{{ break }}{{ end }}{{ . }}{{ end }}"),
        "a"
    );
    assert_eq!(r("{{ range .Values.nothing }}x{{ else }}empty{{ end }}"), "empty");
    assert_eq!(
        r("{{ with .Values.empty }}x{{ else with .Values.name }}{{ . }}{{ else }}z{{ end }}"),
        "web"
    );
    assert_eq!(r("{{ range 3 }}{{ . }}{{ end }}"), "012");
    // A variable declared inside a block is gone after it.
    assert!(fails("{{ if true }}{{ $y := 1 }}{{ end }}{{ $y }}").contains("undefined variable"));
}

#[test]
fn whitespace_and_comments() {
    assert_eq!(r("a  {{- /* gone */ -}}  b\n{{- \" c\" }}"), "ab c");
    assert_eq!(r("x:\n  {{- if true }}\n  y\n  {{- end }}\n"), "x:\n  y\n");
}

#[test]
fn and_or_not_and_comparisons() {
    assert_eq!(
        r("{{ and 1 0 2 }}|{{ and 1 2 }}|{{ or 0 \"\" \"x\" }}|{{ or 0 \"\" }}"),
        "0|2|x|"
    );
    // `and` stops before evaluating what would fail.
    assert_eq!(r("{{ and .Values.missing .Values.missing.deeper }}"), "<no value>");
    assert_eq!(
        r("{{ not .Values.empty }}|{{ eq .Values.port 8080 }}|{{ eq \"a\" \"b\" \"a\" }}"),
        "true|true|true"
    );
    assert_eq!(
        r("{{ lt 1 2.5 }}|{{ ge \"b\" \"a\" }}|{{ ne .Values.name \"x\" }}"),
        "true|true|true"
    );
    assert_eq!(r("{{ eq .Values.missing \"x\" }}|{{ eq nil nil }}"), "false|true");
    assert!(fails("{{ eq \"1\" true }}").contains("incompatible types"));
}

#[test]
fn pipelines_and_parentheses() {
    assert_eq!(r("{{ .Values.name | upper | printf \"%s-%s\" \"x\" }}"), "x-WEB");
    assert_eq!(
        r("{{ (printf \"%s:%s\" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion)) }}"),
        "app:1.2.3"
    );
    assert_eq!(r("{{ (dict \"a\" (dict \"b\" 5)).a.b }}"), "5");
    assert_eq!(
        r("{{ index .Values.m \"z\" }}{{ index .Values.list 2 }}{{ len .Values.list }}"),
        "1c3"
    );
    assert!(fails("{{ index .Values.list 9 }}").contains("index out of range"));
    assert!(fails("{{ nosuch 1 }}").contains("function \"nosuch\" not defined"));
}

#[test]
fn defines_include_template_tpl() {
    let defs = r#"{{ define "img" }}{{ .registry }}/{{ .repository }}:{{ .tag | default "latest" }}{{ end }}{{ define "root" }}{{ $.Chart.Name }}{{ end }}"#;
    let out = render_with(
        defs,
        r#"{{ include "img" .Values.image | quote }} {{ template "root" . }} {{ include "root" . | upper }}"#,
    );
    assert_eq!(out.unwrap(), "\"r.io/app:latest\" demo DEMO");
    let out = render_with(defs, r#"{{ tpl "{{ .Values.name }}-{{ include \"root\" . }}" . }}"#);
    assert_eq!(out.unwrap(), "web-demo");
    let out = render_with("", r#"{{ tpl "{{ define \"x\" }}X{{ end }}{{ template \"x\" }}" . }}"#);
    assert_eq!(out.unwrap(), "X");
    assert_eq!(
        r(r#"{{ block "b" . }}default {{ .Values.name }}{{ end }}"#),
        "default web"
    );
    let err = render_with("", r#"{{ include "missing" . }}"#).unwrap_err();
    assert!(err.contains("no such template"), "{err}");
    let err = render_with(
        r#"{{ define "f" }}{{ fail "boom" }}{{ end }}"#,
        "a\n{{ include \"f\" . }}",
    )
    .unwrap_err();
    assert!(err.starts_with("line 2:") && err.contains("fail: boom"), "{err}");
}

#[test]
fn set_and_merge_change_their_target() {
    assert_eq!(r("{{ $d := dict }}{{ $_ := set $d \"k\" 1 }}{{ $d.k }}"), "1");
    assert_eq!(r("{{ $_ := set .Values \"extra\" 2 }}{{ .Values.extra }}"), "2");
    assert_eq!(r("{{ $_ := merge .Values.image (dict \"tag\" \"t\" \"new\" \"n\") }}{{ .Values.image.tag }}{{ .Values.image.new }}"), "tn");
    assert_eq!(r("{{ $d := dict \"a\" 1 }}{{ $_ := unset $d \"a\" }}{{ len $d }}"), "0");
}

#[test]
fn sprig_edge_cases_charts_rely_on() {
    assert_eq!(
        r("{{ default \"d\" .Values.empty }}|{{ default \"d\" .Values.port }}|{{ default \"d\" false }}"),
        "d|8080|d"
    );
    assert_eq!(
        r("{{ empty .Values.m }}|{{ empty 0 }}|{{ coalesce .Values.empty .Values.missing \"c\" }}"),
        "false|true|c"
    );
    assert_eq!(
        r("{{ ternary \"y\" \"n\" .Values.enabled }}|{{ .Values.port | int | add 1 }}|{{ 10 | div 3 }}"),
        "y|8081|0"
    );
    assert_eq!(
        r("{{ toYaml .Values.image }}"),
        "registry: r.io\nrepository: app\ntag: \"\""
    );
    assert_eq!(
        r("{{ toJson .Values.m }}|{{ (fromJson \"{\\\"a\\\":[1]}\").a }}"),
        "{\"a\":2,\"z\":1}|[1]"
    );
    assert_eq!(
        r("{{ (fromYaml \"a: [1, 2]\").a | last }}|{{ (fromYaml \"[\").Error | empty }}"),
        "2|false"
    );
    assert_eq!(
        r("{{ kindOf .Values.m }} {{ typeOf .Values.port }} {{ kindIs \"slice\" .Values.list }}"),
        "map float64 true"
    );
    assert_eq!(
        r("{{ printf \"%d\" (int .Values.port) }} {{ printf \"%v\" 1000000.0 }} {{ printf \"%s\" .Values.port }}"),
        "8080 1e+06 %!s(float64=8080)"
    );
    assert_eq!(
        r("{{ list 1 2 | toJson }} {{ until 3 | join \",\" }} {{ sortAlpha (list \"b\" \"a\") }}"),
        "[1,2] 0,1,2 [a b]"
    );
    assert_eq!(
        r("{{ semverCompare \">=1.21-0\" \"v1.35.1\" }} {{ (semver \"1.2.3-rc.1\").Prerelease }}"),
        "true rc.1"
    );
    assert_eq!(
        r("{{ \"a-b_c\" | camelcase }} {{ b64enc \"x\" | b64dec }} {{ sha256sum \"\" | trunc 8 }}"),
        "ABC x e3b0c442"
    );
    assert_eq!(r("{{ randAlphaNum 12 | len }} {{ uuidv4 | len }} {{ (genCA \"x\" 365).Cert | contains \"BEGIN CERTIFICATE\" }}"), "12 36 true");
    assert_eq!(
        r("{{ lookup \"v1\" \"Secret\" \"ns\" \"name\" | len }} {{ env \"HOME\" }}|"),
        "0 |"
    );
    assert!(fails("{{ required \"need x\" .Values.missing }}").contains("required: need x"));
    assert!(fails("{{ fail \"nope\" }}").contains("fail: nope"));
}

#[test]
fn a_called_template_changing_its_data_is_seen_by_the_caller() {
    // As vault's chart does: helpers `set . "serverEnabled" ...` and callers test the key.
    let defs = r#"{{ define "flag" }}{{ $_ := set . "flagged" (eq .Values.name "web") }}{{ end }}{{ define "twice" }}{{ template "flag" . }}{{ $_ := set . "both" .flagged }}{{ end }}"#;
    let out = render_with(defs, r#"{{ template "flag" . }}{{ .flagged }} {{ $.flagged }}"#);
    assert_eq!(out.unwrap(), "true true");
    let out = render_with(defs, r#"{{ include "twice" . }}{{ .both }}"#);
    assert_eq!(out.unwrap(), "true");
    let out = render_with(
        defs,
        r#"{{ $ctx := dict "Values" .Values }}{{ include "flag" $ctx }}{{ $ctx.flagged }}|{{ .flagged }}"#,
    );
    assert_eq!(out.unwrap(), "true|<no value>");
}
