//! What an ELF executable needs from the host that runs it: its class, byte order, type and
//! machine (the ELF header), and the symbol versions it needs from glibc (the `DT_VERNEED` table
//! of its dynamic segment, which `readelf -V` shows as `.gnu.version_r` and `objdump -T` as
//! `GLIBC_x.y`). `delivery build` reads its installer stub with it, to refuse one that would not
//! start on the customer's hosts (issue 13, see `stub.rs`).
//!
//! Hand-read rather than with the `object` or `goblin` crate: neither is a dependency, and this
//! needs five fixed-size records of 64-bit little-endian ELF (the only kind the stub is built
//! as). It reads the program headers and the dynamic segment, not the section headers: they are
//! what the dynamic loader reads, and a binary stripped with `sstrip` has no section headers.
//!
//! Every offset, size and count comes from the file, so all are checked against its length with
//! checked arithmetic and every loop is capped: a truncated or hostile file is an [`ElfError`],
//! never a panic or a hang.

use std::fmt;

const MAGIC: &[u8; 4] = b"\x7fELF";
const CLASS_64: u8 = 2;
const DATA_LITTLE_ENDIAN: u8 = 1;
const HEADER_LEN: u64 = 64;
const PHDR_LEN: u64 = 56;
const DYN_LEN: u64 = 16;
const VERNEED_LEN: u64 = 16;
const VERNAUX_LEN: u64 = 16;

const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;

const DT_NULL: u64 = 0;
const DT_STRTAB: u64 = 5;
const DT_STRSZ: u64 = 10;
const DT_VERNEED: u64 = 0x6fff_fffe;
const DT_VERNEEDNUM: u64 = 0x6fff_ffff;

/// Version records read at most, over all libraries: real binaries have a few dozen, and a
/// hostile `vn_next`/`vna_next` chain that loops back stops here.
const MAX_VERSION_RECORDS: usize = 4096;
/// Program headers read at most (`e_phnum` is a u16; `PN_XNUM` is refused).
const MAX_PROGRAM_HEADERS: u16 = 0xfff0;

/// The architecture an ELF file is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Machine {
    X86_64,
    Aarch64,
    /// Any other `e_machine`.
    Other(u16),
}

impl Machine {
    fn from_elf(value: u16) -> Machine {
        match value {
            EM_X86_64 => Machine::X86_64,
            EM_AARCH64 => Machine::Aarch64,
            other => Machine::Other(other),
        }
    }
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Machine::X86_64 => f.write_str("x86_64"),
            Machine::Aarch64 => f.write_str("aarch64"),
            Machine::Other(m) => write!(f, "ELF machine {m}"),
        }
    }
}

/// `e_type`: what kind of object the file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileType {
    /// `ET_EXEC`: a position-dependent executable.
    Executable,
    /// `ET_DYN`: a position-independent executable (what Rust builds by default) or a shared
    /// library.
    PositionIndependent,
    /// Anything else: a relocatable object, a core dump.
    Other(u16),
}

impl fmt::Display for FileType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileType::Executable => f.write_str("executable"),
            FileType::PositionIndependent => f.write_str("position-independent executable"),
            FileType::Other(1) => f.write_str("relocatable object file"),
            FileType::Other(4) => f.write_str("core dump"),
            FileType::Other(t) => write!(f, "ELF file of type {t}"),
        }
    }
}

/// A glibc symbol version, `GLIBC_2.34` as (2, 34, 0). Ordered as glibc releases are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct GlibcVersion(pub u32, pub u32, pub u32);

impl GlibcVersion {
    /// The version of a symbol version name, `GLIBC_2.2.5`; `None` for other libraries' names
    /// and for glibc's names that are not numbered (`GLIBC_PRIVATE`, `GLIBC_ABI_DT_RELR`).
    pub(crate) fn from_name(name: &str) -> Option<GlibcVersion> {
        let mut parts = name.strip_prefix("GLIBC_")?.split('.');
        let mut next = |required: bool| match parts.next() {
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p.parse().ok(),
            None if !required => Some(0),
            _ => None,
        };
        let version = GlibcVersion(next(true)?, next(true)?, next(false)?);
        parts.next().is_none().then_some(version)
    }
}

