//! Image manifests and indexes as registries serve them: the four media types delivery
//! accepts (OCI manifest and index, Docker v2 schema 2 manifest and manifest list), how a
//! document's type is decided, and the descriptors it points at.
//!
//! The type comes from the document's own `mediaType` when it has one, else from the
//! `Content-Type` the registry sent, else from its shape (`manifests` makes an index, `config`
//! a manifest), as umoci writes manifests without `mediaType`. Docker schema 1 is refused:
//! it has no content-addressed config and containerd 1.7+ refuses it too.

use serde::Deserialize;

use bundle_format::digest::Digest;

use super::platform::Platform;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// The `Accept` header of manifest requests: every type delivery can use, best first.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// The largest manifest or index accepted (containerd's limit too).
pub const MAX_MANIFEST: u64 = 4 << 20;
/// The largest image config accepted.
pub const MAX_CONFIG: u64 = 16 << 20;

/// A pointer to a blob, as manifests and indexes write it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct RawDescriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: Option<String>,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<Platform>,
}

/// A checked descriptor: the digest is a sha256 digest.
#[derive(Debug, Clone)]
pub(crate) struct Descriptor {
    pub media_type: Option<String>,
    pub digest: Digest,
    pub size: u64,
    pub platform: Option<Platform>,
}

#[derive(Debug)]
pub(crate) enum Parsed {
    Index {
        media_type: String,
        manifests: Vec<Descriptor>,
    },
    Image {
        media_type: String,
        config: Descriptor,
        layers: Vec<Descriptor>,
    },
}

/// Why a document cannot be used.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Problem {
    /// Well-formed but of a kind delivery does not handle.
    Unsupported { media_type: String, why: String },
    /// Not a valid manifest or index.
    Invalid(String),
}

#[derive(Deserialize)]
struct Doc {
    #[serde(rename = "schemaVersion", default)]
    schema_version: Option<i64>,
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<RawDescriptor>,
    #[serde(default)]
    layers: Option<Vec<RawDescriptor>>,
    #[serde(default)]
    manifests: Option<Vec<RawDescriptor>>,
}

