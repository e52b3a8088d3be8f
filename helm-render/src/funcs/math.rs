//! Sprig's arithmetic and number conversions (`add`, `div`, `max`, `round`, `int`, `atoi`,
//! `until`, `seq`, ...): integer functions convert with `cast.ToInt64` as Sprig does.

use super::{want, want_at_least, FnResult};
use crate::value::{to_f64, to_i64, to_str, Value};

/// Lists built by `until`/`untilStep`/`seq` are capped at this many elements.
const MAX_LIST: i64 = 1_000_000;

/// Dispatches the math functions; `None` when `name` is not one of them.
pub fn call(name: &str, a: &[Value]) -> Option<FnResult> {
    let i = |n: usize| a.get(n).map(to_i64).unwrap_or(0);
    let f = |n: usize| a.get(n).map(to_f64).unwrap_or(0.0);
    let r = match name {
        "add" => Ok(Value::Int(a.iter().map(to_i64).fold(0i64, i64::wrapping_add))),
        "add1" => want(name, a, 1).map(|_| Value::Int(i(0).wrapping_add(1))),
        "sub" => want(name, a, 2).map(|_| Value::Int(i(0).wrapping_sub(i(1)))),
        "mul" => Ok(Value::Int(a.iter().map(to_i64).fold(1i64, i64::wrapping_mul))),
        "div" => want(name, a, 2).and_then(|_| {
            if i(1) == 0 {
                return Err("error calling div: runtime error: integer divide by zero".into());
            }
            Ok(Value::Int(i(0).wrapping_div(i(1))))
        }),
        "mod" => want(name, a, 2).and_then(|_| {
            if i(1) == 0 {
                return Err("error calling mod: runtime error: integer divide by zero".into());
            }
            Ok(Value::Int(i(0).wrapping_rem(i(1))))
        }),
        "max" | "biggest" => want_at_least(name, a, 1).map(|_| Value::Int(a.iter().map(to_i64).max().unwrap_or(0))),
        "min" => want_at_least(name, a, 1).map(|_| Value::Int(a.iter().map(to_i64).min().unwrap_or(0))),
        "addf" => Ok(Value::Float(a.iter().map(to_f64).sum())),
        "add1f" => want(name, a, 1).map(|_| Value::Float(f(0) + 1.0)),
        "subf" => want_at_least(name, a, 1).map(|_| Value::Float(a[1..].iter().map(to_f64).fold(f(0), |x, y| x - y))),
        "mulf" => Ok(Value::Float(a.iter().map(to_f64).product())),
        "divf" => want_at_least(name, a, 1).map(|_| Value::Float(a[1..].iter().map(to_f64).fold(f(0), |x, y| x / y))),
        "maxf" => want_at_least(name, a, 1).map(|_| Value::Float(a.iter().map(to_f64).fold(f64::MIN, f64::max))),
        "minf" => want_at_least(name, a, 1).map(|_| Value::Float(a.iter().map(to_f64).fold(f64::MAX, f64::min))),
        "floor" => want(name, a, 1).map(|_| Value::Float(f(0).floor())),
        "ceil" => want(name, a, 1).map(|_| Value::Float(f(0).ceil())),
        "round" => want_at_least(name, a, 2).map(|_| {
            let places = i(1).clamp(0, 15) as i32;
            let half = if a.len() > 2 { f(2) } else { 0.5 };
            let pow = 10f64.powi(places);
            let digit = f(0) * pow;
            let (int, frac) = (digit.trunc(), digit.fract());
            let r = if frac.abs() >= half { int + digit.signum() } else { int };
            Value::Float(r / pow)
        }),
        "int" | "int64" => want(name, a, 1).map(|_| Value::Int(i(0))),
        "float64" => want(name, a, 1).map(|_| Value::Float(f(0))),
        "atoi" => want(name, a, 1).map(|_| Value::Int(to_str(&a[0]).parse::<i64>().unwrap_or(0))),
        "toDecimal" => want(name, a, 1).map(|_| Value::Int(i64::from_str_radix(&to_str(&a[0]), 8).unwrap_or(0))),
        "until" => want(name, a, 1).and_then(|_| {
            let n = i(0);
            until_step(0, n, if n < 0 { -1 } else { 1 })
        }),
        "untilStep" => want(name, a, 3).and_then(|_| until_step(i(0), i(1), i(2))),
        "seq" => seq(a),
        _ => return None,
    };
    Some(r)
}

fn until_step(start: i64, stop: i64, step: i64) -> FnResult {
    if step == 0 || (start < stop && step < 0) || (start > stop && step > 0) {
        return Ok(Value::List(Vec::new()));
    }
    let count = (stop - start).unsigned_abs() / step.unsigned_abs();
    if count > MAX_LIST as u64 {
        return Err(format!("untilStep: list of {count} elements is too large").into());
    }
    let mut out = Vec::new();
    let mut x = start;
    while (step > 0 && x < stop) || (step < 0 && x > stop) {
        out.push(Value::Int(x));
        x += step;
    }
    Ok(Value::List(out))
}

/// Sprig's `seq`, like the shell's: `seq 3`, `seq 2 5`, `seq 0 2 10`; a space-joined string.
fn seq(a: &[Value]) -> FnResult {
    let p: Vec<i64> = a.iter().map(to_i64).collect();
    let (start, step, end) = match p.len() {
        0 => return Ok(Value::str("")),
        1 => (1, 1, p[0]),
        2 => (p[0], if p[1] >= p[0] { 1 } else { -1 }, p[1]),
        _ => (p[0], p[1], p[2]),
    };
    if step == 0 || (end - start).signum() * step.signum() < 0 {
        return Ok(Value::str(""));
    }
    if (end - start).unsigned_abs() / step.unsigned_abs() > MAX_LIST as u64 {
        return Err("seq: sequence too long".into());
    }
    let mut out = Vec::new();
    let mut x = start;
    while (step > 0 && x <= end) || (step < 0 && x >= end) {
        out.push(x.to_string());
        x += step;
    }
    Ok(Value::String(out.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str, a: Vec<Value>) -> Value {
        call(name, &a).unwrap().unwrap()
    }

    #[test]
    fn arithmetic() {
        assert_eq!(
            c("add", vec![Value::Float(1.0), Value::str("2"), Value::Int(3)]),
            Value::Int(6)
        );
        assert_eq!(c("div", vec![Value::Int(7), Value::Int(2)]), Value::Int(3));
        assert!(call("div", &[Value::Int(1), Value::Int(0)]).unwrap().is_err());
        assert_eq!(c("max", vec![Value::Int(1), Value::Float(5.5)]), Value::Int(5));
        assert_eq!(
            c("round", vec![Value::Float(1.2345), Value::Int(2)]),
            Value::Float(1.23)
        );
        assert_eq!(c("int", vec![Value::str("42")]), Value::Int(42));
        assert_eq!(c("atoi", vec![Value::str("x")]), Value::Int(0));
    }

    #[test]
    fn sequences() {
        assert_eq!(
            c("until", vec![Value::Int(3)]),
            Value::List(vec![Value::Int(0), Value::Int(1), Value::Int(2)])
        );
        assert_eq!(c("seq", vec![Value::Int(3)]), Value::str("1 2 3"));
        assert_eq!(c("seq", vec![Value::Int(5), Value::Int(3)]), Value::str("5 4 3"));
        assert!(call("until", &[Value::Int(i64::MAX)]).unwrap().is_err());
    }
}
