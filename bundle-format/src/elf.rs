//! Where the stub ends: the size of an ELF64 executable computed from its own headers, which is
//! where a bundle's header begins. Read from the start of the file, so it works on a truncated
//! copy too.

/// Bytes of the file start needed to read the ELF header.
pub const ELF_HEADER_LEN: usize = 64;

/// Why a byte string is not a little-endian ELF64 file we can measure.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ElfError {
    #[error("not an ELF executable (bad magic)")]
    NotElf,
    #[error("not a 64-bit little-endian ELF file")]
    Unsupported,
    #[error("ELF header is inconsistent: {0}")]
    Malformed(&'static str),
}

/// The ELF tables that [`end_of_elf`] needs: program headers and the section header table.
pub struct ElfTables {
    pub phoff: u64,
    pub phentsize: u64,
    pub phnum: u64,
    pub shoff: u64,
    pub shentsize: u64,
    pub shnum: u64,
}

/// Parse the fixed ELF64 header (the first 64 bytes).
pub fn parse_header(head: &[u8]) -> Result<ElfTables, ElfError> {
    if head.len() < ELF_HEADER_LEN || &head[..4] != b"\x7fELF" {
        return Err(ElfError::NotElf);
    }
    if head[4] != 2 || head[5] != 1 {
        return Err(ElfError::Unsupported);
    }
    let u16_at = |o: usize| u64::from(u16::from_le_bytes([head[o], head[o + 1]]));
    let u64_at = |o: usize| u64::from_le_bytes(head[o..o + 8].try_into().expect("8 bytes"));
    Ok(ElfTables {
        phoff: u64_at(0x20),
        shoff: u64_at(0x28),
        phentsize: u16_at(0x36),
        phnum: u16_at(0x38),
        shentsize: u16_at(0x3a),
        shnum: u16_at(0x3c),
    })
}

/// The file size of the ELF image: the furthest of the header, the program header table, every
/// segment's file extent, and the section header table (which linkers place last).
///
/// `program_headers` must hold the bytes of the program header table (`phnum * phentsize` bytes
/// read at `phoff`).
pub fn end_of_elf(t: &ElfTables, program_headers: &[u8]) -> Result<u64, ElfError> {
    if t.phentsize < 56 && t.phnum > 0 {
        return Err(ElfError::Malformed("program header entries are too small"));
    }
    let ph_len = t
        .phentsize
        .checked_mul(t.phnum)
        .ok_or(ElfError::Malformed("program headers overflow"))?;
    if program_headers.len() as u64 != ph_len {
        return Err(ElfError::Malformed("program header table is truncated"));
    }
    let sh_end = t
        .shentsize
        .checked_mul(t.shnum)
        .and_then(|n| n.checked_add(t.shoff))
        .ok_or(ElfError::Malformed("section headers overflow"))?;
    let mut end = (ELF_HEADER_LEN as u64).max(t.phoff + ph_len).max(sh_end);
    for ph in program_headers.chunks(t.phentsize.max(1) as usize) {
        let offset = u64::from_le_bytes(ph[8..16].try_into().expect("8 bytes"));
        let filesz = u64::from_le_bytes(ph[32..40].try_into().expect("8 bytes"));
        let seg_end = offset
            .checked_add(filesz)
            .ok_or(ElfError::Malformed("segment overflows"))?;
        end = end.max(seg_end);
    }
    Ok(end)
}

/// The ELF end of an in-memory image (used by the writer on the stub it embeds).
pub fn end_of_image(image: &[u8]) -> Result<u64, ElfError> {
    let t = parse_header(image)?;
    let start = usize::try_from(t.phoff).map_err(|_| ElfError::Malformed("phoff"))?;
    let len = usize::try_from(t.phentsize * t.phnum).map_err(|_| ElfError::Malformed("phnum"))?;
    let ph = image
        .get(start..start.saturating_add(len))
        .ok_or(ElfError::Malformed("program header table is truncated"))?;
    end_of_elf(&t, ph)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_the_running_test_binary_exactly() {
        // A test binary is a real ELF file with no payload: its ELF end is its file size.
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(end_of_image(&exe).unwrap(), exe.len() as u64);
    }

    #[test]
    fn rejects_non_elf() {
        assert_eq!(end_of_image(b"#!/bin/sh\n").unwrap_err(), ElfError::NotElf);
        let mut head = vec![0u8; 64];
        head[..4].copy_from_slice(b"\x7fELF");
        head[4] = 1;
        assert_eq!(end_of_image(&head).unwrap_err(), ElfError::Unsupported);
    }
}
