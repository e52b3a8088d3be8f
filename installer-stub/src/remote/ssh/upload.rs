//! Files onto a host: streamed into `<dest>.partial`, hashed on both ends while sent, renamed
//! into place only when the host computed the expected SHA-256; and the digest of a file
//! already there, so unchanged files are not sent again.

use std::io::Read;

use bundle_format::io::HashingReader;

use super::exec::TailBuf;
use super::{shell_quote, Session, SshError, Stream};

impl Session {
    /// Streams `len` bytes from `src` into `dest.partial` on the host (parent dirs created, mode
    /// 0644), computing SHA-256 locally while sending, checks it on the host with `sha256sum`,
    /// and only if equal to `expected` (lowercase hex) renames to `dest` atomically (after a
    /// sync). `progress(bytes_sent)` is called at least every 1 MiB. On a mismatch the partial
    /// file is removed.
    pub fn upload(
        &self,
        src: &mut dyn Read,
        len: u64,
        dest: &str,
        expected: &str,
        privileged: bool,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), SshError> {
        let action = format!("uploading {dest}");
        if !is_sha256_hex(expected) {
            return Err(self.other(
                &action,
                format!("expected digest {expected:?} is not 64 lowercase hex digits"),
            ));
        }
        let mut hashing = HashingReader::new(src.take(len));
        let mut out = TailBuf::new(64 * 1024);
        let mut err = TailBuf::new(64 * 1024);
        let status = self.exec(
            &upload_command(dest, expected),
            privileged,
            &mut hashing,
            &mut |s, data| match s {
                Stream::Stdout => out.push(data),
                Stream::Stderr => err.push(data),
            },
            progress,
            &action,
        )?;
        let sent = hashing.len();
        let local = hashing.finish().hex();
        let remote = out.into_string().trim().to_string();
        if status == UPLOAD_MISMATCH {
            return Err(SshError::DigestMismatch {
                host: self.host.clone(),
                port: self.port,
                path: dest.to_string(),
                expected: expected.to_string(),
                actual: remote,
            });
        }
        if status != 0 {
            return Err(SshError::RemoteCommand {
                host: self.host.clone(),
                port: self.port,
                action,
                status,
                stderr: err.into_string().trim().to_string(),
            });
        }
        if sent != len {
            // The host got fewer bytes, so its digest cannot have matched; keep the message clear.
            return Err(self.other(&action, format!("the source ended after {sent} of {len} bytes")));
        }
        if local != expected {
            // The host stored what we sent and it matched `expected`, so this cannot happen
            // short of a SHA-256 collision; refuse anyway.
            return Err(SshError::DigestMismatch {
                host: self.host.clone(),
                port: self.port,
                path: dest.to_string(),
                expected: expected.to_string(),
                actual: local,
            });
        }
        Ok(())
    }

    /// SHA-256 hex of a file on the host, `None` when it does not exist.
    pub fn remote_sha256(&self, path: &str, privileged: bool) -> Result<Option<String>, SshError> {
        let q = shell_quote(path);
        let script = format!("if [ -e {q} ]; then sha256sum -- {q} | cut -d' ' -f1; else echo missing; fi\n");
        let out = self.run(&script, &[], privileged)?;
        let action = format!("hashing {path}");
        if out.status != 0 {
            return Err(SshError::RemoteCommand {
                host: self.host.clone(),
                port: self.port,
                action,
                status: out.status,
                stderr: out.stderr.trim().to_string(),
            });
        }
        match out.stdout.trim() {
            "missing" => Ok(None),
            d if is_sha256_hex(d) => Ok(Some(d.to_string())),
            d => Err(self.other(&action, format!("unexpected sha256sum output {d:?}"))),
        }
    }
}

/// Exit status of the upload script when the host computed another digest.
const UPLOAD_MISMATCH: i32 = 86;

/// The shell snippet that receives an upload on stdin, checks it and renames it into place.
fn upload_command(dest: &str, expected: &str) -> String {
    let partial = format!("{dest}.partial");
    let dir = match dest.rfind('/') {
        Some(0) => "/".to_string(),
        Some(i) => dest[..i].to_string(),
        None => ".".to_string(),
    };
    let (d, p, f) = (shell_quote(&dir), shell_quote(&partial), shell_quote(dest));
    format!(
        "umask 022 && mkdir -p -- {d} && cat > {p} && chmod 0644 {p} && \
         actual=$(sha256sum -- {p} | cut -d' ' -f1) && echo \"$actual\" && \
         if [ \"$actual\" != {expected} ]; then rm -f -- {p}; exit {UPLOAD_MISMATCH}; fi && \
         (sync -- {p} 2>/dev/null || sync) && mv -f -- {p} {f} && (sync -- {d} 2>/dev/null || true) \
         || {{ rc=$?; rm -f -- {p}; exit $rc; }}"
    )
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_command_checks_before_rename() {
        let c = upload_command("/opt/x y/f'1", &"a".repeat(64));
        assert!(c.contains("mkdir -p -- '/opt/x y'"));
        assert!(c.contains("cat > '/opt/x y/f'\\''1.partial'"));
        assert!(c.find("sha256sum").unwrap() < c.find("mv -f").unwrap());
    }

    #[test]
    fn sha256_hex_is_strict() {
        assert!(is_sha256_hex(&"0f".repeat(32)));
        assert!(!is_sha256_hex(&"0F".repeat(32)));
        assert!(!is_sha256_hex("sha256:00"));
    }
}
