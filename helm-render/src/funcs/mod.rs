//! The function map of Helm's template engine: Go's built-ins (`printf`, `index`, `eq`, ...),
//! Helm's own (`include`, `tpl`, `toYaml`, `required`, `lookup`, ...) and the Sprig functions
//! charts use, dispatched by name. Each returns a value or a [`FuncError`].

mod collections;
mod encoding;
pub mod gofmt;
mod math;
mod misc;
pub mod semver;
mod strings;

use crate::template::{ExecError, Executor, TemplateError};
use crate::value::{to_str, Value};
use crate::yaml;

/// The result of a template function: a value or the reason it failed.
pub type FnResult = Result<Value, FuncError>;

/// Why a template function failed, worded as Go's text/template and Sprig word it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FuncError {
    /// A failure told by its message (argument counts and types, `required`, `fail`, ...).
    #[error("{0}")]
    Message(String),
    /// `include` or `tpl` failed. Boxed: every call in the recursive executor returns this
    /// type, and a larger one makes each nesting level take more stack.
    #[error(transparent)]
    Call(Box<CallError>),
}

/// Why `include` or `tpl` failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// `include` named a template that is not defined.
    #[error("error calling include: no such template {name:?}")]
    NoSuchTemplate { name: String },
    /// The template `include` ran failed.
    #[error("error calling include: template {name:?}: {error}")]
    Include { name: String, error: ExecError },
    /// The text given to `tpl` does not parse.
    #[error("error calling tpl: parse: {0}")]
    TplParse(TemplateError),
    /// The text given to `tpl` failed while executing.
    #[error("error calling tpl: {0}")]
    Tpl(ExecError),
}

impl From<CallError> for FuncError {
    fn from(e: CallError) -> Self {
        FuncError::Call(Box::new(e))
    }
}

impl From<String> for FuncError {
    fn from(message: String) -> Self {
        FuncError::Message(message)
    }
}

impl From<&str> for FuncError {
    fn from(message: &str) -> Self {
        FuncError::Message(message.to_string())
    }
}

/// Functions that change their first (map) argument in place, as Go maps are references.
pub fn mutates_first_arg(name: &str) -> bool {
    matches!(
        name,
        "set" | "unset" | "merge" | "mergeOverwrite" | "mustMerge" | "mustMergeOverwrite"
    )
}

/// Checks the argument count.
pub(crate) fn want(name: &str, args: &[Value], n: usize) -> Result<(), FuncError> {
    if args.len() != n {
        return Err(format!("wrong number of args for {name}: want {n} got {}", args.len()).into());
    }
    Ok(())
}

/// Checks a minimum argument count.
pub(crate) fn want_at_least(name: &str, args: &[Value], n: usize) -> Result<(), FuncError> {
    if args.len() < n {
        return Err(format!("wrong number of args for {name}: want at least {n} got {}", args.len()).into());
    }
    Ok(())
}

