//! Running shell scripts on a host: fed to `sh -s` on stdin with their variables exported at
//! the top, so neither shows in a process list; output collected (capped, tail kept) or handed
//! out line by line as it arrives.

use std::io;

use super::exec::TailBuf;
use super::{Output, Session, SshError, Stream};

/// Cap of each collected stream in [`Session::run`] (the tail is kept).
const RUN_CAP: usize = 1024 * 1024;
/// Size of the interleaved tail returned by [`Session::run_streaming`].
const STREAM_TAIL: usize = 64 * 1024;

impl Session {
    /// Runs `script` with `sh -s` (script fed on stdin, so secrets in it never show in a process
    /// list), as root through sudo when `privileged` and the user is not root: `sudo -n` for
    /// [`Sudo::Passwordless`]; for [`Sudo::Password`], `sudo -S` with a marker prompt on stderr,
    /// the password sent on stdin only when that prompt appears (so it can never be run as a
    /// script line when sudo does not ask), and the script only after sudo let us through; a
    /// refused password or a sudo that wants one we lack is [`SshError::SudoFailed`]. Extra env vars are
    /// exported at the top of the script. Collects output (each stream capped at 1 MiB, tail kept).
    pub fn run(&self, script: &str, env: &[(&str, &str)], privileged: bool) -> Result<Output, SshError> {
        let mut out = TailBuf::new(RUN_CAP);
        let mut err = TailBuf::new(RUN_CAP);
        let stdin = script_stdin(script, env);
        let status = self.exec(
            "sh -s",
            privileged,
            &mut io::Cursor::new(stdin.into_bytes()),
            &mut |s, data| match s {
                Stream::Stdout => out.push(data),
                Stream::Stderr => err.push(data),
            },
            &mut |_| {},
            "running a script",
        )?;
        Ok(Output {
            status,
            stdout: out.into_string(),
            stderr: err.into_string(),
        })
    }

    /// Same as [`Session::run`], but calls `on_line` for every output line as it arrives and
    /// returns the exit status and the last 64 KiB of stderr+stdout interleaved.
    pub fn run_streaming(
        &self,
        script: &str,
        env: &[(&str, &str)],
        privileged: bool,
        on_line: &mut dyn FnMut(Stream, &str),
    ) -> Result<(i32, String), SshError> {
        let mut tail = TailBuf::new(STREAM_TAIL);
        let mut out_line = Vec::new();
        let mut err_line = Vec::new();
        let stdin = script_stdin(script, env);
        let status = {
            let mut on_data = |s: Stream, data: &[u8]| {
                let pending = match s {
                    Stream::Stdout => &mut out_line,
                    Stream::Stderr => &mut err_line,
                };
                pending.extend_from_slice(data);
                while let Some(i) = pending.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=i).collect();
                    tail.push(&line);
                    let text = String::from_utf8_lossy(&line[..line.len() - 1]);
                    on_line(s, text.trim_end_matches('\r'));
                }
            };
            self.exec(
                "sh -s",
                privileged,
                &mut io::Cursor::new(stdin.into_bytes()),
                &mut on_data,
                &mut |_| {},
                "running a script",
            )?
        };
        for (s, rest) in [(Stream::Stdout, out_line), (Stream::Stderr, err_line)] {
            if !rest.is_empty() {
                tail.push(&rest);
                tail.push(b"\n");
                on_line(s, String::from_utf8_lossy(&rest).trim_end_matches('\r'));
            }
        }
        Ok((status, tail.into_string()))
    }
}

/// What goes on stdin for `sh -s`: exports, then the script.
pub(super) fn script_stdin(script: &str, env: &[(&str, &str)]) -> String {
    let mut s = String::new();
    for (k, v) in env {
        s.push_str(&export_line(k, v));
    }
    s.push_str(script);
    if !script.ends_with('\n') {
        s.push('\n');
    }
    s
}

/// `export NAME='value'\n`, the value single-quoted for POSIX sh.
fn export_line(name: &str, value: &str) -> String {
    assert!(
        !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !name.as_bytes()[0].is_ascii_digit(),
        "environment variable names are set by code, not input: {name:?}"
    );
    format!("export {name}={}\n", shell_quote(value))
}

/// Single-quotes `s` for POSIX sh: `'` becomes `'\''`.
pub(crate) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_values_are_single_quoted() {
        assert_eq!(export_line("A", "plain"), "export A='plain'\n");
        assert_eq!(
            export_line("B", "it's $HOME `x` \"q\""),
            "export B='it'\\''s $HOME `x` \"q\"'\n"
        );
        assert_eq!(export_line("C_1", ""), "export C_1=''\n");
        assert_eq!(export_line("D", "a\nb"), "export D='a\nb'\n");
    }

    #[test]
    #[should_panic]
    fn export_rejects_bad_names() {
        export_line("A;rm", "x");
    }

    #[test]
    fn exported_values_survive_a_real_shell() {
        let v = "it's \"x\" $y `z` \\ \n end";
        let script = script_stdin("printf '%s' \"$V\"", &[("V", v)]);
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .output()
            .expect("sh runs");
        assert_eq!(String::from_utf8_lossy(&out.stdout), v);
    }
}
