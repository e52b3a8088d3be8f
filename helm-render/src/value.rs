//! The dynamic value that templates see (Go's `interface{}` as Helm fills it), with Go's
//! truthiness, `%v` printing and the number conversions Sprig applies to its arguments.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use crate::files::Files;

/// A map of values, keys in Go's sorted order (as `range` and `toYaml` visit them).
///
/// It behaves as an owned `BTreeMap` (it derefs to one), but its entries are shared between
/// clones until one of them is changed (copy on write): templates pass `.`, `$` and
/// `.Values` around constantly, and each pass would otherwise copy the whole tree.
#[derive(Clone, Default, PartialEq)]
pub struct Map(Arc<BTreeMap<String, Value>>);

impl Map {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }
}

impl std::fmt::Debug for Map {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::ops::Deref for Map {
    type Target = BTreeMap<String, Value>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Map {
    /// Copies the entries first when another clone shares them.
    fn deref_mut(&mut self) -> &mut Self::Target {
        Arc::make_mut(&mut self.0)
    }
}

impl From<BTreeMap<String, Value>> for Map {
    fn from(m: BTreeMap<String, Value>) -> Self {
        Map(Arc::new(m))
    }
}

impl FromIterator<(String, Value)> for Map {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Self {
        Map(Arc::new(iter.into_iter().collect()))
    }
}

impl Extend<(String, Value)> for Map {
    fn extend<I: IntoIterator<Item = (String, Value)>>(&mut self, iter: I) {
        Arc::make_mut(&mut self.0).extend(iter);
    }
}

impl IntoIterator for Map {
    type Item = (String, Value);
    type IntoIter = std::collections::btree_map::IntoIter<String, Value>;
    /// Moves the entries out when this is the only clone, copies them otherwise.
    fn into_iter(self) -> Self::IntoIter {
        Arc::try_unwrap(self.0).unwrap_or_else(|m| (*m).clone()).into_iter()
    }
}

impl<'a> IntoIterator for &'a Map {
    type Item = (&'a String, &'a Value);
    type IntoIter = std::collections::btree_map::Iter<'a, String, Value>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// One value as a template sees it.
///
/// YAML and JSON numbers load as [`Value::Float`] (Helm reads values through
/// `sigs.k8s.io/yaml`, which makes every number a `float64`); functions such as `len`, `add`
/// and `int` return [`Value::Int`].
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    /// Go's `nil`: a missing key or a YAML `null`.
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    List(Vec<Value>),
    Map(Map),
    /// Helm's `.Files` object (methods `Get`, `GetBytes`, `Glob`, `Lines`, `AsConfig`, `AsSecrets`).
    Files(Arc<Files>),
    /// Helm's `.Capabilities.APIVersions` (method `Has`).
    ApiVersions(Arc<Vec<String>>),
}

impl Value {
    /// Shorthand for a string value.
    pub fn str(s: impl Into<String>) -> Value {
        Value::String(s.into())
    }

    /// Go's truth of a value in `if`, `with`, `and`, `or`, `not`.
    pub fn truthy(&self) -> bool {
        match self {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::String(s) => !s.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.is_empty(),
            Value::Files(f) => !f.is_empty(),
            Value::ApiVersions(_) => true,
        }
    }

    /// The map inside, if this is a map.
    pub fn as_map(&self) -> Option<&Map> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The string inside, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// Follows a dotted path of map keys ("a.b.c").
    pub fn path(&self, path: &str) -> Option<&Value> {
        let mut cur = self;
        for part in path.split('.').filter(|p| !p.is_empty()) {
            cur = cur.as_map()?.get(part)?;
        }
        Some(cur)
    }

    /// Go's reflect kind name, as Sprig's `kindOf` prints it.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "invalid",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::String(_) => "string",
            Value::List(_) => "slice",
            Value::Map(_) => "map",
            Value::Files(_) => "map",
            Value::ApiVersions(_) => "slice",
        }
    }

    /// Go's `%T` of the value, as Sprig's `typeOf` prints it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::String(_) => "string",
            Value::List(_) => "[]interface {}",
            Value::Map(_) => "map[string]interface {}",
            Value::Files(_) => "engine.files",
            Value::ApiVersions(_) => "chartutil.VersionSet",
        }
    }

    /// Sprig's `empty`: nil, false, 0, "", and empty lists and maps.
    pub fn is_empty(&self) -> bool {
        !self.truthy()
    }

    /// Go's `%v` formatting (what `{{ . }}` prints, except that nil prints as `<nil>` here).
    pub fn to_go_string(&self) -> String {
        let mut out = String::new();
        self.write_go(&mut out, true);
        out
    }

    fn write_go(&self, out: &mut String, top: bool) {
        match self {
            Value::Null => out.push_str("<nil>"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Float(f) => out.push_str(&format_float_g(*f)),
            Value::String(s) => out.push_str(s),
            Value::List(l) => {
                out.push('[');
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    v.write_go(out, false);
                }
                out.push(']');
            }
            Value::Map(m) => {
                out.push_str("map[");
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push_str(k);
                    out.push(':');
                    v.write_go(out, false);
                }
                out.push(']');
            }
            Value::Files(f) => {
                out.push_str("map[");
                for (i, k) in f.names().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    let _ = write!(out, "{k}:[...]");
                }
                out.push(']');
            }
            Value::ApiVersions(v) => {
                let _ = top;
                out.push('[');
                out.push_str(&v.join(" "));
                out.push(']');
            }
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<Map> for Value {
    fn from(m: Map) -> Self {
        Value::Map(m)
    }
}