/// Calls the template function `name`.
pub fn call(ex: &mut Executor<'_>, name: &str, args: Vec<Value>) -> FnResult {
    let a = &args;
    match name {
        // Go text/template built-ins.
        "print" => Ok(Value::String(gofmt::sprint(a))),
        "printf" => {
            want_at_least(name, a, 1)?;
            Ok(Value::String(gofmt::sprintf(&to_str(&a[0]), &a[1..])))
        }
        "println" => Ok(Value::String(gofmt::sprintln(a))),
        "len" => {
            want(name, a, 1)?;
            len(&a[0]).map(Value::Int)
        }
        "index" => {
            want_at_least(name, a, 1)?;
            index(&a[0], &a[1..])
        }
        "slice" => {
            want_at_least(name, a, 1)?;
            collections::slice(&a[0], &a[1..])
        }
        "not" => {
            want(name, a, 1)?;
            Ok(Value::Bool(!a[0].truthy()))
        }
        "and" | "or" => unreachable_and_or(name),
        "eq" => {
            want_at_least(name, a, 2)?;
            for b in &a[1..] {
                if compare_eq(&a[0], b)? {
                    return Ok(Value::Bool(true));
                }
            }
            Ok(Value::Bool(false))
        }
        "ne" => {
            want(name, a, 2)?;
            Ok(Value::Bool(!compare_eq(&a[0], &a[1])?))
        }
        "lt" | "le" | "gt" | "ge" => {
            want(name, a, 2)?;
            let o = compare_order(&a[0], &a[1])?;
            Ok(Value::Bool(match name {
                "lt" => o.is_lt(),
                "le" => o.is_le(),
                "gt" => o.is_gt(),
                _ => o.is_ge(),
            }))
        }
        "html" => Ok(Value::String(strings::html_escape(&escaper_text(a)))),
        "js" => Ok(Value::String(strings::js_escape(&escaper_text(a)))),
        "urlquery" => Ok(Value::String(strings::query_escape(&escaper_text(a)))),
        "call" => Err("call of a non-function value".into()),

        // Helm's own functions.
        "include" => {
            want(name, a, 2)?;
            ex.include(&to_str(&a[0]), &a[1]).map(Value::String)
        }
        "tpl" => {
            want(name, a, 2)?;
            ex.tpl(&to_str(&a[0]), &a[1]).map(Value::String)
        }
        "required" => {
            want(name, a, 2)?;
            match &a[1] {
                Value::Null => Err(format!("required: {}", to_str(&a[0])).into()),
                Value::String(s) if s.is_empty() => Err(format!("required: {}", to_str(&a[0])).into()),
                v => Ok(v.clone()),
            }
        }
        "fail" => {
            want(name, a, 1)?;
            Err(format!("fail: {}", to_str(&a[0])).into())
        }
        "lookup" => Ok(Value::Map(Default::default())),
        "toYaml" | "mustToYaml" | "toYamlPretty" => {
            want(name, a, 1)?;
            Ok(Value::String(yaml::to_yaml(&a[0])))
        }
        "fromYaml" => {
            want(name, a, 1)?;
            Ok(match yaml::load(&to_str(&a[0])) {
                Ok(Value::Map(m)) => Value::Map(m),
                Ok(Value::Null) => Value::Map(Default::default()),
                Ok(_) => error_map("error unmarshaling JSON: cannot unmarshal into map"),
                Err(e) => error_map(&e.to_string()),
            })
        }
        "fromYamlArray" => {
            want(name, a, 1)?;
            Ok(match yaml::load(&to_str(&a[0])) {
                Ok(Value::List(l)) => Value::List(l),
                Ok(Value::Null) => Value::List(Vec::new()),
                Ok(_) => Value::List(vec![Value::str("error unmarshaling JSON: cannot unmarshal into array")]),
                Err(e) => Value::List(vec![Value::String(e.to_string())]),
            })
        }
        "toToml" => {
            want(name, a, 1)?;
            Ok(Value::String(encoding::to_toml(&a[0])))
        }
        "toJson" | "mustToJson" => {
            want(name, a, 1)?;
            Ok(Value::String(encoding::to_json(&a[0], true, None)))
        }
        "toRawJson" | "mustToRawJson" => {
            want(name, a, 1)?;
            Ok(Value::String(encoding::to_json(&a[0], false, None)))
        }
        "toPrettyJson" | "mustToPrettyJson" => {
            want(name, a, 1)?;
            Ok(Value::String(encoding::to_json(&a[0], true, Some(0))))
        }
        "fromJson" | "mustFromJson" => {
            want(name, a, 1)?;
            match encoding::from_json(&to_str(&a[0])) {
                Ok(v) => Ok(v),
                Err(e) if name == "fromJson" => Ok(error_map(&e.to_string())),
                Err(e) => Err(e.to_string().into()),
            }
        }
        "fromJsonArray" | "mustFromJsonArray" => {
            want(name, a, 1)?;
            match encoding::from_json(&to_str(&a[0])) {
                Ok(Value::List(l)) => Ok(Value::List(l)),
                Ok(_) => Ok(Value::List(vec![Value::str("cannot unmarshal into array")])),
                Err(e) => Ok(Value::List(vec![Value::String(e.to_string())])),
            }
        }

        // Sprig: defaults, types and comparisons.
        "default" => {
            want_at_least(name, a, 1)?;
            if a.len() == 1 {
                return Ok(a[0].clone());
            }
            Ok(if a[1].is_empty() { a[0].clone() } else { a[1].clone() })
        }
        "empty" => {
            want(name, a, 1)?;
            Ok(Value::Bool(a[0].is_empty()))
        }
        "coalesce" => Ok(a.iter().find(|v| !v.is_empty()).cloned().unwrap_or(Value::Null)),
        "all" => Ok(Value::Bool(a.iter().all(|v| !v.is_empty()))),
        "any" => Ok(Value::Bool(a.iter().any(|v| !v.is_empty()))),
        "ternary" => {
            want(name, a, 3)?;
            Ok(if a[2].truthy() { a[0].clone() } else { a[1].clone() })
        }
        "kindOf" => {
            want(name, a, 1)?;
            Ok(Value::str(a[0].kind()))
        }
        "kindIs" => {
            want(name, a, 2)?;
            Ok(Value::Bool(to_str(&a[0]) == a[1].kind()))
        }
        "typeOf" => {
            want(name, a, 1)?;
            Ok(Value::str(a[0].type_name()))
        }
        "typeIs" | "typeIsLike" => {
            want(name, a, 2)?;
            let t = to_str(&a[0]);
            let actual = a[1].type_name();
            Ok(Value::Bool(
                t == actual || (name == "typeIsLike" && t.trim_start_matches('*') == actual),
            ))
        }
        "deepEqual" => {
            want(name, a, 2)?;
            Ok(Value::Bool(a[0] == a[1]))
        }
        "env" | "getHostByName" => Ok(Value::str("")),
        "expandenv" => {
            want(name, a, 1)?;
            Ok(Value::String(strings::expand_env(&to_str(&a[0]))))
        }
        _ => {
            if let Some(r) = strings::call(name, a) {
                return r;
            }
            if let Some(r) = collections::call(name, a) {
                return r;
            }
            if let Some(r) = math::call(name, a) {
                return r;
            }
            if let Some(r) = encoding::call(name, a) {
                return r;
            }
            if let Some(r) = semver::call(name, a) {
                return r;
            }
            if let Some(r) = misc::call(ex, name, a) {
                return r;
            }
            Err(format!("function {name:?} not defined").into())
        }
    }
}

