//! `delivery`: the vendor-side tool. `main` only dispatches and maps errors to exit codes.

mod atomic;
mod base;
mod base_store;
mod build;
mod cli;
mod context;
mod discover;
mod download;
mod fetch;
mod images;
mod keygen;
mod kube_version;
mod kubefile;
mod layers;
mod signing_key;
mod verify;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let result = match &cli.command {
        cli::Command::Keygen(args) => keygen::run(args),
        cli::Command::Build(args) => build::run(args),
        cli::Command::Verify(args) => verify::run(args),
        cli::Command::Images(args) => images::run(args),
        cli::Command::Base(args) => base_store::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", terminal::error_chain(e.as_ref()));
            let verification = e.chain().any(|c| {
                c.downcast_ref::<bundle_format::ReadError>()
                    .is_some_and(|r| r.is_verification_failure())
            });
            ExitCode::from(if verification { 3 } else { 1 })
        }
    }
}
