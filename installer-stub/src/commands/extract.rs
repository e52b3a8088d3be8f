//! `extract`: verify and unpack the running bundle into a directory.

use anyhow::Result;

use crate::cli::ExtractArgs;
use crate::own_bundle::open_verified;

pub fn run(args: &ExtractArgs) -> Result<()> {
    let verified = open_verified(&args.trust, false)?;
    let reporter = terminal::Reporter::new(false);
    let summary = verified.extract(&args.to, args.overwrite, &reporter)?;
    reporter.finish();
    println!(
        "extracted {} files, {} directories, {} symlinks ({}) to {}",
        summary.files,
        summary.dirs,
        summary.symlinks,
        terminal::bytes(summary.bytes),
        args.to.display()
    );
    Ok(())
}
