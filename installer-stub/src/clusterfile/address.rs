//! Host addresses as a Clusterfile writes them: one IP (v4 or v6) or DNS name ([`Address`]), or
//! an IPv4 range that [`expand`] turns into one address each, capped at [`MAX_RANGE`]; and the
//! name checks (DNS names, the cluster's name as a DNS label) that the rest of the parse and the
//! `[kubernetes]` table share. Plain functions of a string: positions and errors are the
//! walker's, which calls them.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

/// Most addresses one range may expand to (a /16).
pub const MAX_RANGE: u32 = 65_536;

/// Why a string is not an address or a DNS name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("`{0}` is not an IPv6 address")]
    NotIpv6(String),
    #[error("not a valid IP address or DNS name")]
    Length,
    #[error("`{0}` is not a valid IP address or DNS name")]
    NotAName(String),
    #[error("`{0}` is not a valid IP address")]
    NotAnIp(String),
}

/// A host's address: an IP (v4 or v6) or a DNS name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Address {
    Ip(IpAddr),
    Name(String),
}

/// An address as the host part of `HOST:PORT` (IPv6 in brackets).
pub fn endpoint_host(address: &str) -> String {
    if address.contains(':') {
        format!("[{address}]")
    } else {
        address.to_string()
    }
}

impl Address {
    /// Parses one IP address or DNS name (no ranges). Names compare case-insensitively, so they
    /// are stored in lowercase.
    pub fn parse(s: &str) -> Result<Address, NameError> {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Address::Ip(ip));
        }
        if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            return inner
                .parse::<IpAddr>()
                .map(Address::Ip)
                .map_err(|_| NameError::NotIpv6(s.to_string()));
        }
        check_dns_name(s)?;
        Ok(Address::Name(s.to_ascii_lowercase()))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Ip(ip) => ip.fmt(f),
            Address::Name(n) => f.write_str(n),
        }
    }
}

pub(super) enum AddressError {
    Address(NameError),
    Range(String),
}

/// Expands one `addresses` item: a single address, or an IPv4 range.
pub(super) fn expand(s: &str) -> Result<Vec<Address>, AddressError> {
    let s = s.trim();
    // A `-` after something that parses as IPv4 makes a range; DNS names may contain `-` too.
    if let Some((first, last)) = s.split_once('-') {
        if let Ok(start) = first.trim().parse::<Ipv4Addr>() {
            let last = last.trim();
            let end = if let Ok(end) = last.parse::<Ipv4Addr>() {
                end
            } else if let Ok(octet) = last.parse::<u8>() {
                let o = start.octets();
                Ipv4Addr::new(o[0], o[1], o[2], octet)
            } else {
                return Err(AddressError::Range(format!(
                    "`{last}` is neither an IPv4 address nor a last octet (0-255)"
                )));
            };
            let (a, b) = (u32::from(start), u32::from(end));
            if a > b {
                return Err(AddressError::Range(format!("reversed: {start} comes after {end}")));
            }
            if b - a >= MAX_RANGE {
                return Err(AddressError::Range(format!(
                    "{} addresses, more than {MAX_RANGE}",
                    u64::from(b - a) + 1
                )));
            }
            return Ok((a..=b).map(|n| Address::Ip(IpAddr::V4(Ipv4Addr::from(n)))).collect());
        }
        if first.parse::<IpAddr>().is_ok() {
            return Err(AddressError::Range("only IPv4 ranges are supported".into()));
        }
    }
    Address::parse(s).map(|a| vec![a]).map_err(AddressError::Address)
}

pub(super) fn check_dns_name(s: &str) -> Result<(), NameError> {
    let name = s.strip_suffix('.').unwrap_or(s);
    if name.is_empty() || name.len() > 253 {
        return Err(NameError::Length);
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !ok {
            return Err(NameError::NotAName(s.to_string()));
        }
    }
    // "10.0.0.300" would otherwise pass as a name.
    if name
        .rsplit('.')
        .next()
        .is_some_and(|l| l.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(NameError::NotAnIp(s.to_string()));
    }
    Ok(())
}

/// RFC 1123 label (a DNS label).
pub(super) fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_expand() {
        let list = |s: &str| {
            expand(s)
                .ok()
                .unwrap()
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(list("10.0.0.21-23"), ["10.0.0.21", "10.0.0.22", "10.0.0.23"]);
        assert_eq!(
            list("10.0.0.254-10.0.1.1"),
            ["10.0.0.254", "10.0.0.255", "10.0.1.0", "10.0.1.1"]
        );
        assert_eq!(list("10.0.0.5-10.0.0.5"), ["10.0.0.5"]);
        assert_eq!(expand("10.0.0.0-10.0.255.255").ok().unwrap().len(), 65_536);
        assert_eq!(list("node-1.example.com"), ["node-1.example.com"]);
        assert_eq!(list("fd00::1"), ["fd00::1"]);
        assert!(matches!(expand("10.0.0.0-10.1.0.0"), Err(AddressError::Range(_))));
        assert!(matches!(expand("10.0.0.9-3"), Err(AddressError::Range(_))));
        assert!(matches!(expand("10.0.0.1-300"), Err(AddressError::Range(_))));
        assert!(matches!(expand("fd00::1-fd00::3"), Err(AddressError::Range(_))));
        assert!(matches!(expand("10.0.0.300"), Err(AddressError::Address(_))));
        assert!(matches!(expand("bad_name"), Err(AddressError::Address(_))));
    }
}
