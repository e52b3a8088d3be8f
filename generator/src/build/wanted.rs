//! The images a bundle must carry: every image its files name (found by `discover`), less those
//! `--ignore-image` leaves out and those the base bundle already carries; and the loud warning
//! when files that usually name images name none.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use bundle_format::manifest::Image;
use bundle_format::reference::Reference;
use bundle_format::write::InputEntry;

use crate::discover::{self, Found};

/// Every image the bundle's files name, less those ignored and those the base already carries.
pub(super) fn wanted_images(
    entries: &BTreeMap<String, InputEntry>,
    ignore: &[String],
    base_images: &[Image],
    render: &discover::RenderOptions,
) -> Result<Vec<Found>> {
    let ignore = ignore
        .iter()
        .map(|r| {
            r.parse::<Reference>()
                .with_context(|| format!("--ignore-image `{r}` is not an image reference"))
        })
        .collect::<Result<Vec<_>>>()?;
    let files: Vec<(String, PathBuf)> = entries
        .values()
        .filter_map(|e| match e {
            InputEntry::File { path, source, .. } => Some((path.clone(), source.clone())),
            _ => None,
        })
        .collect();
    let found = discover::discover_with(&files, &ignore, render).map_err(|errors| {
        let n = errors.len();
        let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        anyhow!(
            "{}\nimage discovery failed: {n} error{}",
            text.join("\n"),
            if n == 1 { "" } else { "s" }
        )
    })?;
    for w in &found.warnings {
        terminal::log(format_args!("warning: {w}"));
    }
    if found.images.is_empty() {
        // The silent loss to avoid: a bundle with manifests or charts that carries no image
        // fails at the customer's site with pull errors.
        let carriers: Vec<&str> = files
            .iter()
            .map(|(p, _)| p.as_str())
            .filter(|p| {
                let name = p.rsplit('/').next().unwrap_or(p);
                discover::is_yaml(name)
                    || discover::is_image_list(name)
                    || name.ends_with(".tgz")
                    || name.ends_with(".tar.gz")
            })
            .collect();
        if !carriers.is_empty() {
            terminal::log(format_args!(
                "WARNING: the bundle carries {} YAML, chart or image list file(s) ({}{}) but none of them names a container image: nothing will be served to the cluster\n  hint: check `delivery images` and the warnings above; name image lists imageList, *.images or images.txt",
                carriers.len(),
                carriers.iter().take(3).copied().collect::<Vec<_>>().join(", "),
                if carriers.len() > 3 { ", ..." } else { "" }
            ));
        }
    }
    let carried: BTreeSet<&str> = base_images.iter().map(|i| i.name.as_str()).collect();
    Ok(found
        .images
        .into_iter()
        .filter(|f| !carried.contains(f.reference.to_string().as_str()))
        .collect())
}
