//! The stub's library: everything `delivery.run` does, so that the binary only dispatches and
//! the crate's parts can be driven and tested without it: the parsers by the fuzz targets and
//! property tests ([`properties`], with the `fuzzing` feature or in tests).
//!
//! Public: the clap types, one module per subcommand with its entry points.
//! Everything else is crate-private.

pub mod cli;
pub mod config_cmd;
pub mod extract;
pub mod images;
pub mod inspect;
pub mod install;
pub mod lb;
pub mod node_config;
pub mod pki;
pub mod registry;
pub mod verify;

#[cfg(any(test, feature = "fuzzing"))]
pub mod properties;

mod clusterfile;
mod kinds;
mod remote;
