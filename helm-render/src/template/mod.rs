//! Go's text/template as Helm uses it: a lexer, a parser into a node tree, and an executor
//! over [`Value`](crate::value::Value)s with one shared set of named templates.

mod exec;
#[cfg(test)]
mod exec_tests;
#[cfg(test)]
mod hostile_tests;
mod lex;
mod object;
mod parse;

pub use exec::{ExecError, Executor, Limits};
pub use parse::{parse, Arg, Cmd, List, Node, Parsed, Pipe};

use std::collections::HashMap;
use std::sync::Arc;

/// A template text that could not be parsed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct TemplateError {
    /// 1-based line in the template text.
    pub line: usize,
    pub message: String,
}

/// Named templates: every `define` and every file, by name. Later insertions win, as later
/// parses do in Go's `template.Template`.
#[derive(Debug, Clone, Default)]
pub struct TemplateSet {
    templates: HashMap<String, Arc<List>>,
}

impl TemplateSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a parsed file under `name` together with its defines.
    pub fn add(&mut self, name: &str, parsed: Parsed) {
        for (k, v) in parsed.defines {
            self.templates.insert(k, v);
        }
        self.templates.insert(name.to_string(), Arc::new(parsed.body));
    }

    /// Looks up a template by name.
    pub fn get(&self, name: &str) -> Option<Arc<List>> {
        self.templates.get(name).cloned()
    }
}
