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
    Build(Box<BuildArgs>),
    /// Check a bundle's signature and every byte of it, without executing it.
    ///
    /// Example: delivery verify delivery.run --key vendor.pub
    Verify(VerifyArgs),
    /// List the container images a Kubefile's bundle needs, and where each was found, without
    /// fetching anything.
    ///
    /// Images are found in the Kubernetes objects of the YAML files the bundle carries
    /// (`image:` fields, and operator images in container args and IMAGE env values), in Helm
    /// charts rendered as `helm template` renders them (with `<chart>.values.yaml` beside the
    /// chart; `--chart-images all` adds every image their values name), and in image list
    /// files (`imageList`, `*.images`: one reference per line). RUN and URL sources run and
    /// download as in a build; a `FROM` name that resolves to nothing is a warning, and the
    /// base's images are then missing from the list. Example:
    ///   delivery images -f bundles/demo/Kubefile --json
    Images(ImagesArgs),
    /// The local store of base bundles that `FROM <name>` resolves to.
    ///
    /// A sealer Kubefile starts with `FROM <a sealer cluster image>`; store a verified
    /// delivery.run under that name once, and the Kubefile builds as written:
    ///   delivery base add kubernetes.run --key vendor.pub --name registry.example/sealer-apps/helm:v3.6.0
    ///   delivery base list
    /// For one build, `--base NAME=FILE` does the same without the store.
    Base(BaseArgs),
}

#[derive(Debug, Args)]
pub struct BaseArgs {
    #[command(subcommand)]
    pub command: BaseCommand,
}

#[derive(Debug, Subcommand)]
pub enum BaseCommand {
    /// Verify a base bundle against KEY and store it under its `NAME:VERSION` and each --name.
    ///
    /// The key is recorded with it: builds that use it by name verify it against that key
    /// (or --base-key). A name already in the store moves to this bundle. Example:
    ///   delivery base add kubernetes.run --key vendor.pub --name kubernetes:v1.35.1
    Add(BaseAddArgs),
    /// List the stored bases: every name, the bundle it names, its size and signer.
    List(BaseListArgs),
}

