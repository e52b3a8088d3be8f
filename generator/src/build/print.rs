//! Printing a plan (`delivery build --dry-run [--json]`) and its images (also `delivery images`).

use std::io::Write;

use bundle_format::write::InputEntry;
use terminal::json_lines::{write_line, Message, PlannedEntry, PlannedImage};

use super::Plan;

pub(super) fn print_plan(plan: &Plan, json: bool) {
    let mut out = std::io::stdout().lock();
    if json {
        let _ = write_line(&mut out, &Message::Bundle(&plan.info));
    } else {
        let _ = writeln!(
            out,
            "bundle {} {} created {}",
            plan.info.name, plan.info.version, plan.info.created
        );
    }
    for e in plan.entries.values() {
        let (kind, size, from, storage) = match e {
            InputEntry::Dir { .. } => ("dir", 0, String::new(), ""),
            InputEntry::Symlink { target, .. } => ("symlink", 0, target.clone(), ""),
            InputEntry::File {
                source, size, stored, ..
            } => (
                "file",
                *size,
                source.display().to_string(),
                if *stored { "stored" } else { "compressed" },
            ),
        };
        if json {
            let entry = PlannedEntry {
                path: e.path(),
                kind,
                size,
                from,
                storage,
            };
            let _ = write_line(&mut out, &Message::PlannedEntry(entry));
        } else {
            let _ = writeln!(out, "{kind:7} {storage:10} {size:>12} {} <- {from}", e.path());
        }
    }
    print_images(&mut out, plan, json);
}

/// The images of a plan: carried from the base, then found in the bundle's files.
pub(crate) fn print_images(out: &mut impl Write, plan: &Plan, json: bool) {
    for image in &plan.base_images {
        print_image(out, json, &image.name, &format!("base bundle ({})", image.source), true);
    }
    for f in &plan.wanted {
        print_image(
            out,
            json,
            &f.reference.to_string(),
            &format!("{}:{}", f.file, f.line),
            false,
        );
    }
}

/// One image line of a plan or of `delivery images`.
pub(crate) fn print_image(out: &mut impl Write, json: bool, reference: &str, source: &str, from_base: bool) {
    if json {
        let image = PlannedImage {
            reference,
            source,
            from_base,
        };
        let _ = write_line(out, &Message::PlannedImage(image));
    } else {
        let _ = writeln!(out, "image   {reference}  <- {source}");
    }
}
