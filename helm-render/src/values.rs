//! Values as Helm's `pkg/chartutil` computes them: user overrides merged in order, coalesced
//! over each chart's values.yaml (user wins, null deletes), parent values scoped to each
//! subchart, `global` copied down; and which subcharts are enabled (aliases, `condition`,
//! `tags`).

use crate::chart::{Chart, Dependency};
use crate::value::{Map, Value};

/// Merges `over` onto `base` as `helm -f a.yaml -f b.yaml` does: maps merge, anything else
/// replaces (a null stays, and later deletes the key when coalesced).
pub fn merge_overrides(base: &mut Map, over: &Map) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (Some(Value::Map(bm)), Value::Map(om)) => merge_overrides(bm, om),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Applies aliases and drops disabled subcharts (recursively), recording the dropped ones
/// by their path ("parent/charts/sub"). `user` is the merged override values.
pub fn process_dependencies(chart: &mut Chart, user: &Map, skipped: &mut Vec<String>) {
    apply_aliases(chart, 0);
    let cvals = coalesce(chart, user.clone());
    let tags = cvals.get("tags").and_then(Value::as_map).cloned().unwrap_or_default();
    drop_disabled(chart, &Value::Map(cvals), &tags, "", &chart.name.clone(), skipped);
}

fn apply_aliases(chart: &mut Chart, depth: usize) {
    if depth > 32 {
        return;
    }
    let subs = std::mem::take(&mut chart.subcharts);
    let mut out = Vec::new();
    let mut used = vec![false; subs.len()];
    for dep in &chart.dependencies {
        if let Some(i) = subs.iter().position(|s| s.name == dep.name) {
            used[i] = true;
            let mut c = subs[i].clone();
            if let Some(alias) = &dep.alias {
                c.name = alias.clone();
                c.metadata.insert("name".into(), Value::str(alias.as_str()));
            }
            out.push(c);
        }
    }
    for (i, s) in subs.into_iter().enumerate() {
        if !used[i] {
            out.push(s);
        }
    }
    for c in &mut out {
        apply_aliases(c, depth + 1);
    }
    chart.subcharts = out;
}

fn dependency_for<'a>(chart: &'a Chart, sub_name: &str) -> Option<&'a Dependency> {
    chart
        .dependencies
        .iter()
        .find(|d| d.alias.as_deref().unwrap_or(&d.name) == sub_name)
}

fn drop_disabled(chart: &mut Chart, cvals: &Value, tags: &Map, prefix: &str, id: &str, skipped: &mut Vec<String>) {
    let subs = std::mem::take(&mut chart.subcharts);
    let mut kept = Vec::new();
    for mut sub in subs {
        let enabled = match dependency_for(chart, &sub.name) {
            Some(dep) => is_enabled(dep, cvals, tags, prefix),
            None => true,
        };
        let sub_id = format!("{id}/charts/{}", sub.name);
        if enabled {
            let next_prefix = format!("{prefix}{}.", sub.name);
            drop_disabled(&mut sub, cvals, tags, &next_prefix, &sub_id, skipped);
            kept.push(sub);
        } else {
            skipped.push(sub_id);
        }
    }
    chart.subcharts = kept;
}

fn is_enabled(dep: &Dependency, cvals: &Value, tags: &Map, prefix: &str) -> bool {
    if let Some(cond) = &dep.condition {
        for path in cond.split(',') {
            let full = format!("{prefix}{}", path.trim());
            if let Some(Value::Bool(b)) = cvals.path(&full) {
                return *b;
            }
        }
    }
    let mut has_true = false;
    let mut has_false = false;
    for t in &dep.tags {
        match tags.get(t) {
            Some(Value::Bool(true)) => has_true = true,
            Some(Value::Bool(false)) => has_false = true,
            _ => {}
        }
    }
    has_true || !has_false
}

/// Coalesces `dest` (values given from above) with the chart's values.yaml and, for each
/// subchart, its scoped values; returns the chart's final `.Values`.
pub fn coalesce(chart: &Chart, dest: Map) -> Map {
    coalesce_depth(chart, dest, 0)
}

fn coalesce_depth(chart: &Chart, mut dest: Map, depth: usize) -> Map {
    coalesce_tables(&mut dest, &chart.values, 0);
    if depth > 32 {
        return dest;
    }
    for sub in &chart.subcharts {
        let mut dv = match dest.remove(&sub.name) {
            Some(Value::Map(m)) => m,
            _ => Map::new(),
        };
        coalesce_globals(&mut dv, &dest);
        let v = coalesce_depth(sub, dv, depth + 1);
        dest.insert(sub.name.clone(), Value::Map(v));
    }
    dest
}

