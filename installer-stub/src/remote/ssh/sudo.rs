//! Becoming root through sudo without a secret on a command line: the command sudo runs
//! prints a marker line once through, and a marker prompt replaces sudo's own, so the password
//! is sent on stdin only when sudo asks, once, and the script only to a root shell.

use super::{shell_quote, Secret};

/// Markers the sudo wrapper prints on stderr; removed from the output.
const SUDO_PROMPT: &str = "[dlv-sudo-prompt]";
const SUDO_OK: &str = "[dlv-sudo-ok]";

/// `sudo` around `inner`: a marker prompt (answered from stdin, never shown) and a marker line
/// once sudo let us through, so the script is only sent to a root shell and the password only
/// when sudo asks for it (never executed as a script line when sudo did not ask).
pub(super) fn sudo_command(inner: &str, with_password: bool) -> String {
    let body = shell_quote(&format!("echo '{SUDO_OK}' >&2; {inner}"));
    if with_password {
        format!("sudo -S -p '{SUDO_PROMPT}' -- sh -c {body}")
    } else {
        format!("sudo -n -- sh -c {body}")
    }
}

/// Watches sudo's stderr until our marker line says the root shell runs.
pub(super) struct SudoGate {
    password: Option<Secret>,
    seen: Vec<u8>,
    prompts: usize,
    answered: usize,
    pub(super) open: bool,
    pub(super) failed: bool,
}

impl SudoGate {
    pub(super) fn new(password: Option<Secret>) -> Self {
        SudoGate {
            password,
            seen: Vec::new(),
            prompts: 0,
            answered: 0,
            open: false,
            failed: false,
        }
    }

    /// Takes stderr bytes while the gate is shut; returns what passes through (after the marker).
    pub(super) fn feed(&mut self, data: &[u8]) -> Vec<u8> {
        self.seen.extend_from_slice(data);
        while let Some(i) = find(&self.seen, SUDO_PROMPT.as_bytes()) {
            self.seen.drain(i..i + SUDO_PROMPT.len());
            self.prompts += 1;
        }
        let ok = format!("{SUDO_OK}\n");
        if let Some(i) = find(&self.seen, ok.as_bytes()) {
            self.open = true;
            let mut rest = self.seen.split_off(i);
            rest.drain(..ok.len());
            // Whatever sudo printed before (a lecture) is noise once through.
            self.seen.clear();
            return rest;
        }
        if self.prompts > 1 || (self.prompts > 0 && self.password.is_none()) {
            self.failed = true;
        }
        Vec::new()
    }

    /// The password line to send, once per prompt (the first prompt only).
    pub(super) fn take_answer(&mut self) -> Option<String> {
        if self.prompts > self.answered && !self.failed {
            self.answered = self.prompts;
            if self.prompts == 1 {
                return self.password.as_ref().map(|p| format!("{}\n", p.expose()));
            }
        }
        None
    }

    pub(super) fn flush(&mut self) -> Vec<u8> {
        if self.open {
            Vec::new()
        } else {
            self.seen.clone()
        }
    }

    pub(super) fn failure_reason(&self) -> String {
        let text = String::from_utf8_lossy(&self.seen).trim().replace('\n', "; ");
        if self.prompts > 1 {
            "the sudo password was refused".into()
        } else if text.is_empty() {
            "sudo did not run the command".into()
        } else {
            text
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sudo_gate_answers_once_and_opens_on_marker() {
        let mut g = SudoGate::new(Some(Secret::new("pw".into())));
        assert!(g.feed(SUDO_PROMPT.as_bytes()).is_empty());
        assert_eq!(g.take_answer().as_deref(), Some("pw\n"));
        assert_eq!(g.take_answer(), None);
        let rest = g.feed(format!("{SUDO_OK}\nscript says hi\n").as_bytes());
        assert!(g.open);
        assert_eq!(rest, b"script says hi\n");
    }

    #[test]
    fn sudo_gate_fails_on_second_prompt_or_unwanted_prompt() {
        let mut g = SudoGate::new(Some(Secret::new("pw".into())));
        g.feed(SUDO_PROMPT.as_bytes());
        g.take_answer();
        g.feed(format!("Sorry, try again.\n{SUDO_PROMPT}").as_bytes());
        assert!(g.failed && !g.open);
        assert_eq!(g.take_answer(), None);
        assert!(!g.failure_reason().contains("pw"));

        let mut g = SudoGate::new(None);
        g.feed(SUDO_PROMPT.as_bytes());
        assert!(g.failed);
    }

    #[test]
    fn sudo_command_keeps_secrets_off_the_command_line() {
        let c = sudo_command("sh -s", true);
        assert_eq!(
            c,
            format!("sudo -S -p '{SUDO_PROMPT}' -- sh -c 'echo '\\''{SUDO_OK}'\\'' >&2; sh -s'")
        );
        assert!(sudo_command("sh -s", false).starts_with("sudo -n -- sh -c "));
    }
}
