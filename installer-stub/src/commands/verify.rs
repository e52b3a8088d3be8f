//! `verify`: the signature, then every byte, of the running bundle.

use anyhow::Result;
use terminal::json_lines::{self, Message};

use crate::cli::VerifyArgs;
use crate::own_bundle::open_verified;

pub fn run(args: &VerifyArgs) -> Result<()> {
    let verified = open_verified(&args.trust, args.json)?;
    let reporter = terminal::Reporter::new(args.json);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    verified.verify_contents(threads, &reporter)?;
    reporter.finish();
    let signer = verified.signer().fingerprint();
    if args.json {
        json_lines::print_line(&Message::Verified(json_lines::Verified {
            bundle: verified.path(),
            signer: signer.as_str(),
            origin_checked: verified.origin_checked(),
            bytes: verified.trailer().total_len,
        }))?;
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
