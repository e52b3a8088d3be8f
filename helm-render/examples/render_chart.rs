//! Renders a chart directory and prints the rendered files and failures (a debugging aid:
//! `cargo run -p helm-render --example render_chart -- <chart-dir> [values.yaml...]`).

use std::path::Path;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.first() else {
        eprintln!("usage: render_chart <chart-dir> [values.yaml...]");
        std::process::exit(2);
    };
    let chart = match helm_render::ChartFiles::from_dir(Path::new(dir)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let mut opts = helm_render::Options::default();
    for v in &args[1..] {
        match std::fs::read(v) {
            Ok(b) => opts.values_overrides.push(b),
            Err(e) => {
                eprintln!("error: failed to read {v}: {e}");
                std::process::exit(1);
            }
        }
    }
    match helm_render::render(&chart, &opts) {
        Ok(r) => {
            for f in &r.files {
                println!("---\n# Source: {}\n{}", f.path, f.content);
            }
            for f in &r.failures {
                eprintln!("FAILURE {}:{}: {}", f.path, f.line, f.reason);
            }
            for s in &r.skipped_subcharts {
                eprintln!("skipped subchart {s}");
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