/// Fills `dst` from `src`: missing keys are copied, maps merge, a null in `dst` deletes.
fn coalesce_tables(dst: &mut Map, src: &Map, depth: usize) {
    for (k, sv) in src {
        match dst.get_mut(k) {
            None => {
                dst.insert(k.clone(), sv.clone());
            }
            Some(Value::Null) => {
                dst.remove(k);
            }
            Some(Value::Map(dm)) => {
                if let (Value::Map(sm), true) = (sv, depth < 200) {
                    coalesce_tables(dm, sm, depth + 1);
                }
            }
            Some(_) => {}
        }
    }
}

/// Copies the parent's `global` into the subchart's values, the parent's entries winning.
fn coalesce_globals(sub: &mut Map, parent: &Map) {
    let Some(Value::Map(pg)) = parent.get("global") else {
        if !sub.contains_key("global") {
            sub.insert("global".into(), Value::Map(Map::new()));
        }
        return;
    };
    let mut dg = match sub.remove("global") {
        Some(Value::Map(m)) => m,
        _ => Map::new(),
    };
    for (k, v) in pg {
        match (v, dg.get(k)) {
            (Value::Map(pm), Some(Value::Map(sm))) => {
                let mut merged = pm.clone();
                coalesce_tables(&mut merged, sm, 0);
                dg.insert(k.clone(), Value::Map(merged));
            }
            (Value::Map(_), _) => {
                dg.insert(k.clone(), v.clone());
            }
            (_, Some(Value::Map(_))) => {}
            _ => {
                dg.insert(k.clone(), v.clone());
            }
        }
    }
    sub.insert("global".into(), Value::Map(dg));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chart::{load, ChartFiles};
    use crate::yaml::load as y;

    fn chart() -> Chart {
        let files: &[(&str, &str)] = &[
            (
                "Chart.yaml",
                "apiVersion: v2\nname: top\nversion: 1.0.0\ndependencies:\n- name: db\n  condition: db.enabled\n- name: cache\n  alias: redis\n  tags: [extras]\n",
            ),
            ("values.yaml", "global:\n  registry: top.io\n  nested: {a: 1}\nreplicas: 2\ndb:\n  port: 1\n"),
            ("charts/db/Chart.yaml", "name: db\nversion: 1.0.0\n"),
            ("charts/db/values.yaml", "enabled: true\nport: 5432\nimage: {tag: '1'}\nglobal:\n  registry: sub.io\n  nested: {a: 2, b: 2}\n"),
            ("charts/cache/Chart.yaml", "name: cache\nversion: 1.0.0\n"),
        ];
        let cf = ChartFiles {
            files: files
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect(),
        };
        load(&cf).unwrap()
    }

    #[test]
    fn coalesces_scopes_and_globals() {
        let mut c = chart();
        let user = y("replicas: 3\ndb:\n  image: {tag: '2'}\n")
            .unwrap()
            .as_map()
            .cloned()
            .unwrap();
        let mut skipped = Vec::new();
        process_dependencies(&mut c, &user, &mut skipped);
        let v = Value::Map(coalesce(&c, user));
        assert_eq!(v.path("replicas"), Some(&Value::Float(3.0)));
        assert_eq!(v.path("db.port"), Some(&Value::Float(1.0)));
        assert_eq!(v.path("db.image.tag"), Some(&Value::str("2")));
        assert_eq!(v.path("db.global.registry"), Some(&Value::str("top.io")));
        assert_eq!(v.path("db.global.nested.b"), Some(&Value::Float(2.0)));
        assert_eq!(v.path("db.global.nested.a"), Some(&Value::Float(1.0)));
        assert!(v.path("redis.global").is_some(), "alias scopes values");
        assert!(skipped.is_empty());
    }

    #[test]
    fn conditions_and_tags_disable() {
        let mut c = chart();
        let user = y("db:\n  enabled: false\ntags:\n  extras: false\n")
            .unwrap()
            .as_map()
            .cloned()
            .unwrap();
        let mut skipped = Vec::new();
        process_dependencies(&mut c, &user, &mut skipped);
        assert_eq!(skipped, vec!["top/charts/db", "top/charts/redis"]);
        assert!(c.subcharts.is_empty());
    }

    #[test]
    fn null_override_deletes() {
        let c = chart();
        let user = y("replicas: null").unwrap().as_map().cloned().unwrap();
        let v = coalesce(&c, user);
        assert!(!v.contains_key("replicas"));
    }

    #[test]
    fn overrides_merge_in_order() {
        let mut base = y("a: {b: 1, c: 2}\nd: 1").unwrap().as_map().cloned().unwrap();
        merge_overrides(&mut base, y("a: {b: 5}\nd: null").unwrap().as_map().unwrap());
        assert_eq!(Value::Map(base), y("a: {b: 5, c: 2}\nd: null").unwrap());
    }
}
