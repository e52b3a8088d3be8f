//! `images`: the container images the running bundle carries, from its signed manifest.
//!
//! `--json` prints one line per image: `{"type":"image","data":{"name":...,"digest":...,
//! "media_type":...,"size":...,"platforms":[...],"source":...}}` (the manifest's `Image` record;
//! [`terminal::json_lines::Message::Image`]).

use anyhow::Result;
use terminal::json_lines::{self, Message};

use crate::cli::ImagesArgs;
use crate::own_bundle::open_verified;

pub fn run(args: &ImagesArgs) -> Result<()> {
    let v = open_verified(&args.trust, args.json)?;
    let images = &v.manifest().images;
    if args.json {
        for image in images {
            json_lines::print_line(&Message::Image(image))?;
        }
        return Ok(());
    }
    if images.is_empty() {
        terminal::log("this bundle carries no container images");
        return Ok(());
    }
    let platforms: Vec<String> = images
        .iter()
        .map(|i| {
            if i.platforms.is_empty() {
                "-".to_string()
            } else {
                i.platforms.join(",")
            }
        })
        .collect();
    let name_w = images.iter().map(|i| i.name.len()).max().unwrap_or(0).max(4);
    let platforms_w = platforms.iter().map(String::len).max().unwrap_or(0).max(9);
    let type_w = images.iter().map(|i| i.media_type.len()).max().unwrap_or(0).max(10);
    println!(
        "{:name_w$}  {:71}  {:>10}  {:platforms_w$}  {:type_w$}  SOURCE",
        "NAME", "DIGEST", "SIZE", "PLATFORMS", "MEDIA TYPE"
    );
    for (i, platforms) in images.iter().zip(&platforms) {
        let source = if i.source.is_empty() { "-" } else { i.source.as_str() };
        println!(
            "{:name_w$}  {}  {:>10}  {platforms:platforms_w$}  {:type_w$}  {source}",
            i.name,
            i.digest,
            terminal::bytes(i.size),
            i.media_type
        );
    }
    Ok(())
}