/// The media type without parameters (`; charset=utf-8`), lowercased.
pub(crate) fn bare_media_type(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

pub(crate) fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

pub(crate) fn is_manifest(media_type: &str) -> bool {
    media_type == OCI_MANIFEST || media_type == DOCKER_MANIFEST
}

fn schema1(media_type: &str) -> Problem {
    Problem::Unsupported {
        media_type: media_type.to_string(),
        why: "Docker schema 1 manifests are deprecated and not supported: push the image again with a current \
              client (or `skopeo copy --format v2s2`) to get a schema 2 or OCI manifest"
            .to_string(),
    }
}

/// Parse a manifest or index; `content_type` is what the registry sent, if anything.
pub(crate) fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Parsed, Problem> {
    let header = content_type.map(bare_media_type).filter(|t| !t.is_empty());
    if let Some(t) = header.as_deref() {
        if t == DOCKER_SCHEMA1 || t == DOCKER_SCHEMA1_SIGNED {
            return Err(schema1(t));
        }
    }
    let doc: Doc = serde_json::from_slice(bytes).map_err(|e| Problem::Invalid(format!("not a manifest: {e}")))?;
    if doc.schema_version == Some(1) {
        return Err(schema1(header.as_deref().unwrap_or(DOCKER_SCHEMA1)));
    }
    let known = |t: &str| is_index(t) || is_manifest(t);
    let media_type = match (&doc.media_type, header.as_deref()) {
        (Some(t), _) => t.clone(),
        (None, Some(t)) if known(t) => t.to_string(),
        (None, _) if doc.manifests.is_some() => OCI_INDEX.to_string(),
        (None, _) if doc.config.is_some() => OCI_MANIFEST.to_string(),
        (None, t) => {
            return Err(Problem::Invalid(format!(
                "a document of type {} with neither `manifests` nor `config`",
                t.unwrap_or("(none)")
            )))
        }
    };
    if media_type == DOCKER_SCHEMA1 || media_type == DOCKER_SCHEMA1_SIGNED {
        return Err(schema1(&media_type));
    }
    if doc.schema_version != Some(2) && known(&media_type) {
        return Err(Problem::Invalid(format!(
            "schemaVersion is {:?}, expected 2",
            doc.schema_version
        )));
    }
    if is_index(&media_type) {
        let manifests = doc
            .manifests
            .ok_or_else(|| Problem::Invalid("an index without `manifests`".into()))?;
        let manifests = manifests
            .into_iter()
            .map(|d| check(d, &media_type))
            .collect::<Result<_, _>>()?;
        Ok(Parsed::Index { media_type, manifests })
    } else if is_manifest(&media_type) {
        let config = doc
            .config
            .ok_or_else(|| Problem::Invalid("a manifest without `config`".into()))?;
        let config = check(config, &media_type)?;
        let layers = doc
            .layers
            .unwrap_or_default()
            .into_iter()
            .map(|d| check(d, &media_type))
            .collect::<Result<_, _>>()?;
        Ok(Parsed::Image {
            media_type,
            config,
            layers,
        })
    } else {
        Err(Problem::Unsupported {
            why: format!(
                "delivery handles OCI and Docker schema 2 image manifests and indexes ({OCI_MANIFEST}, {OCI_INDEX}, \
                 {DOCKER_MANIFEST}, {DOCKER_LIST})"
            ),
            media_type,
        })
    }
}

fn check(d: RawDescriptor, within: &str) -> Result<Descriptor, Problem> {
    let digest = d.digest.parse::<Digest>().map_err(|_| Problem::Unsupported {
        media_type: within.to_string(),
        why: format!(
            "descriptor digest `{}` is not sha256:<64 hex>; only sha256 is supported",
            d.digest
        ),
    })?;
    Ok(Descriptor {
        media_type: d.media_type,
        digest,
        size: d.size,
        platform: d.platform,
    })
}

/// The platform an image config declares, if it is an image config that declares one.
pub(crate) fn config_platform(config_media_type: Option<&str>, bytes: &[u8]) -> Option<Platform> {
    #[derive(Deserialize)]
    struct Config {
        os: Option<String>,
        architecture: Option<String>,
        variant: Option<String>,
    }
    let t = config_media_type.unwrap_or(OCI_CONFIG);
    if t != OCI_CONFIG && t != DOCKER_CONFIG {
        return None;
    }
    let c: Config = serde_json::from_slice(bytes).ok()?;
    Some(Platform {
        os: c.os?,
        architecture: c.architecture?,
        variant: c.variant.filter(|v| !v.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    #[test]
    fn decides_the_type_like_containerd() {
        let m = format!(r#"{{"schemaVersion":2,"config":{{"digest":"{D}","size":2}},"layers":[]}}"#);
        assert!(
            matches!(parse(m.as_bytes(), None), Ok(Parsed::Image { media_type, .. }) if media_type == OCI_MANIFEST)
        );
        assert!(matches!(
            parse(m.as_bytes(), Some("application/vnd.docker.distribution.manifest.v2+json; charset=utf-8")),
            Ok(Parsed::Image { media_type, .. }) if media_type == DOCKER_MANIFEST
        ));
        let i = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_LIST}","manifests":[{{"digest":"{D}","size":2,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}}]}}"#
        );
        match parse(i.as_bytes(), Some("application/json")).unwrap() {
            Parsed::Index { media_type, manifests } => {
                assert_eq!(media_type, DOCKER_LIST);
                assert_eq!(manifests[0].platform.as_ref().unwrap().to_string(), "linux/arm64/v8");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refuses_schema1_artifacts_and_other_digests() {
        let s1 = br#"{"schemaVersion":1,"name":"x","tag":"1","fsLayers":[]}"#;
        assert!(matches!(parse(s1, None), Err(Problem::Unsupported { .. })));
        assert!(matches!(
            parse(b"{}", Some(DOCKER_SCHEMA1_SIGNED)),
            Err(Problem::Unsupported { .. })
        ));
        let art = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.artifact.manifest.v1+json","blobs":[]}"#;
        assert!(matches!(parse(art, None), Err(Problem::Unsupported { .. })));
        let sha512 = format!(
            r#"{{"schemaVersion":2,"config":{{"digest":"sha512:{}","size":2}}}}"#,
            "a".repeat(128)
        );
        assert!(matches!(
            parse(sha512.as_bytes(), None),
            Err(Problem::Unsupported { .. })
        ));
        assert!(matches!(parse(b"not json", None), Err(Problem::Invalid(_))));
        assert!(matches!(
            parse(b"{\"schemaVersion\":2}", None),
            Err(Problem::Invalid(_))
        ));
    }

    #[test]
    fn reads_the_platform_of_image_configs_only() {
        let c = br#"{"architecture":"arm64","os":"linux","variant":"v8","rootfs":{}}"#;
        assert_eq!(
            config_platform(Some(OCI_CONFIG), c).unwrap().to_string(),
            "linux/arm64/v8"
        );
        assert_eq!(
            config_platform(Some("application/vnd.cncf.helm.config.v1+json"), c),
            None
        );
    }
}
