//! `delivery verify`: check a bundle completely without executing any of it.

use anyhow::Result;
use bundle_format::{Bundle, Trust};

use crate::cli::VerifyArgs;

pub fn run(args: &VerifyArgs) -> Result<()> {
    let trust = Trust::from_args(args.key.as_deref(), args.fingerprint.as_deref())?;
    let verified = Bundle::open(&args.bundle)?.verify_signature(&trust)?;
    let signer = verified.signer().fingerprint();
    if !verified.origin_checked() && !args.json {
        terminal::log(format_args!(
            "warning: origin not checked (no --key or --fingerprint): signed by {signer}"
        ));
    }
    let reporter = terminal::Reporter::new(args.json);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    verified.verify_contents(threads, &reporter)?;
    reporter.finish();
    if args.json {
        let data = serde_json::json!({
            "bundle": args.bundle,
            "signer": signer.as_str(),
            "origin_checked": verified.origin_checked(),
            "bytes": verified.trailer().total_len,
        });
        println!("{}", serde_json::json!({"type": "verified", "data": data}));
    } else {
        println!("OK {} signed by {signer}", args.bundle.display());
    }
    Ok(())
}
