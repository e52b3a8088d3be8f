//! `init-config` and `check-config`: write and check a Clusterfile without contacting any host.

use anyhow::{anyhow, Result};
use terminal::json_lines::{self, Message};

use crate::cli::CheckConfigArgs;
use crate::clusterfile::{self, Auth, HostKeyPolicy, Role};

/// Print the commented example Clusterfile.
pub fn init() -> Result<()> {
    print!("{}", clusterfile::TEMPLATE);
    Ok(())
}

/// Load the Clusterfile and print every host it expands to.
pub fn check(args: &CheckConfigArgs) -> Result<()> {
    let cluster = clusterfile::load(&args.config).map_err(|errors| {
        let n = errors.0.len();
        anyhow!(
            "{errors}\n{n} error{} in {}",
            if n == 1 { "" } else { "s" },
            args.config.display()
        )
    })?;
    let registry = cluster.registry_host();
    for h in &cluster.hosts {
        let roles: Vec<&str> = [
            (Role::Master, "master"),
            (Role::Node, "node"),
            (Role::Registry, "registry"),
        ]
        .into_iter()
        .filter(|(r, _)| h.has_role(*r))
        .map(|(_, n)| n)
        .collect();
        let auth = match &h.ssh.auth {
            Auth::Key(p) => format!("key {}", p.display()),
            Auth::PasswordEnv(v) => format!("password from ${v}"),
            Auth::PasswordPrompt => "password prompt".to_string(),
        };
        let policy = match h.ssh.host_key_policy {
            HostKeyPolicy::Strict => "strict",
            HostKeyPolicy::AcceptNew => "accept-new",
        };
        if args.json {
            json_lines::print_line(&Message::Host(json_lines::ConfigHost {
                address: h.address.to_string(),
                hostname: h.hostname.as_deref(),
                roles,
                user: &h.ssh.user,
                port: h.ssh.port,
                auth,
                sudo: h.ssh.sudo,
                host_key_policy: policy,
                origin: h.origin.to_string(),
            }))?;
        } else {
            println!(
                "{:<16} {:<22} ssh {}, port {}, {auth}{}, host keys {policy}   ({})",
                h.address.to_string(),
                roles.join(","),
                h.ssh.user,
                h.ssh.port,
                if h.ssh.sudo { ", sudo" } else { "" },
                h.origin
            );
        }
    }
    if !args.json {
        println!(
            "cluster {}: {} hosts ({} masters, {} nodes); first master {}; registry mirror on {}:{}",
            cluster.name,
            cluster.hosts.len(),
            cluster.masters().count(),
            cluster.nodes().count(),
            cluster.first_master().address,
            registry.address,
            cluster.registry.port
        );
    }
    Ok(())
}
