//! The `.Files` methods that build template values: `Lines` (a list of strings), and `AsConfig`
//! and `AsSecrets` (YAML maps for a ConfigMap's or a Secret's `data`), as `pkg/engine/files.go`
//! defines them.

use base64::Engine as _;

use super::Files;
use crate::value::{Map, Value};
use crate::yaml;

impl Files {
    /// `.Files.Lines`: the file split at newlines.
    pub fn lines(&self, name: &str) -> Vec<Value> {
        let text = self.get(name);
        if text.is_empty() {
            return Vec::new();
        }
        text.split('\n').map(Value::str).collect()
    }

    /// `AsConfig`: a YAML map of base name to file text, for a ConfigMap's `data`.
    pub fn as_config(&self) -> String {
        let m: Map = self
            .files
            .iter()
            .map(|(k, v)| (base_name(k), Value::String(String::from_utf8_lossy(v).into())))
            .collect();
        if m.is_empty() {
            return String::new();
        }
        yaml::to_yaml(&Value::Map(m))
    }

    /// `AsSecrets`: a YAML map of base name to base64 of the file, for a Secret's `data`.
    pub fn as_secrets(&self) -> String {
        let m: Map = self
            .files
            .iter()
            .map(|(k, v)| {
                (
                    base_name(k),
                    Value::String(base64::engine::general_purpose::STANDARD.encode(v)),
                )
            })
            .collect();
        if m.is_empty() {
            return String::new();
        }
        yaml::to_yaml(&Value::Map(m))
    }
}

fn base_name(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_string()
}

#[cfg(test)]
mod tests {
    use super::super::tests::files;

    #[test]
    fn lines_config_and_secrets() {
        let f = files();
        assert_eq!(f.lines("config/a.conf").len(), 2);
        assert_eq!(f.glob("config/*.conf").as_config(), "a.conf: |-\n  x=1\n  y=2");
        assert_eq!(f.glob("README.md").as_secrets(), "README.md: aGk=");
    }
}
