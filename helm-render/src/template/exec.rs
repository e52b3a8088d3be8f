//! The executor: walks a node tree with a dot value and variables, writing text; Go's
//! semantics for fields on maps and nil, `if`/`range`/`with`, variables, pipelines, and
//! Helm's object methods (`.Files.Get`, `.Capabilities.APIVersions.Has`).

use std::collections::HashMap;
use std::sync::Arc;

use super::object::{field, set_path};
use super::parse::{Arg, Cmd, List, Node, Pipe};
use super::{parse, TemplateSet};
use crate::funcs::{self, CallError, FuncError};
use crate::value::Value;

/// A failure while executing a template.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ExecError {
    /// 1-based line of the failing action in the template being executed.
    pub line: usize,
    pub message: String,
}

/// Bounds that keep hostile templates from exhausting the machine.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Nesting of `template`/`include`/`tpl` calls.
    pub max_depth: usize,
    /// Bytes of output of one execution.
    pub max_output: usize,
    /// Loop iterations (all `range`s together) of one execution.
    pub max_steps: u64,
    /// Elements a list-building function (`until`, `repeat`, ...) may produce.
    pub max_items: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 100,
            max_output: 16 << 20,
            max_steps: 200_000,
            max_items: 1_000_000,
        }
    }
}

enum Flow {
    Normal,
    Break,
    Continue,
}

/// Executes templates of one set; one executor per rendered file.
pub struct Executor<'a> {
    set: &'a TemplateSet,
    /// Templates defined by `tpl` texts during this execution.
    extra: HashMap<String, Arc<List>>,
    pub(crate) limits: Limits,
    depth: usize,
    steps: u64,
    line: usize,
    /// Sum of bytes written by all nested executions (include output counts too).
    written: usize,
    /// State of the deterministic generator behind `randAlphaNum`, `uuidv4`, ...
    pub(crate) rand_state: u64,
    /// Dot is the template's own data (not a `with`/`range` element), so it and `$` are one.
    dot_is_root: bool,
    /// Count of write-backs, to tell whether a called template changed its data.
    mutations: u64,
    /// The changed data of the last `include`/`tpl`, for the caller to write back.
    returned: Option<Value>,
}

type Vars = Vec<(String, Value)>;

fn err<T>(line: usize, message: impl Into<String>) -> Result<T, ExecError> {
    Err(ExecError {
        line,
        message: message.into(),
    })
}

impl<'a> Executor<'a> {
    /// An executor over `set`.
    pub fn new(set: &'a TemplateSet, limits: Limits) -> Self {
        Executor {
            set,
            extra: HashMap::new(),
            limits,
            depth: 0,
            steps: 0,
            line: 1,
            written: 0,
            rand_state: 0x9E37_79B9_7F4A_7C15,
            dot_is_root: true,
            mutations: 0,
            returned: None,
        }
    }

    /// Executes the named template with `data` as dot and `$`; returns its text.
    pub fn execute(&mut self, name: &str, data: &Value) -> Result<String, ExecError> {
        let list = self.lookup(name).ok_or_else(|| ExecError {
            line: self.line,
            message: format!("no such template {name:?}"),
        })?;
        self.run(&list, data).map(|(out, _)| out)
    }

    fn lookup(&self, name: &str) -> Option<Arc<List>> {
        self.extra.get(name).cloned().or_else(|| self.set.get(name))
    }

    /// Runs a template body with `data` as dot and `$`; returns its text and, when the
    /// template changed its data (`set . "k" v`), the changed data: Go's maps are shared,
    /// so the caller sees such changes.
    fn run(&mut self, list: &List, data: &Value) -> Result<(String, Option<Value>), ExecError> {
        if self.depth >= self.limits.max_depth {
            return err(
                self.line,
                format!("exceeded max template depth ({})", self.limits.max_depth),
            );
        }
        self.depth += 1;
        let saved_line = self.line;
        let saved_root = std::mem::replace(&mut self.dot_is_root, true);
        let before = self.mutations;
        let mut vars: Vars = vec![("$".to_string(), data.clone())];
        let mut out = String::new();
        let mut dot = data.clone();
        let r = self.list(list, &mut dot, &mut vars, &mut out);
        self.depth -= 1;
        self.line = saved_line;
        self.dot_is_root = saved_root;
        let changed = (self.mutations > before).then(|| vars.swap_remove(0).1);
        r.map(|_| (out, changed))
    }

