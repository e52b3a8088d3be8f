//! The generator's library: everything `delivery` does, so that the binary only dispatches and
//! the crate's parts can be driven and tested without it: the Kubefile parser by a fuzz target and
//! a property test ([`properties`], with the `fuzzing` feature or in tests).
//!
//! Public: the clap types, one module per subcommand with its `run`.
//! Everything else is crate-private.

pub mod base_store;
pub mod build;
pub mod cli;
pub mod images;
pub mod keygen;
pub mod verify;

#[cfg(any(test, feature = "fuzzing"))]
pub mod properties;

mod base;
mod context;
mod discover;
mod download;
mod fetch;
mod kube_version;
mod kubefile;
mod layers;
mod signing_key;
