//! Field access on values as Go's text/template does it on Helm's data: map keys, nil,
//! and the methods of Helm's objects (`.Files.Get`, `.Capabilities.APIVersions.Has`); and
//! setting a value at a field path (for write-backs).

use std::sync::Arc;

use crate::value::{Map, Value};

/// A field or method step that Go's text/template would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum FieldError {
    #[error("{name} has arguments but cannot be invoked as function")]
    NotAFunction { name: String },
    #[error("nil pointer evaluating interface {{}}.{name}")]
    NilPointer { name: String },
    #[error("can't evaluate field {name} in type {type_name}")]
    NoSuchField { name: String, type_name: &'static str },
}

/// One field or method step.
pub(super) fn field(recv: &Value, name: &str, args: Vec<Value>) -> Result<Value, FieldError> {
    let no_such_field = |type_name| FieldError::NoSuchField {
        name: name.to_string(),
        type_name,
    };
    match recv {
        Value::Map(m) => {
            if !args.is_empty() {
                return Err(FieldError::NotAFunction { name: name.to_string() });
            }
            Ok(m.get(name).cloned().unwrap_or(Value::Null))
        }
        Value::Null => Err(FieldError::NilPointer { name: name.to_string() }),
        Value::Files(files) => {
            let arg = |i: usize| args.get(i).map(crate::value::to_str).unwrap_or_default();
            match name {
                "Get" | "GetBytes" => Ok(Value::String(files.get(&arg(0)))),
                "Glob" => Ok(Value::Files(Arc::new(files.glob(&arg(0))))),
                "Lines" => Ok(Value::List(files.lines(&arg(0)))),
                "AsConfig" => Ok(Value::String(files.as_config())),
                "AsSecrets" => Ok(Value::String(files.as_secrets())),
                _ => Err(no_such_field("engine.files")),
            }
        }
        Value::ApiVersions(list) => match name {
            "Has" => {
                let want = args.first().map(crate::value::to_str).unwrap_or_default();
                Ok(Value::Bool(list.contains(&want)))
            }
            _ => Err(no_such_field("chartutil.VersionSet")),
        },
        other => Err(no_such_field(other.type_name())),
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
