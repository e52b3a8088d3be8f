#![no_main]
//! Bundle header and trailer decoding: see bundle_format::properties::layout.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| bundle_format::properties::layout(data));
