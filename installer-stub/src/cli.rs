//! The stub's command line (clap types only).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  error (I/O, bad arguments to a step, a host problem)
  2  usage error
  3  bundle verification failed: truncated, altered, wrong key or unknown format version

Not built yet (coming in later releases): install, add-node, status, check.
See README.md, \"Roadmap\".";

/// A signed delivery bundle: verify it, inspect it, unpack it, serve its images.
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
    /// List the container images this bundle carries: name, digest, media type, platforms, size.
    ///
    /// From the signed manifest (the signature is checked, not every byte). Names are the full,
    /// normalised upstream references that `registry serve` answers for.
    /// Example: ./delivery.run images --json
    Images(ImagesArgs),
    /// Serve the bundle's images as a read-only OCI registry (pull only).
    #[command(subcommand)]
    Registry(RegistryCommand),
    /// Print a commented example Clusterfile to edit: ./delivery.run init-config > cluster.toml
    InitConfig,
    /// Check a Clusterfile and print the hosts it expands to, with their roles and SSH settings.
    ///
    /// Every error is reported at once, at file:line:column, with what to fix. Nothing is
    /// contacted: this reads the file only. Example: ./delivery.run check-config --config cluster.toml
    CheckConfig(CheckConfigArgs),
}

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Serve every image of this bundle over HTTP, straight from this file, until killed.
    ///
    /// Checks the signature and then every byte (skip that with --no-verify-contents), then
    /// answers the OCI distribution API's pull requests (`/v2/`, manifests and blobs by tag or
    /// digest, with Range) from the blobs where they sit in this file: nothing is extracted.
    /// Images keep their upstream names: containerd (which sends `?ns=<registry>`) pulls
    /// `docker.io/library/busybox:1.36` through a `hosts.toml` mirror entry; without `ns`, a
    /// name whose first component is a host (`example.com/team/app`) is a full name, and any
    /// other means docker.io (`skopeo copy docker://HOST:5000/library/busybox:1.36 ...`).
    ///
    /// Example: ./delivery.run registry serve --listen 0.0.0.0:5000 --key vendor.pub
    Serve(ServeArgs),
    /// Write the node configuration that points container runtimes at the mirror.
    ///
    /// containerd: one `<registry>/hosts.toml` per upstream registry this bundle carries images
    /// of, under the given certs.d directory (point containerd's `config_path` at it; `ctr`
    /// needs `--hosts-dir`). Tag resolution and pulls go to the mirror, so image names in
    /// manifests are never rewritten. docker: a daemon.json with `registry-mirrors` (Docker Hub
    /// images only: docker cannot mirror other registries without renaming images).
    ///
    /// Example: ./delivery.run registry mirror-config --mirror http://10.0.0.11:5000 \
    ///            --containerd-dir /etc/containerd/certs.d
    MirrorConfig(MirrorConfigArgs),
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

#[derive(Debug, Args)]
pub struct ImagesArgs {
    #[command(flatten)]
    pub trust: TrustArgs,
    /// Print one JSON line per image on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub trust: TrustArgs,
    /// Address and port to listen on (plain HTTP; every image of the bundle is readable there).
    #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:5000")]
    pub listen: SocketAddr,
    /// Skip hashing every byte before serving (the signature is still checked). Only for a
    /// restart of a bundle already verified on this machine: blobs are then served unchecked.
    #[arg(long)]
    pub no_verify_contents: bool,
    /// Print one line per request on stderr (client, method, path, status, bytes).
    #[arg(long)]
    pub access_log: bool,
}

#[derive(Debug, Args)]
pub struct MirrorConfigArgs {
    #[command(flatten)]
    pub trust: TrustArgs,
    /// Where nodes reach the bundle's registry: http://HOST:PORT or https://HOST:PORT.
    #[arg(long, value_name = "URL")]
    pub mirror: String,
    /// containerd's certs.d directory to write `<registry>/hosts.toml` files into.
    #[arg(long, value_name = "DIR", required_unless_present = "docker_daemon_json")]
    pub containerd_dir: Option<PathBuf>,
    /// A docker daemon.json to write (replaced whole).
    #[arg(long, value_name = "FILE")]
    pub docker_daemon_json: Option<PathBuf>,
    /// Accept any TLS certificate from an https mirror.
    #[arg(long)]
    pub insecure_skip_verify: bool,
    /// CA file on the node that signed an https mirror's certificate.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<String>,
}

#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// The Clusterfile (TOML).
    #[arg(long, value_name = "FILE", default_value = "cluster.toml")]
    pub config: PathBuf,
    /// Print the expanded hosts as JSON Lines.
    #[arg(long)]
    pub json: bool,
}
