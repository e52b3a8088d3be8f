//! The `delivery` command line (clap types only).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  error (bad Kubefile, missing source, I/O)
  2  usage error
  3  bundle verification failed (delivery verify, or a FROM base bundle)";

/// Build signed, self-verifying delivery bundles for air-gapped Kubernetes.
///
/// `delivery build` compiles a Kubefile and its build context into ONE executable file,
/// delivery.run: an installer stub followed by a zstd-compressed, ed25519-signed payload.
/// Beside it go delivery.run.sha256 (for `sha256sum -c`) and delivery.run.sig (for
/// `ssh-keygen -Y verify`), so customers can check it without running it.
///
/// Quick start:
///   delivery keygen --out vendor
///   delivery build -f bundles/demo/Kubefile --key vendor.key -o delivery.run
///   delivery verify delivery.run --key vendor.pub
#[derive(Debug, Parser)]
#[command(name = "delivery", version, after_help = EXIT_CODES, after_long_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a signing key pair: PREFIX.key (0600), PREFIX.pub and PREFIX.allowed_signers.
    ///
    /// The private key is an unencrypted OpenSSH ed25519 key, so `ssh-keygen` can use it too.
    /// Give PREFIX.pub (or its fingerprint) to customers out of band. Example:
    ///   delivery keygen --out vendor
    Keygen(KeygenArgs),
    /// Compile a Kubefile into a signed delivery.run.
    ///
    /// Example:
    ///   delivery build -f bundles/demo/Kubefile --key vendor.key -o delivery.run
    /// Without --key, a per-user key is created on first use (~/.config/delivery/signing.key)
    /// and its fingerprint printed: a bundle is never unsigned.
    Build(BuildArgs),
    /// Check a bundle's signature and every byte of it, without executing it.
    ///
    /// Example: delivery verify delivery.run --key vendor.pub
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Path prefix of the files to write.
    #[arg(long, value_name = "PREFIX")]
    pub out: PathBuf,
    /// The name customers use for you in allowed_signers (`ssh-keygen -Y verify -I NAME`).
    #[arg(long, default_value = "vendor")]
    pub principal: String,
    /// Replace existing key files.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The Kubefile to build.
    #[arg(short = 'f', long = "file", value_name = "KUBEFILE", default_value = "Kubefile")]
    pub kubefile: PathBuf,
    /// The build context (sources of COPY and APP); defaults to the Kubefile's directory.
    #[arg(long, value_name = "DIR")]
    pub context: Option<PathBuf>,
    /// The bundle to write; `.sha256` and `.sig` files are written beside it.
    #[arg(short = 'o', long, value_name = "FILE", default_value = "delivery.run")]
    pub output: PathBuf,
    /// The signing key (OpenSSH ed25519 private key, e.g. from `delivery keygen`).
    #[arg(long, value_name = "FILE", env = "DELIVERY_SIGNING_KEY")]
    pub key: Option<PathBuf>,
    /// Bundle name and version, NAME[:VERSION]; defaults to the labels `name` and `version`,
    /// then to the context directory's name.
    #[arg(short = 't', long, value_name = "NAME[:VERSION]")]
    pub tag: Option<String>,
    /// Set a Kubefile ARG (repeatable).
    #[arg(long = "build-arg", value_name = "NAME=VALUE")]
    pub build_args: Vec<String>,
    /// Target architecture, the value of ${ARCH} in the Kubefile.
    #[arg(long, default_value = "amd64", value_parser = ["amd64", "arm64"])]
    pub arch: String,
    /// Public key that must have signed the `FROM` base bundle.
    #[arg(long, value_name = "FILE")]
    pub base_key: Option<PathBuf>,
    /// The installer-stub binary to embed; defaults to `installer-stub` beside `delivery`.
    #[arg(long, value_name = "FILE", env = "DELIVERY_STUB")]
    pub stub: Option<PathBuf>,
    /// zstd compression level (1-19); 3 is fast and within a few percent of 19 on real contexts.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=19))]
    pub level: i32,
    /// Print the plan (every entry, where it goes, compressed or stored) and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run, print the plan as JSON Lines.
    #[arg(long, requires = "dry_run")]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The bundle to check.
    pub bundle: PathBuf,
    /// The vendor's public key (OpenSSH `ssh-ed25519 ...` line).
    #[arg(long, value_name = "FILE", conflicts_with = "fingerprint")]
    pub key: Option<PathBuf>,
    /// The vendor key's fingerprint (SHA256:..., as `ssh-keygen -lf` prints it).
    #[arg(long, value_name = "SHA256:...")]
    pub fingerprint: Option<String>,
    /// Print the result as JSON Lines (no progress).
    #[arg(long)]
    pub json: bool,
}
