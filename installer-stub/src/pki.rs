//! `cert --list|--renew`: the Kubernetes PKI's certificates ([`kubernetes::pki`]) as a table
//! or JSON Lines.

use anyhow::Result;
use kubernetes::pki::{self, VALIDITY_DAYS};
use terminal::json_lines::{self, Message};

use crate::cli::CertArgs;
use crate::kinds::kubernetes::StubOs;

/// `cert --list` / `cert --renew`.
pub fn run(args: &CertArgs) -> Result<()> {
    let dir = &args.dir;
    if args.renew {
        let report = pki::renew(&StubOs, dir)?;
        if args.json {
            json_lines::print_line(&Message::Renewed(json_lines::Renewed {
                created: &report.created,
                reissued: &report.reissued,
                kept: &report.kept,
            }))?;
        } else {
            println!(
                "renewed {} leaf certificate(s) in {} for {} years; CAs kept: {}",
                report.reissued.len(),
                dir.display(),
                VALIDITY_DAYS / 365,
                report.kept.join(", ")
            );
            println!("restart the control plane on this master to load them, and run this on every master");
        }
    }
    let certs = pki::list(dir)?;
    if args.json {
        for c in &certs {
            json_lines::print_line(&Message::Certificate(json_lines::Certificate {
                name: &c.name,
                subject: &c.subject,
                issuer: &c.issuer,
                not_after: &c.not_after,
                days_left: c.days_left,
                ca: c.ca,
                sans: &c.sans,
            }))?;
        }
        return Ok(());
    }
    if args.renew {
        println!();
    }
    println!(
        "{:<26} {:<30} {:<16} {:<26} {:>9}",
        "CERTIFICATE", "SUBJECT", "ISSUER", "EXPIRES", "DAYS LEFT"
    );
    for c in &certs {
        println!(
            "{:<26} {:<30} {:<16} {:<26} {:>9}{}",
            c.name,
            c.subject,
            c.issuer,
            c.not_after,
            c.days_left,
            if c.ca { "  CA" } else { "" }
        );
    }
    Ok(())
}