impl fmt::Display for GlibcVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GlibcVersion(major, minor, 0) => write!(f, "{major}.{minor}"),
            GlibcVersion(major, minor, patch) => write!(f, "{major}.{minor}.{patch}"),
        }
    }
}

/// What [`read`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Elf {
    pub machine: Machine,
    pub file_type: FileType,
    /// Whether it names a dynamic loader (`PT_INTERP`): linked against a shared libc.
    pub interpreter: bool,
    /// Every `GLIBC_*` version it needs, sorted, each once.
    pub glibc_needs: Vec<String>,
}

impl Elf {
    /// The newest numbered glibc version it needs (`None`: static, or needs no versioned symbol).
    pub(crate) fn newest_glibc(&self) -> Option<GlibcVersion> {
        self.glibc_needs.iter().filter_map(|n| GlibcVersion::from_name(n)).max()
    }
}

/// Why a file could not be read as a 64-bit little-endian ELF file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ElfError {
    #[error("not an ELF file (it starts with `{}`, not `7f 45 4c 46`)", hex(.start))]
    NotElf { start: Vec<u8> },
    #[error("an ELF file of class {class} and byte order {data}, not 64-bit little-endian")]
    Unsupported { class: u8, data: u8 },
    #[error("truncated ELF file: {what} at offset {offset} ends past its end ({len} bytes)")]
    Truncated { what: &'static str, offset: u64, len: u64 },
    #[error("malformed ELF file: {what}")]
    Malformed { what: String },
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}

/// Reads the header, program headers and glibc version needs of `bytes`, a whole ELF file.
pub(crate) fn read(bytes: &[u8]) -> Result<Elf, ElfError> {
    let r = Reader(bytes);
    if bytes.get(..4) != Some(MAGIC.as_slice()) {
        return Err(ElfError::NotElf {
            start: bytes.iter().take(4).copied().collect(),
        });
    }
    let (class, data) = (r.u8(4, "ELF class")?, r.u8(5, "ELF byte order")?);
    if class != CLASS_64 || data != DATA_LITTLE_ENDIAN {
        return Err(ElfError::Unsupported { class, data });
    }
    r.slice(0, HEADER_LEN, "ELF header")?;
    let file_type = match r.u16(16, "e_type")? {
        ET_EXEC => FileType::Executable,
        ET_DYN => FileType::PositionIndependent,
        other => FileType::Other(other),
    };
    let machine = Machine::from_elf(r.u16(18, "e_machine")?);
    let segments = program_headers(&r)?;
    let interpreter = segments.iter().any(|s| s.kind == PT_INTERP);
    let glibc_needs = match segments.iter().find(|s| s.kind == PT_DYNAMIC) {
        Some(dynamic) => version_needs(&r, dynamic, &segments)?
            .into_iter()
            .filter(|n| n.starts_with("GLIBC_"))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect(),
        None => Vec::new(),
    };
    Ok(Elf {
        machine,
        file_type,
        interpreter,
        glibc_needs,
    })
}

/// One program header: what the loader maps where.
struct Segment {
    kind: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
}

fn program_headers(r: &Reader) -> Result<Vec<Segment>, ElfError> {
    let phoff = r.u64(32, "e_phoff")?;
    let entsize = u64::from(r.u16(54, "e_phentsize")?);
    let count = r.u16(56, "e_phnum")?;
    if count == 0 {
        return Ok(Vec::new());
    }
    if count > MAX_PROGRAM_HEADERS {
        return Err(malformed(format!("{count} program headers")));
    }
    if entsize < PHDR_LEN {
        return Err(malformed(format!(
            "program headers of {entsize} bytes, less than {PHDR_LEN}"
        )));
    }
    (0..u64::from(count))
        .map(|i| {
            let at = i
                .checked_mul(entsize)
                .and_then(|o| o.checked_add(phoff))
                .ok_or_else(|| malformed("program header offset overflows".into()))?;
            r.slice(at, PHDR_LEN, "program header")?;
            Ok(Segment {
                kind: r.u32(at, "p_type")?,
                offset: r.u64(at + 8, "p_offset")?,
                vaddr: r.u64(at + 16, "p_vaddr")?,
                filesz: r.u64(at + 32, "p_filesz")?,
            })
        })
        .collect()
}

