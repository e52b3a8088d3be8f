//! `info` and `list`: what the running bundle holds, from its signed manifest.

use anyhow::Result;
use bundle_format::manifest::{Data, Entry};
use terminal::json_lines::{self, Message};

use crate::cli::{InfoArgs, ListArgs};
use crate::own_bundle::open_verified;

pub fn info(args: &InfoArgs) -> Result<()> {
    let v = open_verified(&args.trust, args.json)?;
    let m = v.manifest();
    let t = v.trailer();
    let b = &m.bundle;
    let files = m.entries.iter().filter(|e| matches!(e, Entry::File { .. })).count();
    if args.json {
        json_lines::print_line(&Message::Info(json_lines::Info {
            name: &b.name,
            version: &b.version,
            created: &b.created,
            labels: &b.labels,
            env: &b.env,
            apps: &b.apps,
            launch: b.launch.as_ref(),
            bases: &b.bases,
            downloads: &b.downloads,
            format_version: m.format_version,
            signer: v.signer().fingerprint().as_str(),
            origin_checked: v.origin_checked(),
            entries: m.entries.len(),
            files,
            sizes: json_lines::Sizes {
                total: t.total_len,
                stub: t.stub_len,
                stream_compressed: t.stream_len(),
                stream_uncompressed: m.raw_stream_len(),
                blobs: t.blobs_len(),
                manifest: t.manifest_len(),
            },
            frames: m.frames.len(),
            blobs: m.blobs.len(),
        }))?;
        return Ok(());
    }
    let sz = terminal::bytes;
    println!("name:       {}", b.name);
    println!("version:    {}", b.version);
    println!("created:    {}", b.created);
    for (k, val) in &b.labels {
        println!("label:      {k}={val}");
    }
    for base in &b.bases {
        println!("based on:   {} {} (key {})", base.name, base.version, base.key);
    }
    println!(
        "signed by:  {}{}",
        v.signer().fingerprint(),
        if v.origin_checked() {
            " (trusted key)"
        } else {
            " (origin not checked)"
        }
    );
    println!("entries:    {} ({files} files)", m.entries.len());
    println!(
        "size:       {} total: stub {}, stream {} ({} uncompressed, {} frames), stored blobs {} ({}), manifest {}",
        sz(t.total_len),
        sz(t.stub_len),
        sz(t.stream_len()),
        sz(m.raw_stream_len()),
        m.frames.len(),
        sz(t.blobs_len()),
        m.blobs.len(),
        sz(t.manifest_len())
    );
    if let Some(launch) = &b.launch {
        println!("launch:     {}", serde_json::to_string(launch)?);
    }
    for d in &b.downloads {
        println!("downloaded: {} sha256:{}", d.url, d.sha256);
    }
    Ok(())
}

pub fn list(args: &ListArgs) -> Result<()> {
    let v = open_verified(&args.trust, args.json)?;
    for e in &v.manifest().entries {
        if args.json {
            json_lines::print_line(&Message::Entry(e))?;
            continue;
        }
        match e {
            Entry::Dir { path, mode } => println!("d {mode:04o} {:>12} {:71} {path}/", "-", "-"),
            Entry::File {
                path,
                mode,
                size,
                sha256,
                data,
            } => {
                let kind = if matches!(data, Data::Blob(_)) { 'b' } else { 'f' };
                println!("{kind} {mode:04o} {size:>12} {sha256} {path}");
            }
            Entry::Symlink { path, target } => println!("l 0777 {:>12} {:71} {path} -> {target}", "-", "-"),
        }
    }
    Ok(())
}
