//! `registry serve`: the bundle's images as a read-only OCI registry, served straight from the
//! bundle file. The signature is checked, then (by default) every byte; an index of the image
//! blobs is built from the signed manifest ([`index`]); then the distribution API ([`api`]) is
//! served over a small HTTP/1.1 server ([`http`]) that sends blob bytes from where they sit in
//! the file, through a fixed pool of buffers (sendfile(2) when the pool is in use). Nothing is
//! extracted, and memory stays bounded (at most 16 MiB of buffers) whatever the blob sizes.

pub(crate) mod api;
pub(crate) mod http;
pub(crate) mod index;
pub(crate) mod probe;
pub mod service;

use anyhow::{Context, Result};

use crate::cli::ServeArgs;
use crate::own_bundle::open_verified;

pub fn serve(args: &ServeArgs) -> Result<()> {
    let verified = open_verified(&args.trust, false)?;
    if args.no_verify_contents {
        terminal::log(
            "warning: --no-verify-contents: blobs are served without checking them against the signed manifest",
        );
    } else {
        let reporter = terminal::Reporter::new(false);
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        verified.verify_contents(threads, &reporter)?;
        reporter.finish();
    }
    let index = index::Index::build(verified.manifest(), verified.trailer())
        .with_context(|| format!("failed to index the images of {}", verified.path().display()))?;
    let file = verified
        .file()
        .try_clone()
        .with_context(|| format!("failed to reopen {}", verified.path().display()))?;
    // The manifest (every entry of the payload) is not needed any more.
    drop(verified);
    let listener = std::net::TcpListener::bind(args.listen).with_context(|| {
        format!(
            "failed to listen on {}: is another registry running there?",
            args.listen
        )
    })?;
    let addr = listener.local_addr().context("failed to read the listening address")?;
    terminal::log(format_args!(
        "serving {} images ({} blobs) on {addr}",
        index.images(),
        index.blobs()
    ));
    let server = http::Server::new(api::Api::new(index), file, limits(args), args.access_log);
    server.run(listener)
}

/// The server's limits, from `registry serve`'s flags.
fn limits(args: &ServeArgs) -> http::Limits {
    let count = |n: u32| usize::try_from(n).expect("at most 65536");
    http::Limits {
        max_connections: count(args.max_connections),
        max_per_address: args.max_connections_per_address.map(count),
        timeout: std::time::Duration::from_secs(args.timeout),
        min_rate: args.min_rate << 10,
        ..http::Limits::default()
    }
}
