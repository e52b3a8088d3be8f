//! `delivery verify`: check a bundle completely without executing any of it.

use anyhow::Result;
use bundle_format::{Bundle, Trust};
use terminal::json_lines::{self, Message};

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
        json_lines::print_line(&Message::Verified(json_lines::Verified {
            bundle: &args.bundle,
            signer: signer.as_str(),
            origin_checked: verified.origin_checked(),
            bytes: verified.trailer().total_len,
        }))?;
    } else {
        println!("OK {} signed by {signer}", args.bundle.display());
    }
    Ok(())
}
