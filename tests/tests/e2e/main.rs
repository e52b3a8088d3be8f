//! End-to-end tests: the real `delivery` and a real bundle, checked with real `sha256sum`,
//! `ssh-keygen`, `zstd` and `tar`. They need the release binaries: `./tests/run.sh` builds
//! them (or set DELIVERY_BIN_DIR and DELIVERY_STUB).

mod support;

mod base_bundle;
mod hostile;
mod images;
mod install;
mod kubefile_errors;
mod kubernetes;
mod registry;
mod round_trip;
mod sealer;
mod tamper;
mod testbed;