    /// `include`: executes a named template and returns its output.
    pub(crate) fn include(&mut self, name: &str, data: &Value) -> Result<String, FuncError> {
        let outer = self.line;
        let list = self
            .lookup(name)
            .ok_or_else(|| CallError::NoSuchTemplate { name: name.to_string() })?;
        let (out, changed) = self.run(&list, data).map_err(|error| {
            self.line = outer;
            CallError::Include {
                name: name.to_string(),
                error,
            }
        })?;
        self.returned = changed;
        Ok(out)
    }

    /// `tpl`: parses `text` as a template (its defines become visible) and executes it.
    pub(crate) fn tpl(&mut self, text: &str, data: &Value) -> Result<String, FuncError> {
        let parsed = parse(text).map_err(CallError::TplParse)?;
        for (k, v) in parsed.defines {
            self.extra.insert(k, v);
        }
        let outer = self.line;
        let (out, changed) = self.run(&parsed.body, data).map_err(|e| {
            self.line = outer;
            CallError::Tpl(e)
        })?;
        self.returned = changed;
        Ok(out)
    }

    fn list(&mut self, list: &List, dot: &mut Value, vars: &mut Vars, out: &mut String) -> Result<Flow, ExecError> {
        for node in list {
            match self.node(node, dot, vars, out)? {
                Flow::Normal => {}
                f => return Ok(f),
            }
            if out.len() > self.limits.max_output || self.written > self.limits.max_output {
                return err(self.line, format!("output exceeds {} bytes", self.limits.max_output));
            }
        }
        Ok(Flow::Normal)
    }

    fn node(&mut self, node: &Node, dot: &mut Value, vars: &mut Vars, out: &mut String) -> Result<Flow, ExecError> {
        match node {
            Node::Text(t) => {
                self.written += t.len();
                out.push_str(t);
            }
            Node::Action(pipe) => {
                let v = self.pipe(pipe, dot, vars)?;
                if pipe.decl.is_empty() {
                    let s = print_value(&v);
                    self.written += s.len();
                    out.push_str(&s);
                }
            }
            Node::If { pipe, then, otherwise } => {
                let mark = vars.len();
                let v = self.pipe(pipe, dot, vars)?;
                let body = if v.truthy() { then } else { otherwise };
                let r = self.list(body, dot, vars, out);
                vars.truncate(mark);
                return r;
            }
            Node::With { pipe, body, otherwise } => {
                let mark = vars.len();
                let v = self.pipe(pipe, dot, vars)?;
                let r = if v.truthy() {
                    let mut inner = v;
                    let saved_root = std::mem::replace(&mut self.dot_is_root, false);
                    let r = self.list(body, &mut inner, vars, out);
                    self.dot_is_root = saved_root;
                    r
                } else {
                    self.list(otherwise, dot, vars, out)
                };
                vars.truncate(mark);
                return r;
            }
            Node::Range { pipe, body, otherwise } => return self.range(pipe, body, otherwise, dot, vars, out),
            Node::Template { name, pipe, line } => {
                self.line = *line;
                let data = match pipe {
                    Some(p) => self.pipe(p, dot, vars)?,
                    None => Value::Null,
                };
                let list = self.lookup(name).ok_or_else(|| ExecError {
                    line: *line,
                    message: format!("no such template {name:?}"),
                })?;
                let (s, changed) = self.run(&list, &data).map_err(|e| ExecError {
                    line: *line,
                    message: format!("template {name:?}: line {}: {}", e.line, e.message),
                })?;
                out.push_str(&s);
                if let (Some(v), Some(p)) = (changed, pipe) {
                    if let [cmd] = p.cmds.as_slice() {
                        if let ([target], true) = (cmd.args.as_slice(), p.decl.is_empty()) {
                            self.write_back(target, &v, dot, vars);
                        }
                    }
                }
            }
            Node::Break(_) => return Ok(Flow::Break),
            Node::Continue(_) => return Ok(Flow::Continue),
        }
        Ok(Flow::Normal)
    }

