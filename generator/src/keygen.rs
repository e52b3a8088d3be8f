//! `delivery keygen`: a new signing key pair and the customer's allowed_signers line.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use bundle_format::{sshsig, SigningKey};

use crate::cli::KeygenArgs;
use crate::signing_key;
use bundle_format::io::write_atomic_mode;

pub fn run(args: &KeygenArgs) -> Result<()> {
    if args.principal.is_empty() || args.principal.contains(char::is_whitespace) {
        bail!("--principal must be one word without spaces, got `{}`", args.principal);
    }
    let with = |ext: &str| {
        let mut p = args.out.clone().into_os_string();
        p.push(ext);
        PathBuf::from(p)
    };
    let (private, public, allowed) = (with(".key"), with(".pub"), with(".allowed_signers"));
    for p in [&private, &public, &allowed] {
        if p.exists() && !args.force {
            bail!(
                "{} already exists: choose another --out or pass --force to replace it",
                p.display()
            );
        }
    }
    let key = SigningKey::generate(&args.principal).context("failed to generate a key")?;
    signing_key::write_pair(&key, &private, &public)?;
    let line = sshsig::allowed_signers_line(&args.principal, &key.public(), sshsig::NAMESPACE);
    write_atomic_mode(&allowed, line.as_bytes(), 0o644)
        .with_context(|| format!("failed to write {}", allowed.display()))?;
    println!("{}", key.public().fingerprint());
    terminal::log(format_args!(
        "wrote {} (keep it secret), {} and {} (give these to customers out of band)",
        private.display(),
        public.display(),
        allowed.display()
    ));
    Ok(())
}
