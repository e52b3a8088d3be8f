//! Chart templates: Go templates are not rendered here; literal `image:` lines are read as they are.

use super::{Certainty, Scan};

impl Scan<'_> {
    /// Scan a Go template line by line for `image: <literal>`.
    pub(super) fn template(&mut self, file: &str, text: &str) {
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
pub(super) fn template_literal(value: &str) -> Option<&str> {
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