/// The names of every version the dynamic segment's `DT_VERNEED` table needs, of any library.
fn version_needs(r: &Reader, dynamic: &Segment, segments: &[Segment]) -> Result<Vec<String>, ElfError> {
    r.slice(dynamic.offset, dynamic.filesz, "dynamic segment")?;
    let (mut strtab, mut strsz, mut verneed, mut verneednum) = (None, None, None, None);
    for i in 0..dynamic.filesz / DYN_LEN {
        let at = dynamic.offset + i * DYN_LEN;
        let (tag, value) = (r.u64(at, "d_tag")?, r.u64(at + 8, "d_val")?);
        match tag {
            DT_NULL => break,
            DT_STRTAB => strtab = Some(value),
            DT_STRSZ => strsz = Some(value),
            DT_VERNEED => verneed = Some(value),
            DT_VERNEEDNUM => verneednum = Some(value),
            _ => {}
        }
    }
    let (Some(verneed), Some(verneednum)) = (verneed, verneednum.filter(|n| *n > 0)) else {
        return Ok(Vec::new());
    };
    let (Some(strtab), Some(strsz)) = (strtab, strsz) else {
        return Err(malformed("a version table without a string table".into()));
    };
    let strings = r.slice(
        file_offset(segments, strtab, "DT_STRTAB")?,
        strsz,
        "dynamic string table",
    )?;
    let mut names = Vec::new();
    let mut records = 0usize;
    let mut need = file_offset(segments, verneed, "DT_VERNEED")?;
    for _ in 0..verneednum {
        r.slice(need, VERNEED_LEN, "version need")?;
        let count = r.u16(need + 2, "vn_cnt")?;
        let mut aux = offset_plus(need, u64::from(r.u32(need + 8, "vn_aux")?))?;
        for _ in 0..count {
            records += 1;
            if records > MAX_VERSION_RECORDS {
                return Err(malformed(format!("more than {MAX_VERSION_RECORDS} version records")));
            }
            r.slice(aux, VERNAUX_LEN, "version need entry")?;
            names.push(string_at(strings, r.u32(aux + 8, "vna_name")?)?);
            match r.u32(aux + 12, "vna_next")? {
                0 => break,
                next => aux = offset_plus(aux, u64::from(next))?,
            }
        }
        match r.u32(need + 12, "vn_next")? {
            0 => break,
            next => need = offset_plus(need, u64::from(next))?,
        }
        records += 1;
        if records > MAX_VERSION_RECORDS {
            return Err(malformed(format!("more than {MAX_VERSION_RECORDS} version records")));
        }
    }
    Ok(names)
}

/// The file offset of virtual address `vaddr`, through the loaded segment that holds it.
fn file_offset(segments: &[Segment], vaddr: u64, what: &str) -> Result<u64, ElfError> {
    segments
        .iter()
        .filter(|s| s.kind == PT_LOAD)
        .find_map(|s| {
            let within = vaddr.checked_sub(s.vaddr).filter(|d| *d < s.filesz)?;
            s.offset.checked_add(within)
        })
        .ok_or_else(|| malformed(format!("{what} address {vaddr:#x} is in no loaded segment")))
}

fn offset_plus(base: u64, delta: u64) -> Result<u64, ElfError> {
    base.checked_add(delta)
        .ok_or_else(|| malformed("version table offset overflows".into()))
}

