//! Semantic versions as Masterminds/semver v3 reads them (lenient: `v1.2`, `1`), and its
//! constraint language for `semverCompare`: `>=1.21-0`, `<1.25.0-0`, `^1.2`, `~1.2`, `1.x`,
//! `>= 1.19, < 1.22`, `1.2 - 1.4`, `a || b`.

use std::cmp::Ordering;

use super::{want, FnResult, FuncError};
use crate::value::{to_str, Map, Value};

/// A parsed version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    pub pre: String,
    pub meta: String,
}

/// Parses a version leniently (optional `v`, missing minor/patch are 0).
pub fn parse_version(s: &str) -> Option<Version> {
    let s = s.trim();
    let s = s.strip_prefix('v').or_else(|| s.strip_prefix('V')).unwrap_or(s);
    let (s, meta) = s.split_once('+').map_or((s, ""), |(a, b)| (a, b));
    let (core, pre) = s.split_once('-').map_or((s, ""), |(a, b)| (a, b));
    let parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty() || parts.len() > 3 {
        return None;
    }
    let num = |p: Option<&&str>| -> Option<u64> {
        match p {
            None => Some(0),
            Some(x) if !x.is_empty() && x.bytes().all(|c| c.is_ascii_digit()) => x.parse().ok(),
            _ => None,
        }
    };
    let valid_ident = |x: &str| {
        x.split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'))
    };
    if (!pre.is_empty() && !valid_ident(pre)) || (!meta.is_empty() && !valid_ident(meta)) {
        return None;
    }
    Some(Version {
        major: num(parts.first())?,
        minor: num(parts.get(1))?,
        patch: num(parts.get(2))?,
        pre: pre.to_string(),
        meta: meta.to_string(),
    })
}

fn cmp_pre(a: &str, b: &str) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        _ => {}
    }
    let mut ia = a.split('.');
    let mut ib = b.split('.');
    loop {
        match (ia.next(), ib.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let o = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(n), Ok(m)) => n.cmp(&m),
                    (Ok(_), Err(_)) => Ordering::Less,
                    (Err(_), Ok(_)) => Ordering::Greater,
                    _ => x.cmp(y),
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

impl Version {
    fn cmp(&self, o: &Version) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(o.major, o.minor, o.patch))
            .then_with(|| cmp_pre(&self.pre, &o.pre))
    }
}

/// One comparison of a constraint, with which parts were wildcards or missing.
struct Constraint {
    op: String,
    v: Version,
    /// Number of given numeric parts (1-3); wildcards end the count.
    given: usize,
    has_pre: bool,
}

