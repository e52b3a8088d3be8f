//! The Clusterfile's `[kubernetes]` table: the networks and names of a kubeadm cluster, their
//! defaults, and the checks on them. The Clusterfile parser walks the TOML and reports at
//! file:line:column; this module says what each key accepts and why a value is refused.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

/// The keys of `[kubernetes]`.
pub const KEYS: &[&str] = &[
    "pod_cidr",
    "service_cidr",
    "dns_domain",
    "control_plane_endpoint",
    "cert_sans",
];

/// Why a value is refused, and how to write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub reason: String,
    pub hint: &'static str,
}

/// The Clusterfile's own checks of names, the same as for its hosts: a DNS name, and an
/// address (an IP, a bracketed IPv6 or a DNS name). Each returns why a string is not one.
pub struct NameRules {
    pub dns_name: fn(&str) -> Result<(), String>,
    pub address: fn(&str) -> Result<(), String>,
}

/// The `[kubernetes]` table: networks and names of a kubeadm cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Kubernetes {
    pub pod_cidr: Cidr,
    pub service_cidr: Cidr,
    pub dns_domain: String,
    /// Where kubelets and kubectl reach the API servers: a name every master resolves to
    /// itself and every node to its local balancer (127.0.0.1), or an address of the user's.
    pub endpoint_host: String,
    pub endpoint_port: u16,
    /// More names and addresses for the API server certificate.
    pub cert_sans: Vec<String>,
}

impl Default for Kubernetes {
    fn default() -> Self {
        Kubernetes {
            pod_cidr: "10.244.0.0/16".parse().expect("valid"),
            service_cidr: "10.96.0.0/12".parse().expect("valid"),
            dns_domain: "cluster.local".into(),
            endpoint_host: "apiserver.cluster.local".into(),
            endpoint_port: 6443,
            cert_sans: Vec::new(),
        }
    }
}

/// An IP network, `10.244.0.0/16`: host bits zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub ip: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    fn bits(ip: IpAddr) -> (u128, u8) {
        match ip {
            IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
            IpAddr::V6(a) => (u128::from(a), 128),
        }
    }

    fn mask(&self) -> u128 {
        let (_, width) = Cidr::bits(self.ip);
        let host = u32::from(width - self.prefix);
        let all = if width == 32 { u128::from(u32::MAX) } else { u128::MAX };
        all & !(u128::MAX.checked_shr(128 - host).unwrap_or(0) & all)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let (a, w1) = Cidr::bits(self.ip);
        let (b, w2) = Cidr::bits(ip);
        w1 == w2 && (a & self.mask()) == (b & self.mask())
    }

    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.contains(other.ip) || other.contains(self.ip)
    }

    /// The first address after the network address (`10.96.0.1` for `10.96.0.0/12`): the
    /// `kubernetes` service's cluster IP.
    pub fn first_host(&self) -> IpAddr {
        match self.ip {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a).wrapping_add(1))),
            IpAddr::V6(a) => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(a).wrapping_add(1))),
        }
    }
}

/// Why a string is not a network (`ADDRESS/PREFIX`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("it has no /PREFIX")]
    NoPrefix,
    #[error("`{0}` is not an IP address")]
    NotAnIp(String),
    #[error("the prefix must be 1 to {width}")]
    Prefix { width: u8 },
    #[error("host bits are set: the network is {network}/{prefix}")]
    HostBits { network: IpAddr, prefix: u8 },
}

impl std::str::FromStr for Cidr {
    type Err = CidrError;
    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let (ip, prefix) = s.split_once('/').ok_or(CidrError::NoPrefix)?;
        let ip: IpAddr = ip.parse().map_err(|_| CidrError::NotAnIp(ip.to_string()))?;
        let width = if ip.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= width && *p > 0)
            .ok_or(CidrError::Prefix { width })?;
        let c = Cidr { ip, prefix };
        let (bits, _) = Cidr::bits(ip);
        if bits & !c.mask() != 0 {
            let net = match ip {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from((bits & c.mask()) as u32)),
                IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::from(bits & c.mask())),
            };
            return Err(CidrError::HostBits { network: net, prefix });
        }
        Ok(c)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.ip, self.prefix)
    }
}

impl Kubernetes {
    /// Sets one string-valued key (every key of [`KEYS`] but `cert_sans`).
    pub fn set(&mut self, key: &str, value: &str, rules: &NameRules) -> Result<(), Invalid> {
        match key {
            "pod_cidr" | "service_cidr" => {
                let c = value.parse::<Cidr>().map_err(|reason| Invalid {
                    reason: reason.to_string(),
                    hint: "write a network as ADDRESS/PREFIX, e.g. \"10.244.0.0/16\"",
                })?;
                if key == "pod_cidr" {
                    self.pod_cidr = c;
                } else {
                    self.service_cidr = c;
                }
            }
            "dns_domain" => {
                (rules.dns_name)(value).map_err(|reason| Invalid {
                    reason,
                    hint: "write a DNS domain such as \"cluster.local\"",
                })?;
                self.dns_domain = value.to_ascii_lowercase();
            }
            "control_plane_endpoint" => {
                let parsed = value.rsplit_once(':').and_then(|(h, p)| {
                    let port = p.parse::<u16>().ok().filter(|p| *p != 0)?;
                    let host = h.trim_start_matches('[').trim_end_matches(']');
                    (rules.address)(host).ok()?;
                    Some((host.to_string(), port))
                });
                let Some((host, port)) = parsed else {
                    return Err(Invalid {
                        reason: "it is not HOST:PORT".into(),
                        hint: "e.g. \"apiserver.cluster.local:6443\" (the default: nodes reach it through their local balancer)",
                    });
                };
                (self.endpoint_host, self.endpoint_port) = (host, port);
            }
            _ => unreachable!("set is called with the string keys of KEYS, got `{key}`"),
        }
        Ok(())
    }

    /// Adds one name or address of `cert_sans`.
    pub fn add_cert_san(&mut self, value: &str, rules: &NameRules) -> Result<(), Invalid> {
        (rules.address)(value).map_err(|reason| Invalid {
            reason,
            hint: "write a DNS name or an IP address",
        })?;
        self.cert_sans.push(value.to_string());
        Ok(())
    }

    /// Why `service_cidr` cannot be used with `pod_cidr`: they overlap.
    pub fn overlap(&self) -> Option<Invalid> {
        self.pod_cidr.overlaps(&self.service_cidr).then(|| Invalid {
            reason: format!("it overlaps pod_cidr {}", self.pod_cidr),
            hint: "pick two networks that do not overlap, e.g. pods 10.244.0.0/16 and services 10.96.0.0/12",
        })
    }

    /// The networks (`pod_cidr`, `service_cidr`) that contain a host's address: pods or
    /// services would shadow it. Each with its key and why.
    pub fn shadowing(&self, host: IpAddr) -> Vec<(&'static str, Cidr, Invalid)> {
        [("pod_cidr", self.pod_cidr), ("service_cidr", self.service_cidr)]
            .into_iter()
            .filter(|(_, c)| c.contains(host))
            .map(|(key, c)| {
                let why = Invalid {
                    reason: format!("it contains the address of host {host}: pods or services would shadow it"),
                    hint: "choose a network that none of the hosts is in",
                };
                (key, c, why)
            })
            .collect()
    }
}
