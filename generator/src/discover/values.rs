//! Chart values: images written as scalars or composed from `{registry, repository, tag, digest}`
//! mappings, with Helm's defaults and number rendering.

use std::collections::BTreeSet;

use super::chart::ValuesCtx;
use super::yaml::{Node, Value};
use super::{Certainty, Scan};

impl Scan<'_> {
    pub(super) fn walk_values(
        &mut self,
        node: &Node,
        path: &mut Vec<String>,
        skip_top: &BTreeSet<String>,
        ctx: &ValuesCtx,
    ) {
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

    pub(super) fn values_scalar(
        &mut self,
        v: &Node,
        text: &str,
        certainty: Certainty,
        path: &[String],
        ctx: &ValuesCtx,
    ) {
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
    pub(super) fn image_mapping_in(
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
}

/// Keys whose scalar is probably an image: `sidecarImage`, `kubectl_image`, `init-image`.
pub(super) fn is_imageish(key: &str) -> bool {
    key.len() > "image".len() && (key.ends_with("Image") || key.ends_with("_image") || key.ends_with("-image"))
}

pub(super) fn values_hint(path: &[String], ctx: &ValuesCtx) -> String {
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
pub(super) fn helm_number(text: &str) -> Option<String> {
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
pub(super) fn is_yaml11_float(s: &str) -> bool {
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
pub(super) fn go_format_float(v: f64) -> String {
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').expect("`{:e}` always writes an exponent");
    let exp: i32 = exp.parse().expect("`{:e}` writes an integer exponent");
    if v != 0.0 && !(-4..6).contains(&exp) {
        format!("{mantissa}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
