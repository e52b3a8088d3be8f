//! Times repeated renders of chart directories (a profiling aid:
//! `cargo run --release -p helm-render --example render_bench -- [-n 10] <chart-dir>...`).
//! Prints, per chart, the fastest and the median wall time of one render.

use std::path::Path;
use std::time::{Duration, Instant};

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut runs = 10usize;
    if args.first().map(String::as_str) == Some("-n") && args.len() > 1 {
        runs = args[1].parse().unwrap_or(10).max(1);
        args.drain(..2);
    }
    if args.is_empty() {
        eprintln!("usage: render_bench [-n runs] <chart-dir>...");
        std::process::exit(2);
    }
    for dir in &args {
        let chart = match helm_render::ChartFiles::from_dir(Path::new(dir)) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {dir}: {e}");
                std::process::exit(1);
            }
        };
        let opts = helm_render::Options::default();
        let mut times: Vec<Duration> = Vec::with_capacity(runs);
        for _ in 0..runs {
            let start = Instant::now();
            if let Err(e) = helm_render::render(&chart, &opts) {
                eprintln!("error: {dir}: {e}");
                std::process::exit(1);
            }
            times.push(start.elapsed());
        }
        times.sort();
        let name = Path::new(dir)
            .file_name()
            .map_or(dir.clone(), |n| n.to_string_lossy().into_owned());
        println!(
            "{name:<20} min {:>8.2} ms  median {:>8.2} ms  ({runs} runs)",
            times[0].as_secs_f64() * 1e3,
            times[runs / 2].as_secs_f64() * 1e3
        );
    }
}
