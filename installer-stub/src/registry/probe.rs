//! The registry's health, as a client sees it: `GET /v2/`, then `HEAD` of every image's
//! manifest by its original name (with containerd's `?ns=<registry>`), over plain HTTP.
//! `registry start` waits on it, and the installer checks the registry host with it.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bundle_format::reference::Reference;

/// Status code of one request (no body is read).
pub fn status(endpoint: &str, method: &str, path: &str) -> Result<u16> {
    let addr = endpoint
        .to_socket_addrs()
        .with_context(|| format!("registry address {endpoint} does not resolve"))?
        .next()
        .with_context(|| format!("registry address {endpoint} does not resolve"))?;
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .with_context(|| format!("the registry at {endpoint} does not answer"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut w = &stream;
    write!(
        w,
        "{method} {path} HTTP/1.1\r\nHost: {endpoint}\r\nAccept: application/vnd.oci.image.index.v1+json, \
         application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, \
         application/vnd.docker.distribution.manifest.v2+json\r\nConnection: close\r\n\r\n"
    )?;
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .with_context(|| format!("the registry at {endpoint} closed the connection"))?;
    let code = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("the registry at {endpoint} answered `{}`", line.trim()))?;
    Ok(code)
}

/// Checks the registry answers for every image; returns how many were checked.
pub fn registry(endpoint: &str, images: &[String]) -> Result<usize> {
    let code = status(endpoint, "GET", "/v2/")?;
    if code != 200 {
        bail!("the registry at {endpoint} answered {code} to GET /v2/");
    }
    for name in images {
        let r: Reference = name
            .parse()
            .map_err(|e| anyhow::anyhow!("image name {name} in the bundle: {e}"))?;
        let path = format!("/v2/{}/manifests/{}?ns={}", r.repository, r.manifest_ref(), r.registry);
        let code = status(endpoint, "HEAD", &path)?;
        if code != 200 {
            bail!("the registry at {endpoint} answered {code} for {name} (HEAD {path})");
        }
    }
    Ok(images.len())
}
