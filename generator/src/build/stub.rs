//! The installer stub that `delivery build` puts at the front of every bundle: where it is
//! found (`--stub`, `DELIVERY_STUB`, else `installer-stub` beside `delivery`), and whether it
//! will start on the customer's hosts.
//!
//! A bundle runs on hosts we never see, down to CentOS 7's glibc 2.17, so the stub must be a
//! Linux x86_64 or aarch64 executable that needs no glibc symbol newer than 2.17. A plain
//! `cargo build` makes a stub linked against the build machine's glibc (2.34 or newer today),
//! which fails on older hosts with `GLIBC_2.34 not found` before it can print anything: the
//! build refuses it and says how to get the portable one (issue 13). `--allow-unportable-stub`
//! turns the refusal into a warning, for development. A stub built for another architecture
//! than `--arch` is a warning only: the Kubefile's `${ARCH}` may name the files' architecture
//! while the stub runs on the machine that installs them.

use std::fs;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use super::elf::{self, Elf, ElfError, FileType, GlibcVersion, Machine};
use crate::cli::BuildArgs;

/// The newest glibc a bundle's stub may need: CentOS 7's, what `cargo zigbuild` targets with
/// `x86_64-unknown-linux-gnu.2.17`.
pub(crate) const MAX_GLIBC: GlibcVersion = GlibcVersion(2, 17, 0);

/// Why a stub would not start on every supported host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Problem {
    NotElf(ElfError),
    NotExecutable(FileType),
    Machine(Machine),
    /// Needs this glibc version, newer than [`MAX_GLIBC`].
    Glibc(GlibcVersion),
    /// Needs a glibc version that is not numbered (`GLIBC_ABI_DT_RELR`, glibc 2.36).
    GlibcName(String),
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::NotElf(e) => write!(f, "it is {e}"),
            Problem::NotExecutable(t) => write!(f, "it is a {t}, not an executable"),
            Problem::Machine(m) => write!(f, "it is built for {m}, not x86_64 or aarch64"),
            Problem::Glibc(v) => write!(
                f,
                "it needs glibc {v} (GLIBC_{v}), newer than the {MAX_GLIBC} of the oldest supported hosts"
            ),
            Problem::GlibcName(n) => write!(f, "it needs {n}, which glibc {MAX_GLIBC} does not have"),
        }
    }
}

/// What is wrong with `bytes` as a stub; with the ELF facts when it could be read.
pub(crate) fn problems(bytes: &[u8]) -> (Option<Elf>, Vec<Problem>) {
    let elf = match elf::read(bytes) {
        Ok(elf) => elf,
        Err(e) => return (None, vec![Problem::NotElf(e)]),
    };
    let mut problems = Vec::new();
    if let FileType::Other(_) = elf.file_type {
        problems.push(Problem::NotExecutable(elf.file_type));
    }
    if let Machine::Other(_) = elf.machine {
        problems.push(Problem::Machine(elf.machine));
    }
    if let Some(v) = elf.newest_glibc().filter(|v| *v > MAX_GLIBC) {
        problems.push(Problem::Glibc(v));
    }
    for name in &elf.glibc_needs {
        if GlibcVersion::from_name(name).is_none() && name != "GLIBC_PRIVATE" {
            problems.push(Problem::GlibcName(name.clone()));
        }
    }
    (Some(elf), problems)
}

/// The stub to embed: found, read, and checked; an unportable one is refused unless
/// `--allow-unportable-stub` is given.
pub(crate) fn load(args: &BuildArgs) -> Result<Vec<u8>> {
    let path = locate(args)?;
    let bytes = fs::read(&path).with_context(|| format!("failed to read the installer stub {}", path.display()))?;
    let (elf, problems) = problems(&bytes);
    // The architecture `--arch` names (`amd64` or `arm64`, as clap allows).
    let wanted = if args.input.arch == "arm64" {
        Machine::Aarch64
    } else {
        Machine::X86_64
    };
    let machine = elf.as_ref().map_or(wanted, |e| e.machine);
    if machine != wanted && !matches!(machine, Machine::Other(_)) {
        terminal::log(format_args!(
            "warning: the installer stub {} is built for {machine}, but --arch is {}: the bundle runs only on {machine} hosts",
            path.display(),
            args.input.arch,
        ));
    }
    if problems.is_empty() {
        return Ok(bytes);
    }
    let what: Vec<String> = problems.iter().map(|p| format!("\n  {p}")).collect();
    if args.allow_unportable_stub {
        terminal::log(format_args!(
            "WARNING: embedding the installer stub {} although it may not start on the customer's hosts (--allow-unportable-stub):{}",
            path.display(),
            what.concat()
        ));
        return Ok(bytes);
    }
    bail!(
        "the installer stub {} would not start on every supported host:{}\n  hint: {}",
        path.display(),
        what.concat(),
        portable_hint(machine)
    )
}

