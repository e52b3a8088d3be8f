//! The stub's command line (clap types only).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  error (I/O, bad arguments to a step, a host problem)
  2  usage error
  3  bundle verification failed: truncated, altered, wrong key or unknown format version

Not built yet (coming in later releases): install, add-node, status, check, init-config,
images, registry serve. See README.md, \"Roadmap\".";

/// A signed delivery bundle: verify it, inspect it, unpack it.
///
/// This file is an installer stub followed by a signed, compressed payload. Every command checks
/// the signature before it reads anything else. Pass the vendor's public key (--key) or its
/// fingerprint (--fingerprint), obtained out of band, to prove where the bundle comes from;
/// without one, integrity is checked against the key the bundle carries and a warning says so.
///
/// Before running a file you received, you can check it without executing it:
///   sha256sum -c delivery.run.sha256
///   ssh-keygen -Y verify -f allowed_signers -I vendor -n delivery -s delivery.run.sig < delivery.run
#[derive(Debug, Parser)]
#[command(name = "delivery.run", version, after_long_help = EXIT_CODES, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the signature and every byte of this bundle.
    ///
    /// Hashes the stub, every compressed frame and every stored blob against the signed manifest,
    /// on all cores. Example: ./delivery.run verify --key vendor.pub
    Verify(VerifyArgs),
    /// Show what this bundle is: name, version, labels, created, sizes, signer.
    ///
    /// Checks the signature of the manifest (fast), not every byte: use `verify` for that.
    Info(InfoArgs),
    /// List every entry with its type, mode, size and SHA-256.
    List(ListArgs),
    /// Verify and unpack every entry into a directory.
    ///
    /// Files are written under a staging directory beside DIR, each checked against its signed
    /// digest as it streams, and the staging directory becomes DIR only when everything matched:
    /// a damaged bundle leaves nothing behind. Example: ./delivery.run extract --to /opt/app
    Extract(ExtractArgs),
}

/// Where trust comes from: never from the bundle itself.
#[derive(Debug, Args)]
pub struct TrustArgs {
    /// The vendor's public key (an OpenSSH `ssh-ed25519 ...` line, e.g. vendor.pub).
    #[arg(
        long,
        value_name = "FILE",
        env = "DELIVERY_TRUSTED_KEY",
        conflicts_with = "fingerprint"
    )]
    pub key: Option<PathBuf>,
    /// The vendor key's fingerprint, as `ssh-keygen -lf vendor.pub` prints it (SHA256:...).
    #[arg(long, value_name = "SHA256:...", env = "DELIVERY_TRUSTED_FINGERPRINT")]
    pub fingerprint: Option<String>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub trust: TrustArgs,
    /// Print the result as JSON Lines on stdout (no progress).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    #[command(flatten)]
    pub trust: TrustArgs,
    /// Print JSON Lines on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub trust: TrustArgs,
    /// Print one JSON line per entry on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ExtractArgs {
    #[command(flatten)]
    pub trust: TrustArgs,
    /// Directory to create (it must not exist, or be empty).
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
    /// Replace DIR if it exists and is not empty (atomically, once everything is verified).
    #[arg(long)]
    pub overwrite: bool,
}
