#![no_main]
//! The Clusterfile parser: see installer_stub::properties::clusterfile.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| installer_stub::properties::clusterfile(data));
