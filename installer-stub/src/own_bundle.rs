//! The bundle this process runs from: every `delivery.run` command reads its own file, found
//! through `/proc/self/exe` and opened only after its signature checks out against the trust
//! root the caller gave.

use anyhow::{Context, Result};
use bundle_format::{Bundle, Trust, Verified};

use crate::cli::TrustArgs;

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
