#![no_main]
//! The Kubefile parser: see generator::properties::kubefile. The input is the Kubefile text, then
//! after a NUL byte the `--build-arg`s and architecture, which `arbitrary` makes from the rest.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| generator::properties::kubefile(data));