fn parse_constraint(s: &str) -> Result<Constraint, FuncError> {
    let s = s.trim();
    let op_len = s
        .bytes()
        .take_while(|c| matches!(c, b'<' | b'>' | b'=' | b'!' | b'~' | b'^'))
        .count();
    let (op, rest) = s.split_at(op_len);
    let rest = rest.trim();
    let rest = rest.strip_prefix('v').unwrap_or(rest);
    let (core, tail) = match rest.find(['-', '+']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let mut given = 0;
    let mut nums = [0u64; 3];
    for (i, p) in core.split('.').enumerate() {
        if i >= 3 {
            return Err(format!("improper constraint: {s}").into());
        }
        if matches!(p, "x" | "X" | "*") || p.is_empty() && i == 0 {
            break;
        }
        nums[i] = p.parse().map_err(|_| format!("improper constraint: {s}"))?;
        given = i + 1;
    }
    let pre = tail
        .strip_prefix('-')
        .map(|t| t.split('+').next().unwrap_or(""))
        .unwrap_or("");
    let op = match op {
        "=>" => ">=",
        "=<" => "<=",
        "~>" => "~",
        "==" => "=",
        o => o,
    }
    .to_string();
    Ok(Constraint {
        op,
        v: Version {
            major: nums[0],
            minor: nums[1],
            patch: nums[2],
            pre: pre.to_string(),
            meta: String::new(),
        },
        given,
        has_pre: !pre.is_empty(),
    })
}

fn bump(v: &Version, part: usize) -> Version {
    match part {
        0 => Version {
            major: v.major + 1,
            minor: 0,
            patch: 0,
            pre: String::new(),
            meta: String::new(),
        },
        1 => Version {
            major: v.major,
            minor: v.minor + 1,
            patch: 0,
            pre: String::new(),
            meta: String::new(),
        },
        _ => Version {
            major: v.major,
            minor: v.minor,
            patch: v.patch + 1,
            pre: String::new(),
            meta: String::new(),
        },
    }
}

fn check(c: &Constraint, v: &Version) -> bool {
    // A prerelease version only satisfies constraints that name a prerelease themselves.
    if !v.pre.is_empty() && !c.has_pre {
        return false;
    }
    let lower = &c.v;
    let in_wild = |v: &Version| {
        if c.given == 0 {
            return true;
        }
        let upper = bump(lower, c.given - 1);
        v.cmp(lower) != Ordering::Less && v.cmp(&upper) == Ordering::Less
    };
    match c.op.as_str() {
        "" | "=" => {
            if c.given < 3 {
                in_wild(v)
            } else {
                v.cmp(lower) == Ordering::Equal
            }
        }
        "!=" => {
            if c.given < 3 {
                !in_wild(v)
            } else {
                v.cmp(lower) != Ordering::Equal
            }
        }
        ">" => {
            if c.given == 0 {
                false
            } else if c.given < 3 {
                v.cmp(&bump(lower, c.given - 1)) != Ordering::Less
            } else {
                v.cmp(lower) == Ordering::Greater
            }
        }
        ">=" => v.cmp(lower) != Ordering::Less,
        "<" => v.cmp(lower) == Ordering::Less,
        "<=" => {
            if c.given == 0 {
                true
            } else if c.given < 3 {
                v.cmp(&bump(lower, c.given - 1)) == Ordering::Less
            } else {
                v.cmp(lower) != Ordering::Greater
            }
        }
        "~" => {
            let upper = if c.given <= 1 { bump(lower, 0) } else { bump(lower, 1) };
            v.cmp(lower) != Ordering::Less && v.cmp(&upper) == Ordering::Less
        }
        "^" => {
            let upper = if lower.major > 0 || c.given <= 1 {
                bump(lower, 0)
            } else if lower.minor > 0 || c.given == 2 {
                bump(lower, 1)
            } else {
                bump(lower, 2)
            };
            v.cmp(lower) != Ordering::Less && v.cmp(&upper) == Ordering::Less
        }
        _ => false,
    }
}

/// `semverCompare`: whether `version` satisfies `constraint`.
pub fn satisfies(constraint: &str, version: &str) -> Result<bool, FuncError> {
    let v = parse_version(version).ok_or("Invalid Semantic Version")?;
    for group in constraint.split("||") {
        let group = group.trim();
        let mut ok = true;
        let mut cons = Vec::new();
        // Hyphen ranges "a - b".
        if let Some((a, b)) = group.split_once(" - ") {
            cons.push(parse_constraint(&format!(">={}", a.trim()))?);
            cons.push(parse_constraint(&format!("<={}", b.trim()))?);
        } else {
            // Split at commas and at spaces that separate comparisons (not after an operator).
            let normalized = group.replace(',', " ");
            let mut pending = String::new();
            for tok in normalized.split_whitespace() {
                pending.push_str(tok);
                if tok
                    .bytes()
                    .all(|c| matches!(c, b'<' | b'>' | b'=' | b'!' | b'~' | b'^'))
                {
                    continue;
                }
                cons.push(parse_constraint(&pending)?);
                pending.clear();
            }
            if !pending.is_empty() {
                return Err(format!("improper constraint: {group}").into());
            }
        }
        if cons.is_empty() {
            return Err(format!("improper constraint: {constraint}").into());
        }
        for c in &cons {
            if !check(c, &v) {
                ok = false;
                break;
            }
        }
        if ok {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Dispatches `semver` and `semverCompare`; `None` for other names.
pub fn call(name: &str, a: &[Value]) -> Option<FnResult> {
    let r = match name {
        "semverCompare" => want(name, a, 2).and_then(|_| satisfies(&to_str(&a[0]), &to_str(&a[1])).map(Value::Bool)),
        "semver" => want(name, a, 1).and_then(|_| {
            let s = to_str(&a[0]);
            let v = parse_version(&s).ok_or("Invalid Semantic Version")?;
            let mut m = Map::new();
            m.insert("Major".into(), Value::Int(v.major as i64));
            m.insert("Minor".into(), Value::Int(v.minor as i64));
            m.insert("Patch".into(), Value::Int(v.patch as i64));
            m.insert("Prerelease".into(), Value::String(v.pre));
            m.insert("Metadata".into(), Value::String(v.meta));
            m.insert("Original".into(), Value::String(s));
            Ok(Value::Map(m))
        }),
        _ => return None,
    };
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraints() {
        let t = |c: &str, v: &str| satisfies(c, v).unwrap();
        assert!(t(">=1.21-0", "v1.35.1"));
        assert!(t(">=1.21-0", "v1.21.0-gke.1"));
        assert!(!t("<1.25.0-0", "v1.35.1"));
        assert!(t("^1.2", "1.9.0"));
        assert!(!t("^1.2", "2.0.0"));
        assert!(t("~1.2", "1.2.9"));
        assert!(!t("~1.2", "1.3.0"));
        assert!(t("1.x", "1.4.0"));
        assert!(t(">= 1.19, < 1.22", "1.21.3"));
        assert!(!t(">= 1.19, < 1.22", "1.22.0"));
        assert!(t("<1.19 || >=1.30", "1.35.1"));
        assert!(!t(">=1.16", "1.20.0-rc.1"));
        assert!(t("1.2 - 1.4", "1.3.0"));
        assert!(t(">= 1.23.0-0", "v1.35.1"));
        assert!(t("=1.2.3", "1.2.3"));
        assert!(t(">1.2", "1.3.0") && !t(">1.2", "1.2.5"));
        assert!(satisfies(">=1.0", "garbage").is_err());
    }

    #[test]
    fn semver_object() {
        let v = call("semver", &[Value::str("v1.35.1")]).unwrap().unwrap();
        assert_eq!(v.path("Minor"), Some(&Value::Int(35)));
    }
}
