//! `delivery images`: the images a Kubefile's bundle needs and where each was found, without
//! fetching anything.

use anyhow::{Context, Result};

use crate::build;
use crate::cli::ImagesArgs;

pub fn run(args: &ImagesArgs) -> Result<()> {
    let kubefile = build::load_kubefile(&args.kubefile)?;
    let scratch = tempfile::tempdir().context("failed to create a temporary directory")?;
    let plan = build::plan(&args.kubefile, &kubefile, scratch.path(), None, true)?;
    build::print_images(&mut std::io::stdout().lock(), &plan, args.json);
    Ok(())
}