/// How to build and pass the portable stub, for `machine` (x86_64 when it is neither).
fn portable_hint(machine: Machine) -> String {
    let target = match machine {
        Machine::Aarch64 => "aarch64-unknown-linux-gnu",
        _ => "x86_64-unknown-linux-gnu",
    };
    format!(
        "build the portable stub with `cargo zigbuild --release -p installer-stub --target {target}.{MAX_GLIBC}` and pass it with `--stub target/{target}/release/installer-stub` (or DELIVERY_STUB); `--allow-unportable-stub` embeds this one anyway, for development"
    )
}

fn locate(args: &BuildArgs) -> Result<PathBuf> {
    if let Some(p) = &args.stub {
        return Ok(p.clone());
    }
    let exe = std::env::current_exe().context("failed to locate the delivery executable")?;
    let beside = exe.with_file_name("installer-stub");
    if beside.exists() {
        return Ok(beside);
    }
    bail!(
        "no installer stub found at {}: pass --stub FILE (or set DELIVERY_STUB), e.g. the installer-stub built by `cargo zigbuild --release --target x86_64-unknown-linux-gnu.2.17`",
        beside.display()
    )
}

/// Installer stubs built in this workspace's target directory, if any: `(path, portable)`.
#[cfg(test)]
fn built_stubs() -> Vec<(PathBuf, bool)> {
    // The test binary is <target>/debug/deps/generator-<hash>.
    let Some(target) = std::env::current_exe()
        .ok()
        .and_then(|e| e.ancestors().nth(3).map(std::path::Path::to_path_buf))
    else {
        return Vec::new();
    };
    [
        ("debug/installer-stub", false),
        ("release/installer-stub", false),
        ("x86_64-unknown-linux-gnu/release/installer-stub", true),
        ("aarch64-unknown-linux-gnu/release/installer-stub", true),
    ]
    .into_iter()
    .map(|(p, portable)| (target.join(p), portable))
    .filter(|(p, _)| p.is_file())
    .collect()
}

#[cfg(test)]
mod tests {
    use super::elf::tests::{crafted, portable, too_new};
    use super::*;

    #[test]
    fn a_stub_for_glibc_2_17_passes() {
        let (elf, found) = problems(&portable());
        assert_eq!(found, []);
        assert_eq!(elf.unwrap().newest_glibc(), Some(MAX_GLIBC));
        let (_, found) = problems(&crafted(183, &[("libc.so.6", &["GLIBC_2.17"])]));
        assert_eq!(found, []);
    }

    #[test]
    fn a_stub_needing_a_newer_glibc_is_refused() {
        let (_, found) = problems(&too_new());
        assert_eq!(found, [Problem::Glibc(GlibcVersion(2, 34, 0))]);
        let (_, found) = problems(&crafted(62, &[("libc.so.6", &["GLIBC_2.17", "GLIBC_ABI_DT_RELR"])]));
        assert_eq!(found, [Problem::GlibcName("GLIBC_ABI_DT_RELR".into())]);
    }

    #[test]
    fn other_files_are_refused() {
        let (_, found) = problems(b"#!/bin/sh\nexec true\n");
        assert!(matches!(found[..], [Problem::NotElf(ElfError::NotElf { .. })]));
        let (_, found) = problems(&crafted(40, &[("libc.so.6", &["GLIBC_2.4"])]));
        assert_eq!(found, [Problem::Machine(Machine::Other(40))]);
        let mut object = portable();
        object[16] = 1; // ET_REL
        let (_, found) = problems(&object);
        assert_eq!(found, [Problem::NotExecutable(FileType::Other(1))]);
    }

    #[test]
    fn the_hint_names_the_portable_target_of_the_stubs_machine() {
        assert!(portable_hint(Machine::X86_64).contains("--target x86_64-unknown-linux-gnu.2.17"));
        assert!(portable_hint(Machine::Aarch64).contains("--target aarch64-unknown-linux-gnu.2.17"));
        assert!(
            portable_hint(Machine::X86_64).contains("--stub target/x86_64-unknown-linux-gnu/release/installer-stub")
        );
    }

    /// The real stubs of this target directory: the portable build passes; what this reader finds
    /// in the native one is what binutils' `objdump -T` finds.
    #[test]
    fn real_stubs_in_the_target_dir() {
        let stubs = built_stubs();
        if stubs.is_empty() {
            eprintln!("skipped: no installer-stub built in this target directory (cargo build -p installer-stub)");
            return;
        }
        for (path, portable) in stubs {
            let bytes = fs::read(&path).unwrap();
            let (elf, found) = problems(&bytes);
            let elf = elf.unwrap_or_else(|| panic!("{}: {found:?}", path.display()));
            if portable {
                assert_eq!(found, [], "{}", path.display());
            }
            let objdump = std::process::Command::new("objdump").arg("-T").arg(&path).output();
            let Some(out) = objdump.ok().filter(|o| o.status.success()) else {
                eprintln!("{}: objdump not available, not cross-checked", path.display());
                continue;
            };
            let text = String::from_utf8_lossy(&out.stdout);
            let newest = text
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                .filter_map(GlibcVersion::from_name)
                .max();
            assert_eq!(elf.newest_glibc(), newest, "{}", path.display());
            eprintln!("{}: needs glibc {newest:?}, problems {found:?}", path.display());
        }
    }
}