/// The text Go's `html`/`js`/`urlquery` escape: their arguments printed as an action
/// prints them (nil is "<no value>").
fn escaper_text(a: &[Value]) -> String {
    let printable: Vec<Value> = a
        .iter()
        .map(|v| {
            if matches!(v, Value::Null) {
                Value::str("<no value>")
            } else {
                v.clone()
            }
        })
        .collect();
    gofmt::sprint(&printable)
}

fn unreachable_and_or(name: &str) -> FnResult {
    Err(format!("{name} is evaluated by the executor").into())
}

/// The map Helm's `fromYaml`/`fromJson` return on a parse error.
fn error_map(msg: &str) -> Value {
    let mut m = crate::value::Map::new();
    m.insert("Error".into(), Value::str(msg));
    Value::Map(m)
}

/// Go's `len`.
pub fn len(v: &Value) -> Result<i64, FuncError> {
    Ok(match v {
        Value::String(s) => s.len() as i64,
        Value::List(l) => l.len() as i64,
        Value::Map(m) => m.len() as i64,
        Value::Files(f) => f.names().count() as i64,
        Value::ApiVersions(a) => a.len() as i64,
        other => return Err(format!("error calling len: len of type {}", other.type_name()).into()),
    })
}

/// Go's `index`, through maps and lists.
pub fn index(base: &Value, keys: &[Value]) -> FnResult {
    let mut cur = base.clone();
    for k in keys {
        cur = match (&cur, k) {
            (Value::Map(m), _) => match k {
                Value::String(s) => m.get(s).cloned().unwrap_or(Value::Null),
                Value::Null => Value::Null,
                other => {
                    return Err(format!(
                        "error calling index: value has type {}; should be string",
                        other.type_name()
                    )
                    .into())
                }
            },
            (Value::List(l), Value::Int(_) | Value::Float(_)) => {
                let i = crate::value::to_i64(k);
                if i < 0 || i as usize >= l.len() {
                    return Err(format!("error calling index: index out of range: {i}").into());
                }
                l[i as usize].clone()
            }
            (Value::String(s), Value::Int(_) | Value::Float(_)) => {
                let i = crate::value::to_i64(k);
                match s.as_bytes().get(i.max(0) as usize) {
                    Some(b) if i >= 0 => Value::Int(i64::from(*b)),
                    _ => return Err(format!("error calling index: index out of range: {i}").into()),
                }
            }
            (Value::Null, _) => return Err("error calling index: index of untyped nil".into()),
            (Value::Files(f), _) => Value::String(f.get(&to_str(k))),
            (other, _) => {
                return Err(format!("error calling index: can't index item of type {}", other.type_name()).into())
            }
        };
    }
    Ok(cur)
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

/// Go's `eq` for two operands; int and float compare as numbers, nil equals only nil.
pub fn compare_eq(a: &Value, b: &Value) -> Result<bool, FuncError> {
    if let (Some(x), Some(y)) = (as_number(a), as_number(b)) {
        if let (Value::Int(i), Value::Int(j)) = (a, b) {
            return Ok(i == j);
        }
        return Ok(x == y);
    }
    match (a, b) {
        (Value::Null, _) | (_, Value::Null) => Ok(matches!((a, b), (Value::Null, Value::Null))),
        (Value::String(x), Value::String(y)) => Ok(x == y),
        (Value::Bool(x), Value::Bool(y)) => Ok(x == y),
        (Value::List(_), Value::List(_)) | (Value::Map(_), Value::Map(_)) => Ok(a == b),
        _ => Err("error calling eq: incompatible types for comparison".into()),
    }
}

/// Go's `lt` family: numbers with numbers, strings with strings.
pub fn compare_order(a: &Value, b: &Value) -> Result<std::cmp::Ordering, FuncError> {
    if let (Some(x), Some(y)) = (as_number(a), as_number(b)) {
        return x.partial_cmp(&y).ok_or_else(|| "error calling lt: NaN".into());
    }
    match (a, b) {
        (Value::String(x), Value::String(y)) => Ok(x.cmp(y)),
        _ => Err("error calling lt: incompatible types for comparison".into()),
    }
}