/// The NUL-terminated string at `index` of a string table.
fn string_at(strings: &[u8], index: u32) -> Result<String, ElfError> {
    let tail = usize::try_from(index)
        .ok()
        .and_then(|i| strings.get(i..))
        .ok_or_else(|| malformed(format!("string {index} is past the string table")))?;
    let end = tail
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| malformed(format!("string {index} is not terminated")))?;
    Ok(String::from_utf8_lossy(&tail[..end]).into_owned())
}

fn malformed(what: String) -> ElfError {
    ElfError::Malformed { what }
}

/// Bounds-checked little-endian reads from the whole file.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn slice(&self, offset: u64, len: u64, what: &'static str) -> Result<&'a [u8], ElfError> {
        let truncated = || ElfError::Truncated {
            what,
            offset,
            len: self.0.len() as u64,
        };
        let start = usize::try_from(offset).map_err(|_| truncated())?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| start.checked_add(l))
            .ok_or_else(truncated)?;
        self.0.get(start..end).ok_or_else(truncated)
    }

    fn array<const N: usize>(&self, offset: u64, what: &'static str) -> Result<[u8; N], ElfError> {
        let s = self.slice(offset, N as u64, what)?;
        Ok(s.try_into().expect("slice has the length asked for"))
    }

    fn u8(&self, offset: u64, what: &'static str) -> Result<u8, ElfError> {
        Ok(self.array::<1>(offset, what)?[0])
    }

    fn u16(&self, offset: u64, what: &'static str) -> Result<u16, ElfError> {
        self.array(offset, what).map(u16::from_le_bytes)
    }

    fn u32(&self, offset: u64, what: &'static str) -> Result<u32, ElfError> {
        self.array(offset, what).map(u32::from_le_bytes)
    }

    fn u64(&self, offset: u64, what: &'static str) -> Result<u64, ElfError> {
        self.array(offset, what).map(u64::from_le_bytes)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal 64-bit little-endian ELF executable: header, three program headers (one
    /// `PT_LOAD` mapping the whole file at 0x400000, `PT_INTERP`, `PT_DYNAMIC`), a dynamic
    /// segment, a string table and a `DT_VERNEED` table with `needs` per library.
    pub(crate) fn crafted(machine: u16, needs: &[(&str, &[&str])]) -> Vec<u8> {
        const BASE: u64 = 0x40_0000;
        let phoff = HEADER_LEN;
        let dyn_off = phoff + 3 * PHDR_LEN;
        let dyn_len = 5 * DYN_LEN;
        let str_off = dyn_off + dyn_len;
        let mut strings = vec![0u8];
        let mut add = |s: &str| {
            let at = strings.len() as u32;
            strings.extend_from_slice(s.as_bytes());
            strings.push(0);
            at
        };
        let interp_at = add("/lib64/ld-linux-x86-64.so.2");
        let named: Vec<(u32, Vec<u32>)> = needs
            .iter()
            .map(|(lib, versions)| (add(lib), versions.iter().map(|v| add(v)).collect()))
            .collect();
        let need_off = (str_off + strings.len() as u64).next_multiple_of(8);
        let mut need = Vec::new();
        for (i, (file, versions)) in named.iter().enumerate() {
            let last = i + 1 == named.len();
            let aux_len = versions.len() as u64 * VERNAUX_LEN;
            need.extend_from_slice(&1u16.to_le_bytes());
            need.extend_from_slice(&(versions.len() as u16).to_le_bytes());
            need.extend_from_slice(&file.to_le_bytes());
            need.extend_from_slice(&(VERNEED_LEN as u32).to_le_bytes());
            let next = if last { 0 } else { (VERNEED_LEN + aux_len) as u32 };
            need.extend_from_slice(&next.to_le_bytes());
            for (j, name) in versions.iter().enumerate() {
                need.extend_from_slice(&0u32.to_le_bytes()); // hash
                need.extend_from_slice(&0u16.to_le_bytes()); // flags
                need.extend_from_slice(&((j + 2) as u16).to_le_bytes());
                need.extend_from_slice(&name.to_le_bytes());
                let next = if j + 1 == versions.len() { 0 } else { VERNAUX_LEN as u32 };
                need.extend_from_slice(&next.to_le_bytes());
            }
        }
        let total = need_off + need.len() as u64;

        let mut f = Vec::new();
        f.extend_from_slice(MAGIC);
        f.extend_from_slice(&[CLASS_64, DATA_LITTLE_ENDIAN, 1, 0]);
        f.resize(16, 0);
        f.extend_from_slice(&ET_DYN.to_le_bytes());
        f.extend_from_slice(&machine.to_le_bytes());
        f.extend_from_slice(&1u32.to_le_bytes());
        f.extend_from_slice(&(BASE + 0x100).to_le_bytes()); // entry
        f.extend_from_slice(&phoff.to_le_bytes());
        f.extend_from_slice(&0u64.to_le_bytes()); // no section headers
        f.extend_from_slice(&0u32.to_le_bytes());
        f.extend_from_slice(&(HEADER_LEN as u16).to_le_bytes());
        f.extend_from_slice(&(PHDR_LEN as u16).to_le_bytes());
        f.extend_from_slice(&3u16.to_le_bytes());
        f.extend_from_slice(&[0; 6]);
        assert_eq!(f.len() as u64, HEADER_LEN);
        let mut phdr = |kind: u32, offset: u64, len: u64| {
            f.extend_from_slice(&kind.to_le_bytes());
            f.extend_from_slice(&4u32.to_le_bytes());
            for v in [offset, BASE + offset, BASE + offset, len, len, 8] {
                f.extend_from_slice(&v.to_le_bytes());
            }
        };
        phdr(PT_LOAD, 0, total);
        phdr(PT_INTERP, str_off + u64::from(interp_at), 28);
        phdr(PT_DYNAMIC, dyn_off, dyn_len);
        for (tag, value) in [
            (DT_STRTAB, BASE + str_off),
            (DT_STRSZ, strings.len() as u64),
            (DT_VERNEED, BASE + need_off),
            (DT_VERNEEDNUM, named.len() as u64),
            (DT_NULL, 0),
        ] {
            f.extend_from_slice(&tag.to_le_bytes());
            f.extend_from_slice(&value.to_le_bytes());
        }
        f.extend_from_slice(&strings);
        f.resize(need_off as usize, 0);
        f.extend_from_slice(&need);
        f
    }

    pub(crate) fn portable() -> Vec<u8> {
        crafted(
            EM_X86_64,
            &[
                ("libc.so.6", &["GLIBC_2.2.5", "GLIBC_2.17", "GLIBC_2.14"]),
                ("libgcc_s.so.1", &["GCC_4.2.0"]),
            ],
        )
    }

    pub(crate) fn too_new() -> Vec<u8> {
        crafted(
            EM_X86_64,
            &[
                ("libgcc_s.so.1", &["GCC_3.0"]),
                ("libc.so.6", &["GLIBC_2.34", "GLIBC_2.2.5", "GLIBC_2.33"]),
            ],
        )
    }

    #[test]
    fn reads_machine_type_and_glibc_needs() {
        let elf = read(&portable()).unwrap();
        assert_eq!(elf.machine, Machine::X86_64);
        assert_eq!(elf.file_type, FileType::PositionIndependent);
        assert!(elf.interpreter);
        assert_eq!(elf.glibc_needs, ["GLIBC_2.14", "GLIBC_2.17", "GLIBC_2.2.5"]);
        assert_eq!(elf.newest_glibc(), Some(GlibcVersion(2, 17, 0)));

        let elf = read(&too_new()).unwrap();
        assert_eq!(elf.newest_glibc(), Some(GlibcVersion(2, 34, 0)));
        let arm = read(&crafted(EM_AARCH64, &[("libc.so.6", &["GLIBC_2.17"])])).unwrap();
        assert_eq!(arm.machine, Machine::Aarch64);
    }

    #[test]
    fn a_static_binary_needs_no_glibc_version() {
        let elf = read(&crafted(EM_X86_64, &[])).unwrap();
        assert!(elf.glibc_needs.is_empty());
        assert_eq!(elf.newest_glibc(), None);
    }

    #[test]
    fn glibc_versions_parse_and_order_as_releases() {
        let v = |s| GlibcVersion::from_name(s);
        assert_eq!(v("GLIBC_2.2.5"), Some(GlibcVersion(2, 2, 5)));
        assert!(v("GLIBC_2.2.5") < v("GLIBC_2.17"));
        assert!(v("GLIBC_2.17") < v("GLIBC_2.34"));
        for not_numbered in [
            "GLIBC_PRIVATE",
            "GLIBC_ABI_DT_RELR",
            "GLIBC_2",
            "GLIBC_2.x",
            "GLIBC_2.1.2.3",
            "GCC_3.0",
        ] {
            assert_eq!(v(not_numbered), None, "{not_numbered}");
        }
        assert_eq!(GlibcVersion(2, 17, 0).to_string(), "2.17");
        assert_eq!(GlibcVersion(2, 2, 5).to_string(), "2.2.5");
    }

    #[test]
    fn not_elf_and_other_classes_are_errors() {
        assert!(matches!(read(b"#!/bin/sh\necho hi\n"), Err(ElfError::NotElf { .. })));
        assert!(matches!(read(b""), Err(ElfError::NotElf { .. })));
        let mut elf32 = portable();
        elf32[4] = 1;
        assert_eq!(read(&elf32), Err(ElfError::Unsupported { class: 1, data: 1 }));
        let mut big_endian = portable();
        big_endian[5] = 2;
        assert!(matches!(read(&big_endian), Err(ElfError::Unsupported { .. })));
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let good = too_new();
        for cut in 0..good.len() {
            let result = read(&good[..cut]);
            assert!(result.is_err(), "cut at {cut} of {} read as {result:?}", good.len());
        }
    }

    #[test]
    fn hostile_offsets_and_counts_are_errors_not_panics() {
        let good = too_new();
        let patch = |at: usize, bytes: &[u8]| {
            let mut b = good.clone();
            b[at..at + bytes.len()].copy_from_slice(bytes);
            read(&b)
        };
        // e_phoff far past the end, and overflowing with the entry size.
        assert!(patch(32, &u64::MAX.to_le_bytes()).is_err());
        assert!(patch(32, &(u64::MAX - 10).to_le_bytes()).is_err());
        // e_phentsize too small, e_phnum huge.
        assert!(patch(54, &8u16.to_le_bytes()).is_err());
        assert!(patch(56, &0xffffu16.to_le_bytes()).is_err());
        // Every 8-byte word of the program headers and the dynamic segment set to extremes.
        let dyn_end = (HEADER_LEN + 3 * PHDR_LEN + 5 * DYN_LEN) as usize;
        for at in (HEADER_LEN as usize..dyn_end).step_by(4) {
            for value in [u32::MAX, 0x7fff_ffff, 0, 1] {
                let _ = patch(at, &value.to_le_bytes());
            }
        }
        // Version records that crawl forward one byte at a time stop at the end of the file or
        // at the cap. The table is the file's last 96 bytes: libgcc_s (one entry), then libc.
        let need = good.len() - 96;
        let mut crawl = good.clone();
        crawl[need + 2..need + 4].copy_from_slice(&0xffffu16.to_le_bytes());
        crawl[need + 28..need + 32].copy_from_slice(&1u32.to_le_bytes());
        assert!(read(&crawl).is_err());
        // A huge DT_VERNEEDNUM is bounded by the chain's end.
        let num_at = (HEADER_LEN + 3 * PHDR_LEN + 3 * DYN_LEN + 8) as usize;
        assert_eq!(patch(num_at, &u64::MAX.to_le_bytes()), read(&good));
    }
}
