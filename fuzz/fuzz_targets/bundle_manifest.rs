#![no_main]
//! Manifest parsing and validation: see bundle_format::properties::manifest.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| bundle_format::properties::manifest(data));
