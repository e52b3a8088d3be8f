//! Target platforms (`linux/amd64`, `linux/arm64/v8`): the `--platform` syntax and the rule that
//! picks one child manifest of an image index per wanted platform.
//!
//! Matching follows containerd's default matcher closely enough for delivery: `os` and
//! `architecture` must be equal (after the usual aliases: `x86_64` is `amd64`, `aarch64` is
//! `arm64`); a wanted variant must be equal too, where `arm64` without a variant means `v8` and
//! `arm` without a variant means `v7`. A wanted platform without a variant prefers a child with
//! the default variant, then takes the first child in index order.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

/// One OS/architecture(/variant) combination.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

/// A `--platform` value that is not `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid platform `{0}`: expected os/arch[/variant], for example linux/amd64 or linux/arm64/v8")]
pub struct PlatformParseError(pub String);

impl Platform {
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        Platform {
            os: os.to_string(),
            architecture: architecture.to_string(),
            variant: variant.map(str::to_string),
        }
    }

    /// `linux/amd64`, the default target.
    pub fn linux_amd64() -> Self {
        Platform::new("linux", "amd64", None)
    }

    /// Whether an image for `have` runs on `self` (the wanted platform).
    pub fn matches(&self, have: &Platform) -> bool {
        if normalise_os(&self.os) != normalise_os(&have.os) {
            return false;
        }
        let arch = normalise_arch(&self.architecture);
        if arch != normalise_arch(&have.architecture) {
            return false;
        }
        match &self.variant {
            None => true,
            Some(want) => {
                let have_variant = have.variant.as_deref().or(default_variant(arch));
                Some(want.as_str()) == have_variant
            }
        }
    }

    /// The index of the best child for `self` among `children`, or `None`.
    pub fn select(&self, children: &[Option<Platform>]) -> Option<usize> {
        let candidates: Vec<usize> = children
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.as_ref().filter(|p| self.matches(p)).map(|_| i))
            .collect();
        if self.variant.is_none() {
            let default = default_variant(normalise_arch(&self.architecture));
            let preferred = candidates.iter().copied().find(|&i| {
                let v = children[i].as_ref().and_then(|p| p.variant.as_deref());
                v.is_none() || v == default
            });
            if preferred.is_some() {
                return preferred;
            }
        }
        candidates.first().copied()
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = PlatformParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || PlatformParseError(s.to_string());
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(|p| ok(p)) {
            return Err(bad());
        }
        let os = parts[0].to_ascii_lowercase();
        let arch = normalise_arch(&parts[1].to_ascii_lowercase()).to_string();
        let variant = parts.get(2).map(|v| v.to_ascii_lowercase());
        Ok(Platform {
            os,
            architecture: arch,
            variant,
        })
    }
}

fn normalise_os(os: &str) -> &str {
    if os.eq_ignore_ascii_case("darwin") {
        "darwin"
    } else {
        os
    }
}

fn normalise_arch(arch: &str) -> &str {
    match arch {
        "x86_64" | "x86-64" => "amd64",
        "aarch64" => "arm64",
        "armhf" => "arm",
        "i386" => "386",
        other => other,
    }
}

fn default_variant(arch: &str) -> Option<&'static str> {
    match arch {
        "arm64" => Some("v8"),
        "arm" => Some("v7"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_prints() {
        assert_eq!(p("linux/amd64").to_string(), "linux/amd64");
        assert_eq!(p("linux/x86_64"), Platform::linux_amd64());
        assert_eq!(p("linux/aarch64/v8").to_string(), "linux/arm64/v8");
        for bad in ["", "linux", "linux/", "/amd64", "linux/amd64/v8/x", "linux/am d64"] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
    }

    #[test]
    fn variant_defaults_follow_containerd() {
        assert!(p("linux/arm64/v8").matches(&p("linux/arm64")));
        assert!(p("linux/arm64").matches(&p("linux/arm64/v8")));
        assert!(!p("linux/arm/v6").matches(&p("linux/arm/v7")));
        assert!(p("linux/arm/v7").matches(&p("linux/arm")));
        assert!(!p("linux/amd64").matches(&p("linux/arm64")));
        assert!(!p("linux/amd64").matches(&p("windows/amd64")));
    }

    #[test]
    fn select_prefers_the_default_variant() {
        let children = vec![
            Some(p("linux/arm/v6")),
            Some(p("linux/arm/v7")),
            None,
            Some(p("linux/amd64")),
        ];
        assert_eq!(p("linux/arm").select(&children), Some(1));
        assert_eq!(p("linux/arm/v6").select(&children), Some(0));
        assert_eq!(p("linux/amd64").select(&children), Some(3));
        assert_eq!(p("linux/s390x").select(&children), None);
    }
}
