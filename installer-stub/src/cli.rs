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
  4  some hosts failed (install, add-node, check): the summary table and the log file name
     each host, step and error; run the same command again to resume";

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
    /// on all cores, and decompresses the frames to check every file as extract would.
    /// Example: ./delivery.run verify --key vendor.pub
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
    /// Install the bundle on every host of a Clusterfile, over SSH, from this master.
    ///
    /// Plans first (--dry-run prints the plan and stops), then runs preflight on every host at
    /// once (a failing host stops everything before any change), verifies and unpacks the
    /// bundle here, starts the registry mirror on the registry host, copies to every host what
    /// its roles need (checked by digest, skipped when already there), runs the bundle's hooks
    /// (prepare everywhere; init, then pre-join, on the first master; join-master one at a time;
    /// join-node in parallel), the Kubefile's LAUNCH/CMD on the first master, and finally `check`.
    /// Every step is recorded in a journal on this master: after any failure, kill or reboot,
    /// run the same command again and it resumes. A failing host does not stop the others:
    /// exit code 4 and a summary table.
    ///
    /// Example: ./delivery.run install --config cluster.toml --key vendor.pub --yes
    Install(InstallArgs),
    /// Add the hosts of the Clusterfile that are not installed yet (all, or those named by --host).
    ///
    /// Runs preflight, copy, the prepare hooks and the join hooks on those hosts only, with the
    /// values the init hooks published; hosts already in the journal are not touched, except
    /// that the first master runs the bundle's pre-join hooks (fresh join credentials).
    /// Example: ./delivery.run add-node --config cluster.toml --host 10.0.0.24 --yes
    AddNode(AddNodeArgs),
    /// Take the bundle off the hosts of a Clusterfile (all, or those named by --host).
    ///
    /// Plans, runs preflight, then on each host: the bundle's reset hooks (hooks/reset/*, which
    /// undo what its other hooks set up), then `clean`: the registry this install started is
    /// stopped (its systemd unit removed) and the install root /var/lib/delivery/<cluster> is
    /// removed. The hosts are then forgotten by the journal (`add-node` or `install` puts them
    /// back). Without --host the whole cluster goes, this master last, and its install state
    /// with it; the log of the reset is kept beside it. The first master goes only with the
    /// whole cluster. Resumes like install: run it again after a failure.
    /// Not built yet: the Kubernetes bundle's reset hooks (kubeadm reset, CNI interfaces,
    /// iptables), and removing a node from a running Kubernetes cluster (remove-node).
    /// Example: ./delivery.run reset --config cluster.toml --yes
    Reset(ResetArgs),
    /// Kubernetes certificates (100-year PKI made by install): list their expiry, or renew them.
    ///
    /// Reads /etc/kubernetes/pki by default (run it on a master). `--renew` issues every leaf
    /// certificate again for 100 years with the same key and names; the CAs and the service
    /// account keys are kept, so kubeconfigs and tokens stay valid. Restart the control plane
    /// (kubelet restarts its static pods when their files change; or move the manifests out and
    /// back) to load renewed certificates, and run it on every master.
    /// Not covered: the client certificates inside admin.conf, controller-manager.conf,
    /// scheduler.conf and super-admin.conf, which kubeadm makes for one year.
    /// Examples: ./delivery.run cert --list    ./delivery.run cert --renew --dir /etc/kubernetes/pki
    Cert(CertArgs),
    /// Node-local load balancer for the Kubernetes API servers.
    ///
    /// Every worker of the Kubernetes bundle runs one on 127.0.0.1:6443 (its prepare hook
    /// starts it): TCP forwarded to healthy masters (least connections; a master that stops
    /// answering is skipped within seconds and used again when it is back), so losing a master
    /// loses nothing, with no VIP and no IPVS.
    #[command(subcommand)]
    Lb(LbCommand),
    /// Show, from the journal on this master, each host's steps and their state.
    ///
    /// Reads local files only. Example: ./delivery.run status --config cluster.toml
    Status(StatusArgs),
    /// Run the bundle's check hooks on every installed host, and ask the registry for every image.
    ///
    /// Exit code 4 when a host or the registry fails. Example: ./delivery.run check --config cluster.toml
    Check(CheckArgs),
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
    /// Slow or idle clients cannot lock others out. A request head must arrive whole within
    /// --timeout of the connection (or of the previous response on it), however it trickles. A
    /// response must reach its client at --min-rate over every half --timeout, so a client that
    /// stops reading is dropped within --timeout. One client address holds at most
    /// --max-connections-per-address connections. A new connection that finds no free slot
    /// closes the connection that has waited longest for a request (an idle keep-alive one, a
    /// silent or trickling client: of its own address if that is what is full); when every slot
    /// is sending a response, the address holding the most connections, if that is at least two
    /// more than the newcomer's, gives up its longest-running one. Otherwise: 503 with
    /// Retry-After.
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
    /// Run `registry serve` as a service that outlives this command (install does this).
    ///
    /// With systemd: writes and enables `delivery-registry-<port>.service`. Without: verifies
    /// the bundle, then detaches a supervisor that restarts the registry if it exits, with its
    /// pid in STATE_DIR/registry.pid and its log in STATE_DIR/registry.log. Returns when the
    /// registry answers; does nothing when it already runs.
    /// Example: ./delivery.run registry start --state-dir /var/lib/delivery/prod/registry
    Start(ServiceArgs),
    /// Stop the supervised registry started by `registry start` (not a systemd unit).
    Stop(StopArgs),
    /// The supervisor `registry start` detaches (not for direct use).
    #[command(hide = true)]
    Supervise(ServiceArgs),
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
    /// Replace DIR if it exists and is not empty: once everything is verified, DIR becomes
    /// exactly the bundle's tree, so files in DIR that the bundle does not have are DELETED.
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
    /// Connections open at once, from all clients (one thread each).
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub max_connections: u32,
    /// Connections one client address may hold [default: a quarter of --max-connections].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub max_connections_per_address: Option<u32>,
    /// Seconds a request head may take to arrive, and a client that stops reading may hold a
    /// response.
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
    /// KiB/s a response must reach its client at, over every half --timeout.
    #[arg(long, value_name = "KIB_PER_S", default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    pub min_rate: u64,
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

