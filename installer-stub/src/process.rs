//! Process supervision for the stub's long-running services (the registry, the node-local
//! balancer) where systemd does not run: start a child in its own session, find it again by its
//! pid file, wait until it is ready, stop on SIGTERM. One home for what both services need
//! (issue 13), so neither reaches into the other's module.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The pid written in `pid_file`, if that process is alive and its command line (arguments
/// joined by spaces) is one `ours` recognises: a recycled pid belongs to someone else.
pub(crate) fn live_pid(pid_file: &Path, ours: impl Fn(&str) -> bool) -> Option<i32> {
    let pid: i32 = fs::read_to_string(pid_file).ok()?.trim().parse().ok()?;
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    ours(&String::from_utf8_lossy(&cmdline).replace('\0', " ")).then_some(pid)
}

/// Starts `cmd` in its own session (the end of the SSH session that started it does not end
/// it), stdin from /dev/null, stdout and stderr to `log`. Returns its pid.
pub(crate) fn spawn_detached(mut cmd: Command, log: fs::File) -> std::io::Result<u32> {
    cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    Ok(cmd.spawn()?.id())
}

/// Asks `ready` every `every` until it says yes (true) or `limit` has passed (false). It is
/// asked once more at the deadline, so a slow last check still counts.
pub(crate) fn wait_until(limit: Duration, every: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if ready() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(every);
    }
}

/// The last `lines` lines of a service's log, joined by ` | `, for an error that says why it
/// did not come up. Empty when the log cannot be read.
pub(crate) fn log_tail(log: &Path, lines: usize) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let mut tail: Vec<&str> = text.lines().rev().take(lines).collect();
    tail.reverse();
    tail.join(" | ")
}

static TERMINATE: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_: libc::c_int) {
    TERMINATE.store(true, Ordering::SeqCst);
}

/// From now on SIGTERM and SIGINT only set a flag that [`terminating`] reads, so the service
/// can end cleanly (stop its child, remove its pid file, say goodbye).
pub(crate) fn catch_termination() {
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGTERM, on_term as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_term as *const () as libc::sighandler_t);
    }
}

/// Whether SIGTERM or SIGINT arrived since [`catch_termination`].
pub(crate) fn terminating() -> bool {
    TERMINATE.load(Ordering::SeqCst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_pid_needs_a_live_process_with_our_command_line() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("x.pid");
        assert_eq!(live_pid(&pid_file, |_| true), None, "no pid file");
        fs::write(&pid_file, format!("{}\n", std::process::id())).unwrap();
        let me = std::env::args().next().unwrap();
        assert_eq!(
            live_pid(&pid_file, |c| c.contains(&me)),
            Some(std::process::id() as i32)
        );
        assert_eq!(
            live_pid(&pid_file, |c| c.contains(" lb serve ")),
            None,
            "a recycled pid"
        );
        fs::write(&pid_file, "not a pid\n").unwrap();
        assert_eq!(live_pid(&pid_file, |_| true), None);
    }

    #[test]
    fn a_detached_child_leads_its_own_session_and_writes_to_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let log_path = dir.path().join("child.log");
        let log = fs::File::create(&log_path).unwrap();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo out; echo err >&2; sleep 5"]);
        let pid = spawn_detached(cmd, log).unwrap();
        let pid = i32::try_from(pid).unwrap();
        // SAFETY: getsid and kill on the pid of the child just started.
        let sid = unsafe { libc::getsid(pid) };
        assert_eq!(sid, pid, "the child is a session leader");
        assert!(wait_until(Duration::from_secs(5), Duration::from_millis(20), || {
            log_tail(&log_path, 5) == "out | err"
        }));
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }

    #[test]
    fn wait_until_returns_when_ready_or_at_the_deadline() {
        let mut asked = 0;
        assert!(wait_until(Duration::from_secs(5), Duration::from_millis(1), || {
            asked += 1;
            asked == 3
        }));
        assert_eq!(asked, 3);
        let start = Instant::now();
        assert!(!wait_until(
            Duration::from_millis(50),
            Duration::from_millis(10),
            || false
        ));
        assert!(start.elapsed() >= Duration::from_millis(50));
    }

    #[test]
    fn log_tail_keeps_the_last_lines_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("service.log");
        assert_eq!(log_tail(&log, 5), "");
        fs::write(&log, "1\n2\n3\n4\n5\n6\n7\n").unwrap();
        assert_eq!(log_tail(&log, 5), "3 | 4 | 5 | 6 | 7");
    }
}