    fn range(
        &mut self,
        pipe: &Pipe,
        body: &List,
        otherwise: &List,
        dot: &mut Value,
        vars: &mut Vars,
        out: &mut String,
    ) -> Result<Flow, ExecError> {
        let mark = vars.len();
        // The declared variables belong to the loop, not to the pipeline's evaluation.
        let mut eval_pipe = pipe.clone();
        eval_pipe.decl.clear();
        let v = self.pipe(&eval_pipe, dot, vars)?;
        let items: Vec<(Value, Value)> = match v {
            Value::List(l) => l
                .into_iter()
                .enumerate()
                .map(|(i, v)| (Value::Int(i as i64), v))
                .collect(),
            Value::Map(m) => m.into_iter().map(|(k, v)| (Value::String(k), v)).collect(),
            Value::Int(n) => {
                if n > self.limits.max_items as i64 {
                    return err(pipe.line, "range count too large");
                }
                (0..n.max(0)).map(|i| (Value::Int(i), Value::Int(i))).collect()
            }
            Value::Null => Vec::new(),
            Value::Files(f) => f
                .names()
                .map(|n| (Value::str(n.clone()), Value::str(f.get(n))))
                .collect(),
            Value::ApiVersions(a) => a
                .iter()
                .enumerate()
                .map(|(i, s)| (Value::Int(i as i64), Value::str(s)))
                .collect(),
            other => return err(pipe.line, format!("range can't iterate over {}", other.to_go_string())),
        };
        if items.is_empty() {
            let r = self.list(otherwise, dot, vars, out);
            vars.truncate(mark);
            return r;
        }
        for (k, v) in items {
            self.steps += 1;
            if self.steps > self.limits.max_steps {
                return err(pipe.line, "too many loop iterations");
            }
            let inner_mark = vars.len();
            match pipe.decl.len() {
                0 => {}
                1 => vars.push((pipe.decl[0].clone(), v.clone())),
                _ => {
                    vars.push((pipe.decl[0].clone(), k));
                    vars.push((pipe.decl[1].clone(), v.clone()));
                }
            }
            let mut inner = v;
            let saved_root = std::mem::replace(&mut self.dot_is_root, false);
            let flow = self.list(body, &mut inner, vars, out);
            self.dot_is_root = saved_root;
            vars.truncate(inner_mark);
            match flow? {
                Flow::Break => break,
                Flow::Continue | Flow::Normal => {}
            }
        }
        vars.truncate(mark);
        Ok(Flow::Normal)
    }

    fn pipe(&mut self, pipe: &Pipe, dot: &mut Value, vars: &mut Vars) -> Result<Value, ExecError> {
        self.line = pipe.line;
        let mut v: Option<Value> = None;
        for cmd in &pipe.cmds {
            v = Some(self.cmd(cmd, dot, vars, v)?);
        }
        let v = v.unwrap_or(Value::Null);
        if !pipe.decl.is_empty() {
            if pipe.assign {
                let name = &pipe.decl[0];
                match vars.iter_mut().rev().find(|(n, _)| n == name) {
                    Some(slot) => slot.1 = v.clone(),
                    None => return err(pipe.line, format!("undefined variable: {name}")),
                }
            } else {
                vars.push((pipe.decl[0].clone(), v.clone()));
            }
        }
        Ok(v)
    }

