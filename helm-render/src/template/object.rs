//! Field access on values as Go's text/template does it on Helm's data: map keys, nil,
//! and the methods of Helm's objects (`.Files.Get`, `.Capabilities.APIVersions.Has`); and
//! setting a value at a field path (for write-backs).

use std::sync::Arc;

use crate::value::{Map, Value};

/// One field or method step.
pub(super) fn field(recv: &Value, name: &str, args: Vec<Value>) -> Result<Value, String> {
    match recv {
        Value::Map(m) => {
            if !args.is_empty() {
                return Err(format!("{name} has arguments but cannot be invoked as function"));
            }
            Ok(m.get(name).cloned().unwrap_or(Value::Null))
        }
        Value::Null => Err(format!("nil pointer evaluating interface {{}}.{name}")),
        Value::Files(files) => {
            let arg = |i: usize| args.get(i).map(crate::value::to_str).unwrap_or_default();
            match name {
                "Get" | "GetBytes" => Ok(Value::String(files.get(&arg(0)))),
                "Glob" => Ok(Value::Files(Arc::new(files.glob(&arg(0))))),
                "Lines" => Ok(Value::List(files.lines(&arg(0)))),
                "AsConfig" => Ok(Value::String(files.as_config())),
                "AsSecrets" => Ok(Value::String(files.as_secrets())),
                _ => Err(format!("can't evaluate field {name} in type engine.files")),
            }
        }
        Value::ApiVersions(list) => match name {
            "Has" => {
                let want = args.first().map(crate::value::to_str).unwrap_or_default();
                Ok(Value::Bool(list.contains(&want)))
            }
            _ => Err(format!("can't evaluate field {name} in type chartutil.VersionSet")),
        },
        other => Err(format!("can't evaluate field {name} in type {}", other.type_name())),
    }
}

pub(super) fn set_path(root: &mut Value, fields: &[String], value: Value) {
    let mut cur = root;
    for f in fields {
        match cur {
            Value::Map(m) => {
                cur = m.entry(f.clone()).or_insert(Value::Map(Map::new()));
            }
            _ => return,
        }
    }
    *cur = value;
}
