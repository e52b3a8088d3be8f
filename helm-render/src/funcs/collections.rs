//! Sprig's list and dict functions (`list`, `dict`, `set`, `merge`, `dig`, `first`, `uniq`,
//! ...). Their `must*` twins share the code: here both fail the template on bad input.

use super::{want, want_at_least, FnResult, FuncError};
use crate::value::{to_i64, to_str, Map, Value};

fn list_of<'a>(name: &str, v: &'a Value) -> Result<&'a [Value], FuncError> {
    match v {
        Value::List(l) => Ok(l),
        Value::Null => Ok(&[]),
        other => Err(format!("{name}: cannot find {name} on type {}", other.type_name()).into()),
    }
}

fn map_of<'a>(name: &str, v: &'a Value) -> Result<std::borrow::Cow<'a, Map>, FuncError> {
    match v {
        Value::Map(m) => Ok(std::borrow::Cow::Borrowed(m)),
        Value::Null => Ok(std::borrow::Cow::Owned(Map::new())),
        other => Err(format!("{name}: expected a dict, got {}", other.type_name()).into()),
    }
}

/// Dispatches the list and dict functions; `None` when `name` is not one of them.
pub fn call(name: &str, a: &[Value]) -> Option<FnResult> {
    let base = name
        .strip_prefix("must")
        .map(lower_first)
        .unwrap_or_else(|| name.to_string());
    let r = match base.as_str() {
        "list" | "tuple" => Ok(Value::List(a.to_vec())),
        "dict" => {
            let mut m = Map::new();
            for pair in a.chunks(2) {
                let v = pair.get(1).cloned().unwrap_or_else(|| Value::str(""));
                m.insert(to_str(&pair[0]), v);
            }
            Ok(Value::Map(m))
        }
        "get" => want(name, a, 2).and_then(|_| {
            Ok(map_of(name, &a[0])?
                .get(&to_str(&a[1]))
                .cloned()
                .unwrap_or_else(|| Value::str("")))
        }),
        "set" => want(name, a, 3).and_then(|_| {
            let mut m = map_of(name, &a[0])?.into_owned();
            m.insert(to_str(&a[1]), a[2].clone());
            Ok(Value::Map(m))
        }),
        "unset" => want(name, a, 2).and_then(|_| {
            let mut m = map_of(name, &a[0])?.into_owned();
            m.remove(&to_str(&a[1]));
            Ok(Value::Map(m))
        }),
        "hasKey" => want(name, a, 2).and_then(|_| Ok(Value::Bool(map_of(name, &a[0])?.contains_key(&to_str(&a[1]))))),
        "keys" => {
            let mut keys = Vec::new();
            for d in a {
                keys.extend(
                    map_of(name, d)
                        .map(|m| m.keys().cloned().collect::<Vec<_>>())
                        .unwrap_or_default(),
                );
            }
            Ok(Value::List(keys.into_iter().map(Value::String).collect()))
        }
        "values" => want(name, a, 1).and_then(|_| Ok(Value::List(map_of(name, &a[0])?.values().cloned().collect()))),
        "pluck" => want_at_least(name, a, 1).map(|_| {
            let key = to_str(&a[0]);
            Value::List(
                a[1..]
                    .iter()
                    .filter_map(|d| d.as_map().and_then(|m| m.get(&key)).cloned())
                    .collect(),
            )
        }),
        "pick" => want_at_least(name, a, 1).and_then(|_| {
            let m = map_of(name, &a[0])?;
            let keys: Vec<String> = a[1..].iter().map(to_str).collect();
            Ok(Value::Map(
                m.iter()
                    .filter(|(k, _)| keys.contains(k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ))
        }),
        "omit" => want_at_least(name, a, 1).and_then(|_| {
            let m = map_of(name, &a[0])?;
            let keys: Vec<String> = a[1..].iter().map(to_str).collect();
            Ok(Value::Map(
                m.iter()
                    .filter(|(k, _)| !keys.contains(k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ))
        }),
        "dig" => want_at_least(name, a, 3).map(|_| dig(a)),
        "merge" | "mergeOverwrite" => want_at_least(name, a, 1).and_then(|_| {
            let mut dst = map_of(name, &a[0])?.into_owned();
            for src in &a[1..] {
                let src = map_of(name, src)?;
                merge_into(&mut dst, &src, base == "mergeOverwrite", 0);
            }
            Ok(Value::Map(dst))
        }),
        "deepCopy" => want(name, a, 1).map(|_| a[0].clone()),
        "first" => want(name, a, 1).and_then(|_| Ok(list_of(name, &a[0])?.first().cloned().unwrap_or(Value::Null))),
        "last" => want(name, a, 1).and_then(|_| Ok(list_of(name, &a[0])?.last().cloned().unwrap_or(Value::Null))),
        "rest" => want(name, a, 1).and_then(|_| {
            let l = list_of(name, &a[0])?;
            Ok(if l.is_empty() {
                Value::Null
            } else {
                Value::List(l[1..].to_vec())
            })
        }),
        "initial" => want(name, a, 1).and_then(|_| {
            let l = list_of(name, &a[0])?;
            Ok(if l.is_empty() {
                Value::Null
            } else {
                Value::List(l[..l.len() - 1].to_vec())
            })
        }),
        "append" | "push" => want(name, a, 2).and_then(|_| {
            let mut l = list_of(name, &a[0])?.to_vec();
            l.push(a[1].clone());
            Ok(Value::List(l))
        }),
        "prepend" => want(name, a, 2).and_then(|_| {
            let mut l = vec![a[1].clone()];
            l.extend_from_slice(list_of(name, &a[0])?);
            Ok(Value::List(l))
        }),
        "concat" => {
            let mut out = Vec::new();
            for l in a {
                match list_of(name, l) {
                    Ok(items) => out.extend_from_slice(items),
                    Err(e) => return Some(Err(e)),
                }
            }
            Ok(Value::List(out))
        }
        "reverse" => want(name, a, 1).and_then(|_| {
            let mut l = list_of(name, &a[0])?.to_vec();
            l.reverse();
            Ok(Value::List(l))
        }),
        "uniq" => want(name, a, 1).and_then(|_| {
            let mut out: Vec<Value> = Vec::new();
            for v in list_of(name, &a[0])? {
                if !out.contains(v) {
                    out.push(v.clone());
                }
            }
            Ok(Value::List(out))
        }),
        "without" => want_at_least(name, a, 1).and_then(|_| {
            let l = list_of(name, &a[0])?;
            Ok(Value::List(l.iter().filter(|v| !a[1..].contains(v)).cloned().collect()))
        }),
        "has" => want(name, a, 2).and_then(|_| Ok(Value::Bool(list_of(name, &a[1])?.contains(&a[0])))),
        "compact" => want(name, a, 1).and_then(|_| {
            Ok(Value::List(
                list_of(name, &a[0])?
                    .iter()
                    .filter(|v| !v.is_empty())
                    .cloned()
                    .collect(),
            ))
        }),
        "chunk" => want(name, a, 2).and_then(|_| {
            let size = to_i64(&a[0]).max(1) as usize;
            Ok(Value::List(
                list_of(name, &a[1])?
                    .chunks(size)
                    .map(|c| Value::List(c.to_vec()))
                    .collect(),
            ))
        }),
        _ => return None,
    };
    Some(r)
}

/// `dig k1 k2 ... default dict`.
fn dig(a: &[Value]) -> Value {
    let n = a.len();
    let mut cur = a[n - 1].clone();
    for k in &a[..n - 2] {
        match cur.as_map().and_then(|m| m.get(&to_str(k))) {
            Some(v) => cur = v.clone(),
            None => return a[n - 2].clone(),
        }
    }
    cur
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// mergo's deep merge: missing or empty keys of `dst` take `src`'s; maps merge recursively;
/// with `overwrite`, `src` wins.
pub fn merge_into(dst: &mut Map, src: &Map, overwrite: bool, depth: usize) {
    if depth > 200 {
        return;
    }
    for (k, sv) in src {
        match dst.get_mut(k) {
            Some(Value::Map(dm)) if matches!(sv, Value::Map(_)) => {
                if let Value::Map(sm) = sv {
                    merge_into(dm, sm, overwrite, depth + 1);
                }
            }
            Some(dv) => {
                if (overwrite && !matches!(sv, Value::Null)) || (dv.is_empty() && !matches!(dv, Value::Map(_))) {
                    *dv = sv.clone();
                }
            }
            None => {
                dst.insert(k.clone(), sv.clone());
            }
        }
    }
}

/// Go's `slice` built-in (lists and strings).
pub fn slice(v: &Value, idx: &[Value]) -> FnResult {
    let bounds = |len: usize| -> Result<(usize, usize), FuncError> {
        let i = idx.first().map(to_i64).unwrap_or(0);
        let j = idx.get(1).map(to_i64).unwrap_or(len as i64);
        if i < 0 || j < i || j as usize > len {
            return Err(format!("error calling slice: index out of range: {i}:{j}").into());
        }
        Ok((i as usize, j as usize))
    };
    match v {
        Value::List(l) => {
            let (i, j) = bounds(l.len())?;
            Ok(Value::List(l[i..j].to_vec()))
        }
        Value::String(s) => {
            let (i, j) = bounds(s.len())?;
            Ok(Value::String(String::from_utf8_lossy(&s.as_bytes()[i..j]).into_owned()))
        }
        Value::Null => Ok(Value::Null),
        other => Err(format!("error calling slice: can't slice item of type {}", other.type_name()).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::load;

    fn c(name: &str, a: Vec<Value>) -> Value {
        call(name, &a).unwrap().unwrap()
    }

    #[test]
    fn dicts() {
        let d = c("dict", vec!["a".into(), Value::Int(1), "b".into()]);
        assert_eq!(d.path("b"), Some(&Value::str("")));
        let d = c("set", vec![d, "c".into(), Value::Bool(true)]);
        assert_eq!(c("hasKey", vec![d.clone(), "c".into()]), Value::Bool(true));
        assert_eq!(c("get", vec![d.clone(), "zz".into()]), Value::str(""));
        assert_eq!(
            c("keys", vec![d]),
            Value::List(vec!["a".into(), "b".into(), "c".into()])
        );
        let nested = load("a:\n  b: 1").unwrap();
        assert_eq!(
            c("dig", vec!["a".into(), "b".into(), "def".into(), nested.clone()]),
            Value::Float(1.0)
        );
        assert_eq!(
            c("dig", vec!["a".into(), "x".into(), "def".into(), nested]),
            Value::str("def")
        );
    }

    #[test]
    fn merges() {
        let dst = load("a: 1\nm:\n  x: 1\nempty: ''").unwrap();
        let src = load("a: 2\nb: 3\nm:\n  x: 2\n  y: 2\nempty: filled").unwrap();
        let merged = c("merge", vec![dst.clone(), src.clone()]);
        assert_eq!(merged, load("a: 1\nb: 3\nm:\n  x: 1\n  y: 2\nempty: filled").unwrap());
        let over = c("mergeOverwrite", vec![dst, src.clone()]);
        assert_eq!(over, src);
    }

    #[test]
    fn lists() {
        let l = Value::List(vec![Value::Int(1), Value::Int(2), Value::Int(2), Value::str("")]);
        assert_eq!(c("first", vec![l.clone()]), Value::Int(1));
        assert_eq!(
            c("uniq", vec![l.clone()]),
            Value::List(vec![Value::Int(1), Value::Int(2), Value::str("")])
        );
        assert_eq!(c("compact", vec![l.clone()]).as_map(), None);
        assert_eq!(c("has", vec![Value::Int(2), l.clone()]), Value::Bool(true));
        assert_eq!(
            c("without", vec![l.clone(), Value::Int(2)]),
            Value::List(vec![Value::Int(1), Value::str("")])
        );
        assert_eq!(c("first", vec![Value::List(vec![])]), Value::Null);
        assert!(call("mustFirst", &[Value::str("x")]).unwrap().is_err());
        assert_eq!(
            slice(&l, &[Value::Int(1), Value::Int(2)]).unwrap(),
            Value::List(vec![Value::Int(2)])
        );
    }
}
