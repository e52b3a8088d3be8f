#![no_main]
//! A whole bundle opened, verified and extracted: see bundle_format::properties::bundle_file.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| bundle_format::properties::bundle_file(data));