impl From<Vec<Value>> for Value {
    fn from(l: Vec<Value>) -> Self {
        Value::List(l)
    }
}

/// Sprig's `strval`: strings as they are, nil as "", everything else as Go's `%v`.
pub fn to_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_go_string(),
    }
}

/// `cast.ToInt64` as Sprig uses it: numbers truncate, strings parse (else 0), bools are 0/1.
pub fn to_i64(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::Float(f) if f.is_finite() => *f as i64,
        Value::Float(_) => 0,
        Value::Bool(b) => i64::from(*b),
        Value::String(s) => parse_go_int(s.trim()).unwrap_or(0),
        _ => 0,
    }
}

/// `cast.ToFloat64`: numbers, numeric strings (else 0), bools are 0/1.
pub fn to_f64(v: &Value) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::String(s) => s.trim().parse::<f64>().unwrap_or(0.0),
        _ => 0.0,
    }
}

/// Parses an integer literal as Go's `strconv.ParseInt(s, 0, 64)` (0x, 0o, 0b, leading 0 octal).
pub fn parse_go_int(s: &str) -> Option<i64> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let body = body.replace('_', "");
    let lower = body.to_ascii_lowercase();
    let n = if let Some(h) = lower.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()?
    } else if let Some(o) = lower.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()?
    } else if let Some(b) = lower.strip_prefix("0b") {
        i64::from_str_radix(b, 2).ok()?
    } else if lower.len() > 1 && lower.starts_with('0') {
        i64::from_str_radix(&lower[1..], 8).ok()?
    } else {
        lower.parse::<i64>().ok()?
    };
    Some(if neg { -n } else { n })
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)`, which `%v` uses for a float64: the shortest
/// digits, exponent form when the exponent is < -4 or >= 6 (so 1000000 prints "1e+06").
pub fn format_float_g(f: f64) -> String {
    format_float_shortest(f, 6)
}

/// Shortest-digit float formatting with Go's rules, exponent form from exponent `eprec`.
fn format_float_shortest(f: f64, eprec: i32) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "1.2345e6".
    let e = format!("{f:e}");
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let neg = mant.starts_with('-');
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    let sign = if neg { "-" } else { "" };
    if exp < -4 || exp >= eprec {
        let mut m = digits[..1].to_string();
        if digits.len() > 1 {
            m.push('.');
            m.push_str(&digits[1..]);
        }
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{m}e{esign}{:02}", exp.abs());
    }
    if exp < 0 {
        let zeros = "0".repeat((-exp - 1) as usize);
        return format!("{sign}0.{zeros}{digits}");
    }
    let int_len = exp as usize + 1;
    if digits.len() <= int_len {
        format!("{sign}{digits}{}", "0".repeat(int_len - digits.len()))
    } else {
        format!("{sign}{}.{}", &digits[..int_len], &digits[int_len..])
    }
}

/// Go's `encoding/json` float formatting: plain digits unless the exponent is < -6 or >= 21.
pub fn format_float_json(f: f64) -> String {
    if !f.is_finite() {
        return "null".into();
    }
    if f == f.trunc() && f.abs() < 1e21 {
        // Shortest digits, zero-padded, as Go writes 1.2345678901234567e19.
        return format!("{f}");
    }
    let abs = f.abs();
    if !(1e-6..1e21).contains(&abs) {
        let s = format_float_shortest(f, 0);
        // Go's JSON writes e-07 as e-7.
        return s.replace("e-0", "e-").replace("e+0", "e+");
    }
    format!("{f}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_go_v() {
        assert_eq!(format_float_g(8080.0), "8080");
        assert_eq!(format_float_g(7.1), "7.1");
        assert_eq!(format_float_g(0.5), "0.5");
        assert_eq!(format_float_g(0.00001), "1e-05");
        assert_eq!(format_float_g(-3.0), "-3");
        assert_eq!(format_float_g(1e21), "1e+21");
        assert_eq!(format_float_g(1000000.0), "1e+06");
        assert_eq!(format_float_g(100000.0), "100000");
    }

    #[test]
    fn json_floats() {
        assert_eq!(format_float_json(1000000.0), "1000000");
        assert_eq!(format_float_json(1.5), "1.5");
        assert_eq!(format_float_json(1e-7), "1e-7");
    }

    #[test]
    fn go_ints() {
        assert_eq!(parse_go_int("0x1f"), Some(31));
        assert_eq!(parse_go_int("0777"), Some(511));
        assert_eq!(parse_go_int("-12"), Some(-12));
        assert_eq!(parse_go_int("1.5"), None);
    }

    #[test]
    fn truthiness_and_printing() {
        assert!(!Value::Null.truthy());
        assert!(Value::str("x").truthy());
        let mut m = Map::new();
        m.insert("b".into(), Value::Float(2.0));
        m.insert("a".into(), Value::List(vec![Value::Int(1), Value::Null]));
        assert_eq!(Value::Map(m).to_go_string(), "map[a:[1 <nil>] b:2]");
    }
}
