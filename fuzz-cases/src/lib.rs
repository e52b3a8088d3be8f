//! Seeded, reproducible inputs for the bounded property tests that run the fuzz targets on the
//! stable toolchain (issue 12): a splitmix64 generator, random bytes and mutations of real seed
//! inputs (the repository's Kubefiles, Clusterfiles, a small bundle, registry request heads), and
//! a runner that names the seed and saves the input of a failing case so that it reproduces.
//!
//! libFuzzer (`cargo +nightly fuzz run <target>`, see `fuzz/`) explores the same targets with
//! coverage feedback; these runs are what every `cargo test` and CI do, in seconds.
//!
//! Environment: `FUZZ_CASES_SEED` replaces the fixed base seed, `FUZZ_CASES` the number of cases
//! of every run (for a longer local run).

use std::panic::{self, AssertUnwindSafe};
use std::time::Instant;

/// The base seed when `FUZZ_CASES_SEED` is unset: fixed, so CI runs the same cases every time.
pub const DEFAULT_SEED: u64 = 0x5eed_0012;

/// splitmix64: tiny, fast, and good enough to pick mutations; not for anything secret.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True once in `n` times.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Byte values that often sit on a boundary of some check.
const INTERESTING: &[u8] = &[
    0, 1, 0x7f, 0x80, 0xff, b'\n', b'\r', b' ', b'\t', b'"', b'\\', b'$', b'/', b'.',
];

/// One to four random edits of `seed`: bit flips, boundary bytes, insertions and deletions,
/// duplicated ranges, tokens from `dictionary`, truncation. The result stays under `max_len`.
pub fn mutate(rng: &mut Rng, seed: &[u8], dictionary: &[&[u8]], max_len: usize) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(8) {
            0 if !out.is_empty() => {
                let i = at.min(out.len() - 1);
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                let i = at.min(out.len() - 1);
                out[i] = *rng.pick(INTERESTING);
            }
            2 => {
                let n = 1 + rng.below(8);
                let bytes = rng.bytes(n);
                out.splice(at..at, bytes);
            }
            3 => {
                let end = (at + 1 + rng.below(16)).min(out.len());
                out.drain(at..end);
            }
            4 if !out.is_empty() => {
                let start = rng.below(out.len());
                let end = (start + 1 + rng.below(64)).min(out.len());
                let copy = out[start..end].to_vec();
                out.splice(at..at, copy);
            }
            5 | 6 if !dictionary.is_empty() => {
                let token = rng.pick(dictionary).to_vec();
                if rng.one_in(2) {
                    out.splice(at..at, token);
                } else {
                    let end = (at + token.len()).min(out.len());
                    out.splice(at..end, token);
                }
            }
            _ => out.truncate(at),
        }
    }
    out.truncate(max_len);
    out
}

/// One input: random bytes one time in eight (or when there are no seeds), otherwise a mutation
/// of one of `seeds`.
pub fn input(rng: &mut Rng, seeds: &[Vec<u8>], dictionary: &[&[u8]], max_len: usize) -> Vec<u8> {
    if seeds.is_empty() || rng.one_in(8) {
        let len = rng.below(max_len.min(512) + 1);
        return rng.bytes(len);
    }
    let seed = rng.pick(seeds).clone();
    mutate(rng, &seed, dictionary, max_len)
}

/// The base seed and the number of cases, from the environment or the defaults.
fn settings(cases: usize) -> (u64, usize) {
    let seed = std::env::var("FUZZ_CASES_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    let cases = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(cases);
    (seed, cases)
}

/// Runs `check` on `cases` inputs made by [`input`]. A failing case is reported with its base
/// seed and number, and its input is saved to the temp directory, before the panic goes on.
pub fn run(name: &str, cases: usize, seeds: &[Vec<u8>], dictionary: &[&[u8]], max_len: usize, check: impl Fn(&[u8])) {
    let (base, cases) = settings(cases);
    let started = Instant::now();
    for case in 0..cases {
        let mut rng = Rng::new(base ^ (case as u64).wrapping_mul(0xa076_1d64_78bd_642f));
        let data = input(&mut rng, seeds, dictionary, max_len);
        if let Err(panic) = panic::catch_unwind(AssertUnwindSafe(|| check(&data))) {
            let saved = std::env::temp_dir().join(format!("fuzz-cases-{name}-{base}-{case}"));
            let saved = match std::fs::write(&saved, &data) {
                Ok(()) => saved.display().to_string(),
                Err(e) => format!("(not saved: {e})"),
            };
            eprintln!(
                "{name}: case {case} failed (FUZZ_CASES_SEED={base}); input ({} bytes) saved as {saved}: {:?}",
                data.len(),
                String::from_utf8_lossy(&data[..data.len().min(300)])
            );
            panic::resume_unwind(panic);
        }
    }
    eprintln!(
        "{name}: {cases} cases in {:.2?} (FUZZ_CASES_SEED={base})",
        started.elapsed()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_inputs() {
        let seeds = vec![b"FROM scratch\nCOPY a b\n".to_vec()];
        let make = |s| {
            let mut rng = Rng::new(s);
            (0..50)
                .map(|_| input(&mut rng, &seeds, &[b"$"], 64))
                .collect::<Vec<_>>()
        };
        assert_eq!(make(7), make(7));
        assert_ne!(make(7), make(8));
        assert!(make(7).iter().all(|i| i.len() <= 64));
    }

    #[test]
    fn a_failing_case_is_reported_and_still_fails() {
        let result = panic::catch_unwind(|| {
            run("self-test", 100, &[b"abc".to_vec()], &[], 16, |data| {
                assert!(data.len() < 5)
            });
        });
        assert!(result.is_err());
    }
}
