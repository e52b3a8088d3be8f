//! `delivery.run`: the installer stub at the front of every bundle. `main` only dispatches and
//! maps errors to the documented exit codes.

use std::process::ExitCode;

use clap::Parser;
use installer_stub::commands::{config, extract, images, inspect, node_config, verify};
use installer_stub::{cli, install, lb, pki, registry};

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Verify(args) => verify::run(&args),
        cli::Command::Info(args) => inspect::info(&args),
        cli::Command::List(args) => inspect::list(&args),
        cli::Command::Extract(args) => extract::run(&args),
        cli::Command::Images(args) => images::run(&args),
        cli::Command::InitConfig => config::init(),
        cli::Command::CheckConfig(args) => config::check(&args),
        cli::Command::Registry(cli::RegistryCommand::Serve(args)) => registry::serve(&args),
        cli::Command::Registry(cli::RegistryCommand::MirrorConfig(args)) => node_config::run(&args),
        cli::Command::Registry(cli::RegistryCommand::Start(args)) => registry::service::start(&args),
        cli::Command::Registry(cli::RegistryCommand::Stop(args)) => registry::service::stop(&args),
        cli::Command::Registry(cli::RegistryCommand::Supervise(args)) => registry::service::supervise(&args),
        cli::Command::Install(args) => install::install(&args),
        cli::Command::AddNode(args) => install::add_node(&args),
        cli::Command::Reset(args) => install::reset(&args),
        cli::Command::Status(args) => install::status(&args),
        cli::Command::Check(args) => install::check(&args),
        cli::Command::Cert(args) => pki::run(&args),
        cli::Command::Lb(cli::LbCommand::Serve(args)) => lb::service::serve(&args),
        cli::Command::Lb(cli::LbCommand::Start(args)) => lb::service::start(&args),
        cli::Command::Lb(cli::LbCommand::Stop(args)) => lb::service::stop(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", terminal::error_chain(e.as_ref()));
            ExitCode::from(exit_code(&e))
        }
    }
}

/// 3 for a bundle that failed verification, 4 when some hosts failed, 1 for anything else.
fn exit_code(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<install::HostsFailed>().is_some() {
        return 4;
    }
    let verification = e.chain().any(|c| {
        c.downcast_ref::<bundle_format::ReadError>()
            .is_some_and(|r| r.is_verification_failure())
    });
    if verification {
        3
    } else {
        1
    }
}