#[derive(Debug, Args)]
pub struct InstallArgs {
    #[command(flatten)]
    pub trust: TrustArgs,
    /// The Clusterfile (TOML): hosts, roles, SSH settings. `init-config` prints an example.
    #[arg(long, value_name = "FILE", default_value = "cluster.toml")]
    pub config: PathBuf,
    /// Print the plan (hosts, steps, files) and stop: nothing is contacted or changed.
    #[arg(long)]
    pub dry_run: bool,
    /// JSON Lines on stdout (plan, preflight rows, events, summary); no progress bars.
    #[arg(long)]
    pub json: bool,
    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Hosts worked on at the same time.
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub parallel: usize,
    /// Where the journal, logs and unpacked bundle live on this master
    /// [default: /var/lib/delivery/<cluster name>].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct AddNodeArgs {
    #[command(flatten)]
    pub install: InstallArgs,
    /// Only this host (an address of the Clusterfile); repeatable. Default: every host not installed yet.
    #[arg(long = "host", value_name = "ADDRESS")]
    pub hosts: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ResetArgs {
    #[command(flatten)]
    pub install: InstallArgs,
    /// Only this host (an address of the Clusterfile, not the first master); repeatable.
    /// Default: every host, and this master's install state.
    #[arg(long = "host", value_name = "ADDRESS")]
    pub hosts: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The Clusterfile (TOML).
    #[arg(long, value_name = "FILE", default_value = "cluster.toml")]
    pub config: PathBuf,
    /// One JSON line per host.
    #[arg(long)]
    pub json: bool,
    /// The state directory used by install [default: /var/lib/delivery/<cluster name>].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub trust: TrustArgs,
    /// The Clusterfile (TOML).
    #[arg(long, value_name = "FILE", default_value = "cluster.toml")]
    pub config: PathBuf,
    /// JSON Lines on stdout.
    #[arg(long)]
    pub json: bool,
    /// Hosts checked at the same time.
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub parallel: usize,
    /// The state directory used by install [default: /var/lib/delivery/<cluster name>].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServiceArgs {
    #[command(flatten)]
    pub trust: TrustArgs,
    /// Address and port to listen on.
    #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:5000")]
    pub listen: SocketAddr,
    /// Directory for the pid file and the log.
    #[arg(long, value_name = "DIR")]
    pub state_dir: PathBuf,
    /// Use the supervisor even where systemd runs.
    #[arg(long)]
    pub no_systemd: bool,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// The directory given to `registry start`.
    #[arg(long, value_name = "DIR")]
    pub state_dir: PathBuf,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("action").required(true).args(["list", "renew"])))]
pub struct CertArgs {
    /// Show every certificate: subject, issuer, expiry, days left.
    #[arg(long)]
    pub list: bool,
    /// Issue every leaf certificate again for 100 years (CAs and keys are kept).
    #[arg(long)]
    pub renew: bool,
    /// The PKI directory.
    #[arg(long, value_name = "DIR", default_value = "/etc/kubernetes/pki")]
    pub dir: PathBuf,
    /// One JSON line per certificate.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum LbCommand {
    /// Run the balancer in the foreground.
    ///
    /// Example: ./delivery.run lb serve --backend 10.0.0.11:6443 --backend 10.0.0.12:6443
    Serve(LbArgs),
    /// Run it as a service (systemd unit, else a detached process); idempotent.
    ///
    /// Example: delivery lb start --state-dir /var/lib/delivery/prod/lb --backend 10.0.0.11:6443
    Start(LbStartArgs),
    /// Stop the balancer started with `lb start` (without systemd).
    Stop(StopArgs),
}

#[derive(Debug, Clone, Args)]
pub struct LbArgs {
    /// Where local clients connect.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:6443")]
    pub listen: std::net::SocketAddr,
    /// A master's API server, HOST:PORT (repeatable, at least one).
    #[arg(long = "backend", value_name = "HOST:PORT", required = true)]
    pub backends: Vec<String>,
    /// Time between health probes of every backend.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub health_interval_ms: u64,
    /// Connect timeout to a backend (clients and probes).
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    pub connect_timeout_ms: u64,
    /// Health probe: `tcp` (the port accepts), or `https:/PATH`: a TLS handshake and `GET PATH`
    /// answered 2xx (401/403 count as up: the server answers, anonymous checks are refused).
    /// For kube-apiservers use `https:/readyz`: it skips a master that listens but is not ready.
    #[arg(long, value_name = "tcp|https:/PATH", default_value = "tcp")]
    pub probe: crate::lb::Probe,
}

#[derive(Debug, Args)]
pub struct LbStartArgs {
    #[command(flatten)]
    pub lb: LbArgs,
    /// Where the pid file, arguments and log go.
    #[arg(long, value_name = "DIR")]
    pub state_dir: PathBuf,
    /// Do not use systemd even where it runs.
    #[arg(long)]
    pub no_systemd: bool,
}