    fn cmd(&mut self, cmd: &Cmd, dot: &mut Value, vars: &mut Vars, piped: Option<Value>) -> Result<Value, ExecError> {
        let line = self.line;
        let first = &cmd.args[0];
        match first {
            Arg::Ident(name) => {
                if name == "and" || name == "or" {
                    return self.and_or(name == "and", &cmd.args[1..], dot, vars, piped);
                }
                let mut args = Vec::with_capacity(cmd.args.len());
                for a in &cmd.args[1..] {
                    args.push(self.arg(a, dot, vars)?);
                }
                let data_is_piped = piped.is_some();
                if let Some(p) = piped {
                    args.push(p);
                }
                self.returned = None;
                let result = funcs::call(self, name, args).map_err(|e| ExecError {
                    line,
                    message: e.to_string(),
                })?;
                // A template run by include/tpl that changed its data: write it back.
                if let (Some(v), false) = (self.returned.take(), data_is_piped) {
                    if let Some(target) = cmd.args.get(2) {
                        self.write_back(target, &v, dot, vars);
                    }
                }
                if let Value::String(s) = &result {
                    if s.len() > self.limits.max_output {
                        return err(line, format!("{name}: result exceeds {} bytes", self.limits.max_output));
                    }
                }
                // Sprig's set/unset/merge change their first argument in place (Go maps are
                // references); write the changed map back to the variable or field named.
                if funcs::mutates_first_arg(name) {
                    if let (Some(target), Value::Map(_)) = (cmd.args.get(1), &result) {
                        self.write_back(target, &result, dot, vars);
                    }
                }
                Ok(result)
            }
            Arg::Field(fields) => {
                let mut args = Vec::new();
                for a in &cmd.args[1..] {
                    args.push(self.arg(a, dot, vars)?);
                }
                if let Some(p) = piped {
                    args.push(p);
                }
                let base = dot.clone();
                self.fields(&base, fields, args, line)
            }
            Arg::Variable(name, fields) => {
                let base = lookup_var(vars, name).ok_or_else(|| ExecError {
                    line,
                    message: format!("undefined variable: {name}"),
                })?;
                let mut args = Vec::new();
                for a in &cmd.args[1..] {
                    args.push(self.arg(a, dot, vars)?);
                }
                if let Some(p) = piped {
                    args.push(p);
                }
                if fields.is_empty() {
                    if !args.is_empty() {
                        return err(line, format!("can't give argument to non-function {name}"));
                    }
                    return Ok(base);
                }
                self.fields(&base, fields, args, line)
            }
            Arg::Chain(base, fields) => {
                let b = self.arg(base, dot, vars)?;
                let mut args = Vec::new();
                for a in &cmd.args[1..] {
                    args.push(self.arg(a, dot, vars)?);
                }
                if let Some(p) = piped {
                    args.push(p);
                }
                self.fields(&b, fields, args, line)
            }
            other => {
                if cmd.args.len() > 1 || piped.is_some() {
                    return err(line, format!("can't give argument to non-function {}", describe(other)));
                }
                self.arg(other, dot, vars)
            }
        }
    }

    fn and_or(
        &mut self,
        is_and: bool,
        args: &[Arg],
        dot: &mut Value,
        vars: &mut Vars,
        piped: Option<Value>,
    ) -> Result<Value, ExecError> {
        let name = if is_and { "and" } else { "or" };
        if args.is_empty() && piped.is_none() {
            return err(
                self.line,
                format!("wrong number of args for {name}: want at least 1 got 0"),
            );
        }
        let mut last = Value::Null;
        for a in args {
            last = self.arg(a, dot, vars)?;
            if last.truthy() != is_and {
                return Ok(last);
            }
        }
        if let Some(p) = piped {
            last = p;
        }
        Ok(last)
    }

