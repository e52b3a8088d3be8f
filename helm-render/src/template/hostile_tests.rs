//! Property-style robustness tests: random and mutated template texts go through the lexer,
//! parser and executor, which must return errors, never panic or run away.

use super::{parse, Executor, Limits, TemplateSet};
use crate::value::Value;
use crate::yaml;

/// Deterministic xorshift generator, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const SEEDS: &[&str] = &[
    r#"{{ define "a" }}{{ .x | default "d" | quote }}{{ end }}{{ include "a" . }}"#,
    r#"{{- range $i, $v := .list }}{{ if eq $i 1 }}{{ break }}{{ end }}{{ $v }}{{- end }}"#,
    r#"{{ with .m }}{{ .k }}{{ else }}none{{ end }}{{ $x := dict "a" 1 }}{{ $_ := set $x "b" 2 }}{{ toYaml $x }}"#,
    r#"{{ printf "%s/%s:%05d %v %q" .a .b 3 .list "x" }}{{ tpl "{{ .x }}" . }}"#,
    r#"{{ (index .list 0) }}{{ .m.k.z }}{{ semverCompare ">=1.2" "1.3.0" }}{{ until 5 | toJson }}"#,
    r#"{{/* c */}}{{ if and .x (not .y) }}{{ else if or .y .x }}{{ end }}{{ regexReplaceAll "a(.)" .x "$1" }}"#,
    r#"{{ define "r" }}{{ include "r" . }}{{ end }}{{ include "r" . }}"#,
    r#"{{ $d := dict }}{{ range until 50 }}{{ $d = dict "n" $d }}{{ end }}{{ toYaml $d | len }}"#,
];

const TOKENS: &[&str] = &[
    "{{", "}}", "{{-", "-}}", "(", ")", "|", "$", "$x", ":=", "=", ".", ".x", ".m.k", "\"", "`", "'", "/*", "*/",
    "end", "if", "else", "range", "with", "define", "template", "block", "break", "include", "tpl", "index", "printf",
    "%", "-1", "1e9", "0x", "nil", "true", ",", "\n", " ", "until", "repeat",
];

fn context() -> Value {
    yaml::load("x: hello\ny: false\nlist: [1, two, 3.5]\nm:\n  k: v\na: reg\nb: repo\n")
        .expect("constant YAML is valid")
}

fn run(text: &str) {
    let Ok(parsed) = parse(text) else {
        return;
    };
    let mut set = TemplateSet::new();
    set.add("t", parsed);
    let limits = Limits {
        max_depth: 50,
        max_output: 1 << 20,
        max_steps: 20_000,
        max_items: 10_000,
    };
    let mut ex = Executor::new(&set, limits);
    let _ = ex.execute("t", &context());
}

#[test]
fn seeds_run() {
    for s in SEEDS {
        run(s);
    }
}

#[test]
fn mutated_templates_never_panic() {
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    for _ in 0..4000 {
        let mut text = SEEDS[rng.below(SEEDS.len())].to_string();
        for _ in 0..1 + rng.below(6) {
            let mut pos = rng.below(text.len() + 1);
            while !text.is_char_boundary(pos) {
                pos -= 1;
            }
            match rng.below(4) {
                0 => text.insert_str(pos, TOKENS[rng.below(TOKENS.len())]),
                1 => {
                    let mut end = (pos + rng.below(8)).min(text.len());
                    while !text.is_char_boundary(end) {
                        end -= 1;
                    }
                    text.replace_range(pos..end, "");
                }
                2 => {
                    let other = SEEDS[rng.below(SEEDS.len())];
                    let cut = rng.below(other.len());
                    if other.is_char_boundary(cut) {
                        text.insert_str(pos, &other[cut..]);
                    }
                }
                _ => {
                    let b = (rng.next() % 128) as u8 as char;
                    text.insert(pos, b);
                }
            }
        }
        run(&text);
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(42);
    for _ in 0..2000 {
        let len = rng.below(80);
        let bytes: Vec<u8> = (0..len).map(|_| b"{}-|()$. \"`'/*a1\n"[rng.below(17)]).collect();
        run(&String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn runaway_templates_are_stopped() {
    let limits = Limits::default();
    for text in [
        r#"{{ define "r" }}{{ include "r" . }}{{ end }}{{ include "r" . }}"#,
        r#"{{ define "r" }}x{{ template "r" . }}{{ end }}{{ template "r" . }}"#,
        r#"{{ range until 100000000 }}x{{ end }}"#,
        r#"{{ range $i := until 100000 }}{{ range until 100000 }}{{ end }}{{ end }}"#,
        r#"{{ $s := "xxxxxxxxxxxxxxxx" }}{{ range until 30 }}{{ $s = print $s $s }}{{ end }}{{ $s }}"#,
        r#"{{ repeat 100000000 "abcdefgh" }}"#,
    ] {
        let parsed = parse(text).expect("test template parses");
        let mut set = TemplateSet::new();
        set.add("t", parsed);
        let mut ex = Executor::new(&set, limits);
        assert!(ex.execute("t", &Value::Null).is_err(), "{text} should be stopped");
    }
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    let deep_parens = format!("{{{{ {}1{} }}}}", "(".repeat(5000), ")".repeat(5000));
    assert!(parse(&deep_parens).is_err());
    let deep_ifs = format!("{}{}", "{{ if 1 }}".repeat(5000), "{{ end }}".repeat(5000));
    assert!(parse(&deep_ifs).is_err());
    let deep_yaml = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
    assert!(yaml::load(&deep_yaml).is_err());
}
