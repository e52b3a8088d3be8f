//! A `docker save` image into the cache: its config and layer tars as they are, checked against
//! their names and the config's `diff_ids`, plus the Docker v2 schema 2 manifest written for them.

use serde::{Deserialize, Serialize};

use bundle_format::digest::Digest;
use bundle_format::io::read_full;
use bundle_format::reference::Reference;

use super::super::cache::{Cache, StoreError};
use super::super::manifest::{DOCKER_CONFIG, DOCKER_LAYER, DOCKER_LAYER_GZIP, DOCKER_MANIFEST, MAX_CONFIG};
use super::super::FetchError;
use super::{digest_in_name, Kind, LocalStore};

const OCI_ZSTD_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

#[derive(Serialize)]
struct V2Manifest<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    config: V2Descriptor<'a>,
    layers: Vec<V2Descriptor<'a>>,
}

#[derive(Serialize)]
struct V2Descriptor<'a> {
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    size: u64,
    digest: String,
}

impl LocalStore {
    /// Copy the n-th image of a docker-archive into the cache: config and layers, checked
    /// against the names and `diff_ids` the archive gives them, plus a Docker v2 schema 2
    /// manifest written for them. Returns the manifest's digest and bytes.
    pub(crate) fn import_docker(
        &self,
        n: usize,
        cache: &Cache,
        reference: &Reference,
    ) -> Result<(Digest, Vec<u8>), FetchError> {
        let Kind::Docker { tar, images } = &self.kind else {
            unreachable!("import_docker is only called for a Found::Docker")
        };
        let image = &images[n];
        let mismatch = |what: String, digest: Digest, actual: String| FetchError::DigestMismatch {
            reference: reference.to_string(),
            what: format!("{what} from {}", self.path.display()),
            digest,
            actual,
        };
        let bad = |message: String| FetchError::BadLocalSource {
            path: self.path.clone(),
            message,
        };
        let config = tar.read_entry(&image.config, MAX_CONFIG)?;
        let config_digest = Digest::of(&config);
        if let Some(named) = digest_in_name(&image.config) {
            if named != config_digest {
                return Err(mismatch(
                    format!("config {}", image.config),
                    named,
                    config_digest.to_string(),
                ));
            }
        }
        #[derive(Deserialize)]
        struct RootFs {
            #[serde(default)]
            diff_ids: Vec<String>,
        }
        #[derive(Deserialize)]
        struct Config {
            rootfs: RootFs,
        }
        let parsed: Config =
            serde_json::from_slice(&config).map_err(|e| bad(format!("config {} is invalid: {e}", image.config)))?;
        if parsed.rootfs.diff_ids.len() != image.layers.len() {
            return Err(bad(format!(
                "config {} lists {} diff_ids but manifest.json lists {} layers",
                image.config,
                parsed.rootfs.diff_ids.len(),
                image.layers.len()
            )));
        }
        cache.store_bytes(&config_digest, &config)?;
        let mut layers = Vec::new();
        for (layer, diff_id) in image.layers.iter().zip(&parsed.rootfs.diff_ids) {
            let size = tar.entry(layer)?.1;
            let mut magic = [0u8; 4];
            let got = read_full(&mut tar.open_entry(layer)?, &mut magic).map_err(|e| tar.io(e))?;
            let media_type = match &magic[..got] {
                [0x1f, 0x8b, ..] => DOCKER_LAYER_GZIP,
                [0x28, 0xb5, 0x2f, 0xfd] => OCI_ZSTD_LAYER,
                _ => DOCKER_LAYER,
            };
            let expected = match digest_in_name(layer) {
                Some(d) => Some(d),
                None if media_type == DOCKER_LAYER => Some(
                    diff_id
                        .parse::<Digest>()
                        .map_err(|e| bad(format!("config {}: {e}", image.config)))?,
                ),
                None => None,
            };
            let digest = match expected {
                Some(d) if cache.lookup(&d, size).is_some() => d,
                _ => {
                    let mut r = tar.open_entry(layer)?;
                    match cache.store(&mut r, expected.as_ref().map(|d| (d, size)), &|_| {}) {
                        Ok(s) => s.digest,
                        Err(StoreError::Mismatch { actual, .. }) => {
                            let want = expected.expect("a mismatch needs an expected digest");
                            return Err(mismatch(format!("layer {layer}"), want, actual.to_string()));
                        }
                        Err(StoreError::Read(e)) => return Err(tar.io(e)),
                        Err(StoreError::Write { path, source }) => {
                            return Err(FetchError::Io {
                                path,
                                action: "write the image cache",
                                error: source,
                            })
                        }
                    }
                }
            };
            layers.push(V2Descriptor {
                media_type,
                size,
                digest: digest.to_string(),
            });
        }
        let m = V2Manifest {
            schema_version: 2,
            media_type: DOCKER_MANIFEST,
            config: V2Descriptor {
                media_type: DOCKER_CONFIG,
                size: config.len() as u64,
                digest: config_digest.to_string(),
            },
            layers,
        };
        let bytes = serde_json::to_vec(&m).expect("a manifest struct serialises");
        let digest = Digest::of(&bytes);
        cache.store_bytes(&digest, &bytes)?;
        Ok((digest, bytes))
    }
}
