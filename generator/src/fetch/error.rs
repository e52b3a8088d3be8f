//! [`FetchError`]: every way fetching an image can fail, each naming the image, where it was
//! fetched from, and what to do.

use std::io;
use std::path::PathBuf;

use bundle_format::digest::Digest;

/// Why an image could not be fetched. Each names the image, where it was fetched from, and
/// what to do.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("image {reference}: {what} not found at {endpoint}: check the name and tag, and that the registry (or mirror) holds it")]
    NotFound {
        reference: String,
        endpoint: String,
        what: String,
    },
    #[error("image {reference}: {endpoint} refused access: {hint}")]
    Unauthorized {
        reference: String,
        endpoint: String,
        hint: String,
    },
    #[error("image {reference}: {what} does not match its digest {digest} (got {actual}): the source is corrupt or was tampered with; nothing was cached")]
    DigestMismatch {
        reference: String,
        /// The object and where it came from: `blob sha256:... from https://host/v2/repo`.
        what: String,
        digest: Digest,
        actual: String,
    },
    #[error("image {reference}: TLS with {endpoint} failed: {message}; {hint}")]
    Tls {
        reference: String,
        endpoint: String,
        message: String,
        hint: String,
    },
    #[error("image {reference}: cannot fetch from {endpoint}: {message}; {hint}")]
    Connect {
        reference: String,
        endpoint: String,
        message: String,
        hint: String,
    },
    #[error("image {reference} has no manifest for {}; it has {}: pick --platform from those, or an image built for the platform", .wanted.join(", "), if .available.is_empty() { "none".to_string() } else { .available.join(", ") })]
    NoPlatform {
        reference: String,
        wanted: Vec<String>,
        available: Vec<String>,
    },
    #[error("image {reference}: {what} has media type {media_type}, which is not supported: {why}")]
    UnsupportedMediaType {
        reference: String,
        what: String,
        media_type: String,
        why: String,
    },
    #[error("image {reference}: {what} is invalid: {message}")]
    BadManifest {
        reference: String,
        what: String,
        message: String,
    },
    #[error("image {reference}: {what} is larger than the {limit}-byte limit")]
    TooLarge {
        reference: String,
        what: String,
        limit: u64,
    },
    #[error("image {reference}: {endpoint} answered HTTP {status} for {what}: {message}")]
    Http {
        reference: String,
        endpoint: String,
        status: u16,
        what: String,
        message: String,
    },
    #[error("failed to {action} {}: {error}", .path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        error: io::Error,
    },
    #[error("{}:{line}:{column}: {message}", .path.display())]
    BadAuthFile {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("CA file {}: {message}", .path.display())]
    BadCaFile { path: PathBuf, message: String },
    #[error("image source {}: {message}", .path.display())]
    BadLocalSource { path: PathBuf, message: String },
}

impl FetchError {
    /// The image the error is about (its normalised full reference), if it is about one.
    pub fn reference(&self) -> Option<&str> {
        match self {
            FetchError::NotFound { reference, .. }
            | FetchError::Unauthorized { reference, .. }
            | FetchError::DigestMismatch { reference, .. }
            | FetchError::Tls { reference, .. }
            | FetchError::Connect { reference, .. }
            | FetchError::NoPlatform { reference, .. }
            | FetchError::UnsupportedMediaType { reference, .. }
            | FetchError::BadManifest { reference, .. }
            | FetchError::TooLarge { reference, .. }
            | FetchError::Http { reference, .. } => Some(reference),
            FetchError::Io { .. }
            | FetchError::BadAuthFile { .. }
            | FetchError::BadCaFile { .. }
            | FetchError::BadLocalSource { .. } => None,
        }
    }
}
