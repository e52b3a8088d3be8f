//! The `kubernetes` object a Kubernetes bundle's hooks are rendered with (README, "Hooks"): the
//! Clusterfile's `[kubernetes]` with defaults, the version from `kubernetes.toml` and kubeadm's
//! discovery hash of the CA the installer made.

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct KubernetesVars {
    pub version: String,
    pub pod_cidr: String,
    pub service_cidr: String,
    pub service_ip: String,
    pub dns_domain: String,
    pub endpoint: String,
    pub endpoint_host: String,
    pub endpoint_port: u16,
    pub cert_sans: Vec<String>,
    pub ca_cert_hash: String,
    pub apiservers: Vec<String>,
}
