//! The Kubernetes bundle's installer-side pieces, outside the generic installer (issue 13):
//!
//! - [`bundle`]: `kubernetes.toml`, the file that makes a bundle a Kubernetes bundle;
//! - [`config`]: the Clusterfile's `[kubernetes]` table (networks, names, endpoint), its
//!   defaults and its checks;
//! - [`vars`]: the `kubernetes` object the bundle's hooks are rendered with;
//! - [`pki`]: the cluster's 100-year PKI and kubeadm's kubeconfigs (`cert --list|--renew`);
//! - [`lb`]: the node-local API server balancer and its service (`lb serve|start|stop`).
//!
//! The installer stub adapts these to its engine (`installer-stub/src/kinds/kubernetes.rs`) and
//! its command line; nothing here knows about SSH, the journal or clap. Errors are typed, one
//! enum per concern, each naming the file or address it failed on.

pub mod bundle;
pub mod config;
pub mod lb;
pub mod os;
pub mod pki;
pub mod vars;