#[derive(Debug, Args)]
pub struct BaseAddArgs {
    /// The base delivery.run to store.
    pub bundle: PathBuf,
    /// The public key that must have signed it (OpenSSH `ssh-ed25519 ...` line).
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Another name `FROM` may use for it, e.g. the sealer image it stands for (repeatable).
    #[arg(long = "name", value_name = "NAME")]
    pub names: Vec<String>,
    /// The store directory.
    #[arg(long = "base-store", value_name = "DIR", env = "DELIVERY_BASE_STORE")]
    pub store: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BaseListArgs {
    /// Print JSON Lines: {"type":"base","data":{"names","file","bundle","version","size","key"}}.
    #[arg(long)]
    pub json: bool,
    /// The store directory.
    #[arg(long = "base-store", value_name = "DIR", env = "DELIVERY_BASE_STORE")]
    pub store: Option<PathBuf>,
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

/// Which Kubefile, and how to read it.
#[derive(Debug, Args)]
pub struct KubefileArgs {
    /// The Kubefile to build.
    #[arg(short = 'f', long = "file", value_name = "KUBEFILE", default_value = "Kubefile")]
    pub kubefile: PathBuf,
    /// The build context (sources of COPY and APP); defaults to the Kubefile's directory.
    #[arg(long, value_name = "DIR")]
    pub context: Option<PathBuf>,
    /// Set a Kubefile ARG (repeatable).
    #[arg(long = "build-arg", value_name = "NAME=VALUE")]
    pub build_args: Vec<String>,
    /// Target architecture, the value of ${ARCH} in the Kubefile.
    #[arg(long, default_value = "amd64", value_parser = ["amd64", "arm64"])]
    pub arch: String,
    /// Public key that must have signed the `FROM` base bundle (a stored base defaults to the
    /// key it was added with).
    #[arg(long, value_name = "FILE")]
    pub base_key: Option<PathBuf>,
    /// Resolve `FROM NAME` to the base bundle FILE (repeatable), e.g.
    /// `--base registry.example/sealer-apps/helm:v3.6.0=./kubernetes.run`.
    #[arg(long = "base", value_name = "NAME=FILE")]
    pub bases: Vec<String>,
    /// The store of base bundles that `FROM NAME` is looked up in (see `delivery base`).
    #[arg(long = "base-store", value_name = "DIR", env = "DELIVERY_BASE_STORE")]
    pub base_store: Option<PathBuf>,
    /// Refuse a Kubefile with RUN: RUN runs commands on this machine while building.
    #[arg(long)]
    pub no_run: bool,
    /// Refuse a URL source (`COPY https://...`, `APP name https://...`) that does not end in
    /// `#sha256=<hex>`: every download must be pinned.
    #[arg(long)]
    pub require_checksums: bool,
    /// Which images of Helm charts to carry: `rendered` (the images the chart deploys with its
    /// default values and the `<chart>.values.yaml` beside it, as `helm template` renders
    /// them) or `all` (also every image its values name, e.g. of components disabled by
    /// default).
    #[arg(long, value_name = "WHICH", default_value = "rendered", value_parser = ["rendered", "all"])]
    pub chart_images: String,
    /// Leave this image out although the bundle's files name it (repeatable): the explicit
    /// escape hatch for a reference that cannot be fetched and is not needed offline.
    #[arg(long = "ignore-image", value_name = "REF")]
    pub ignore_images: Vec<String>,
}

/// Where images are fetched from at build time.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Fetch DOMAIN's images from another registry, e.g. a Harbor or Nexus proxy cache:
    /// `docker.io=harbor.corp/dockerhub-proxy` fetches docker.io/library/nginx:1.25 from
    /// harbor.corp/dockerhub-proxy/library/nginx:1.25. The bundle keeps the original names.
    #[arg(long = "mirror", value_name = "DOMAIN=HOST[:PORT][/PREFIX]")]
    pub mirrors: Vec<String>,
    /// Allow plain HTTP to exactly this registry endpoint (repeatable).
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    pub insecure_registries: Vec<String>,
    /// Credentials per registry host (TOML; passwords from environment variables or the
    /// file, never from the command line). See README, "Registry credentials".
    #[arg(long = "registry-auth", value_name = "FILE", env = "DELIVERY_REGISTRY_AUTH")]
    pub registry_auth: Option<PathBuf>,
    /// Extra CA certificates (PEM) to trust for registry TLS.
    #[arg(long = "registry-ca", value_name = "FILE")]
    pub registry_ca: Option<PathBuf>,
    /// Platforms to carry for multi-platform images, OS/ARCH[/VARIANT] (repeatable).
    #[arg(long = "platform", value_name = "OS/ARCH", default_value = "linux/amd64")]
    pub platforms: Vec<String>,
    /// Local image sources consulted before any registry: OCI image layout directories,
    /// `docker save` archives and oci-archive tars (repeatable).
    /// `[NAME=]PATH`: NAME names an OCI layout whose index.json tags carry no registry or repository.
    #[arg(long = "image-source", value_name = "[NAME=]PATH")]
    pub image_sources: Vec<String>,
    /// The local blob cache; a rebuild fetches nothing it already holds.
    #[arg(long, value_name = "DIR", env = "DELIVERY_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Parallel blob downloads.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
}

#[derive(Debug, Args)]
pub struct ImagesArgs {
    #[command(flatten)]
    pub kubefile: KubefileArgs,
    /// Print JSON Lines: {"type":"image","data":{"reference","source"}}.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub input: KubefileArgs,
    #[command(flatten)]
    pub fetch: FetchArgs,
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
    /// The installer-stub binary to embed; defaults to `installer-stub` beside `delivery`.
    ///
    /// It must be a Linux x86_64 or aarch64 executable that needs glibc 2.17 at most, so that
    /// bundles start on older hosts: the one `cargo zigbuild --release -p installer-stub
    /// --target x86_64-unknown-linux-gnu.2.17` builds. Any other stub is refused.
    #[arg(long, value_name = "FILE", env = "DELIVERY_STUB")]
    pub stub: Option<PathBuf>,
    /// Embed an installer stub that needs a glibc newer than 2.17 or is not a Linux x86_64 or
    /// aarch64 executable (e.g. the native one of a plain `cargo build`), with a warning
    /// instead of refusing: the bundle may not start on the customer's hosts. For development.
    #[arg(long, env = "DELIVERY_ALLOW_UNPORTABLE_STUB", value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_unportable_stub: bool,
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
