//! `verify`: the signature, then every byte, of the running bundle.

use anyhow::{Context, Result};
use bundle_format::{Bundle, Trust, Verified};

use crate::cli::{TrustArgs, VerifyArgs};

/// The file this process was started from: the bundle itself.
pub(crate) fn own_path() -> Result<std::path::PathBuf> {
    std::env::current_exe().context("failed to locate this bundle's own file (/proc/self/exe)")
}

/// Open the running bundle and check its signature against the caller's trust root.
pub(crate) fn open_verified(trust: &TrustArgs, quiet: bool) -> Result<Verified> {
    let path = own_path()?;
    let trust = Trust::from_args(trust.key.as_deref(), trust.fingerprint.as_deref())?;
    let verified = Bundle::open(&path)?.verify_signature(&trust)?;
    if !verified.origin_checked() && !quiet {
        terminal::log(format_args!(
            "warning: origin not checked: signed by {}; compare it with the vendor's fingerprint or pass --key vendor.pub",
            verified.signer().fingerprint()
        ));
    }
    Ok(verified)
}

pub fn run(args: &VerifyArgs) -> Result<()> {
    let verified = open_verified(&args.trust, args.json)?;
    let reporter = terminal::Reporter::new(args.json);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    verified.verify_contents(threads, &reporter)?;
    reporter.finish();
    let signer = verified.signer().fingerprint();
    if args.json {
        let data = serde_json::json!({
            "bundle": verified.path(),
            "signer": signer.as_str(),
            "origin_checked": verified.origin_checked(),
            "bytes": verified.trailer().total_len,
        });
        println!("{}", serde_json::json!({"type": "verified", "data": data}));
    } else {
        let origin = if verified.origin_checked() {
            "trusted key"
        } else {
            "embedded key only"
        };
        println!(
            "OK {} ({}) signed by {signer} [{origin}]",
            verified.path().display(),
            terminal::bytes(verified.trailer().total_len)
        );
    }
    Ok(())
}
