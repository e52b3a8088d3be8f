//! `delivery`: the vendor-side tool. `main` only dispatches and maps errors to exit codes.

use std::process::ExitCode;

use clap::Parser;
use generator::{base_store, build, cli, images, keygen, verify};

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
