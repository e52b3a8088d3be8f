//! The stub's library: everything `delivery.run` does, so that the binary only dispatches and
//! the crate's parts can be driven and tested without it: the parsers by the fuzz targets and
//! property tests ([`properties`], with the `fuzzing` feature or in tests).
//!
//! Public: the clap types, the stand-alone commands ([`commands`], one file each), and the
//! subsystems with their entry points (`install`, `registry`, `lb`, `pki`).
//! Everything else is crate-private.

pub mod cli;
pub mod commands;
pub mod install;
pub mod lb;
pub mod pki;
pub mod registry;

#[cfg(any(test, feature = "fuzzing"))]
pub mod properties;

mod clusterfile;
mod kinds;
mod own_bundle;
mod process;
mod remote;
