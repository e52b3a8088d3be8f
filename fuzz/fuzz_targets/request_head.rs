#![no_main]
//! The registry's request parser and routing: see installer_stub::properties::request_head.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| installer_stub::properties::request_head(data));