    fn arg(&mut self, arg: &Arg, dot: &mut Value, vars: &mut Vars) -> Result<Value, ExecError> {
        let line = self.line;
        match arg {
            Arg::Dot => Ok(dot.clone()),
            Arg::Nil => Ok(Value::Null),
            Arg::Bool(b) => Ok(Value::Bool(*b)),
            Arg::Str(s) => Ok(Value::String(s.clone())),
            Arg::Number(n) => Ok(n.clone()),
            Arg::Field(fields) => {
                let base = dot.clone();
                self.fields(&base, fields, Vec::new(), line)
            }
            Arg::Variable(name, fields) => {
                let base = lookup_var(vars, name).ok_or_else(|| ExecError {
                    line,
                    message: format!("undefined variable: {name}"),
                })?;
                if fields.is_empty() {
                    Ok(base)
                } else {
                    self.fields(&base, fields, Vec::new(), line)
                }
            }
            Arg::Ident(name) => {
                // A function used as an argument is called without arguments.
                funcs::call(self, name, Vec::new()).map_err(|e| ExecError {
                    line,
                    message: e.to_string(),
                })
            }
            Arg::Pipe(p) => {
                let mark = vars.len();
                let v = self.pipe(p, dot, vars);
                // Variables declared inside parentheses stay visible in Go; keep them.
                let _ = mark;
                self.line = line;
                v
            }
            Arg::Chain(base, fields) => {
                let b = self.arg(base, dot, vars)?;
                self.fields(&b, fields, Vec::new(), line)
            }
        }
    }

    /// Writes a changed map back to where it came from: the first argument of `set`/`merge`,
    /// or the data of a template that changed it. Dot and `$` are kept one while dot is root.
    fn write_back(&mut self, target: &Arg, value: &Value, dot: &mut Value, vars: &mut Vars) {
        self.mutations += 1;
        let root = self.dot_is_root;
        match target {
            Arg::Dot => {
                *dot = value.clone();
                if root {
                    set_path(&mut vars[0].1, &[], value.clone());
                }
            }
            Arg::Field(fields) => {
                set_path(dot, fields, value.clone());
                if root {
                    set_path(&mut vars[0].1, fields, value.clone());
                }
            }
            Arg::Variable(name, fields) => {
                if let Some(slot) = vars.iter_mut().rev().find(|(n, _)| n == name) {
                    set_path(&mut slot.1, fields, value.clone());
                }
                if name == "$" && root {
                    set_path(dot, fields, value.clone());
                }
            }
            _ => {}
        }
    }

    /// Evaluates `.a.b.c` on `base`; `args` go to the last element when it is a method.
    fn fields(&mut self, base: &Value, fields: &[String], args: Vec<Value>, line: usize) -> Result<Value, ExecError> {
        // Go turns a nil pipeline result (or variable, or dot) into an invalid value, and a
        // field of an invalid value is "no value"; only a nil met inside a chain
        // (`.Values.missing.key`) is an error.
        if matches!(base, Value::Null) {
            return Ok(Value::Null);
        }
        let mut cur = base.clone();
        let n = fields.len();
        let mut args = Some(args);
        for (i, f) in fields.iter().enumerate() {
            let last = i + 1 == n;
            let a = if last {
                args.take().unwrap_or_default()
            } else {
                Vec::new()
            };
            cur = field(&cur, f, a).map_err(|e| ExecError {
                line,
                message: e.to_string(),
            })?;
        }
        Ok(cur)
    }
}

fn describe(arg: &Arg) -> String {
    match arg {
        Arg::Str(s) => format!("{s:?}"),
        Arg::Number(n) => n.to_go_string(),
        Arg::Bool(b) => b.to_string(),
        Arg::Nil => "nil".into(),
        Arg::Dot => ".".into(),
        _ => "value".into(),
    }
}

fn lookup_var(vars: &Vars, name: &str) -> Option<Value> {
    vars.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.clone())
}

/// How an action prints a value: nil prints "<no value>" (Helm then removes it).
fn print_value(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_go_string(),
    }
}
