//! Preflight: read-only checks on every target host at once, shown as one table. Nothing on
//! any host is changed (the only write is a new host key recorded on the master under
//! `accept-new`), and one failing host stops the whole install before any work.
//!
//! Per host: reachable, authenticated, root (directly or through sudo), architecture and OS,
//! free disk at the install root against what this bundle puts there, required ports free
//! (the registry port on the registry host, and the ports of the bundle's
//! `delivery.ports.master` / `delivery.ports.node` labels, on hosts not installed yet), clock
//! skew against the master, and unique hostnames.

use std::collections::BTreeMap;
use std::time::Duration;

use terminal::json_lines;

/// Largest clock difference to the master accepted (certificates and etcd need agreeing clocks).
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(5);

/// The read-only script; `ROOT` and `PORTS` come from its environment.
pub const SCRIPT: &str = r#"
echo "uid=$(id -u)"
echo "hostname=$(hostname 2>/dev/null || cat /proc/sys/kernel/hostname)"
echo "arch=$(uname -m)"
if [ -r /etc/os-release ]; then . /etc/os-release; echo "os=${ID:-linux} ${VERSION_ID:-}"; else echo "os=$(uname -s)"; fi
d="$ROOT"; while [ ! -d "$d" ]; do d=$(dirname "$d"); done
echo "free_kib=$(df -Pk "$d" | awk 'NR==2 {print $4}')"
echo "installer_id=$(cat "$ROOT/.installer-id" 2>/dev/null || true)"
for p in $PORTS; do
  hex=$(printf '%04X' "$p")
  if cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk -v h="$hex" '$4 == "0A" { n = split($2, a, ":"); if (a[n] == h) f = 1 } END { exit !f }'; then
    echo "port_busy=$p"
  fi
done
t=$(date +%s.%N); case "$t" in *N*) t=$(date +%s) ;; esac
echo "time=$t"
"#;

/// What a host told us.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    pub uid: Option<u32>,
    pub hostname: String,
    pub arch: String,
    pub os: String,
    pub free_bytes: Option<u64>,
    pub installer_id: String,
    pub busy_ports: Vec<u16>,
    /// Host clock minus the master's, in seconds (the master's clock taken mid-call).
    pub clock_skew: Option<f64>,
}

/// Parses the script's `key=value` lines; `local_mid` is the master's clock (seconds since the
/// epoch) half-way through the call.
pub fn parse(output: &str, local_mid: f64) -> Facts {
    let mut f = Facts::default();
    for line in output.lines() {
        let Some((k, v)) = line.split_once('=') else { continue };
        let v = v.trim();
        match k {
            "uid" => f.uid = v.parse().ok(),
            "hostname" => f.hostname = v.to_string(),
            "arch" => f.arch = v.to_string(),
            "os" => f.os = v.to_string(),
            "free_kib" => f.free_bytes = v.parse::<u64>().ok().map(|k| k * 1024),
            "installer_id" => f.installer_id = v.to_string(),
            "port_busy" => f.busy_ports.extend(v.parse::<u16>().ok()),
            "time" => f.clock_skew = v.parse::<f64>().ok().map(|t| t - local_mid),
            _ => {}
        }
    }
    f
}

/// What this bundle needs on one host.
#[derive(Debug, Clone, Default)]
pub struct Needs {
    pub bytes: u64,
    pub ports: Vec<u16>,
}

/// One host's row of the table.
#[derive(Debug, Clone)]
pub struct Row {
    pub address: String,
    pub facts: Option<Facts>,
    pub needs: Needs,
    /// Every problem found, in words, each saying what to do.
    pub problems: Vec<String>,
}

impl Row {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The row as `install --json` prints it.
    pub fn json(&self) -> json_lines::Preflight<'_> {
        json_lines::Preflight {
            address: &self.address,
            facts: self.facts.as_ref().map(|f| json_lines::Facts {
                uid: f.uid,
                hostname: &f.hostname,
                arch: &f.arch,
                os: &f.os,
                free_bytes: f.free_bytes,
                installer_id: &f.installer_id,
                busy_ports: &f.busy_ports,
                clock_skew: f.clock_skew,
            }),
            needs: json_lines::Needs {
                bytes: self.needs.bytes,
                ports: &self.needs.ports,
            },
            problems: &self.problems,
        }
    }
}

/// The `uname -m` this installer's binaries are for.
pub fn machine_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "x86_64",
        "aarch64" => "aarch64",
        other => other,
    }
}

/// Checks one host's facts against its needs; `arch` is the architecture required.
pub fn evaluate(facts: &Facts, needs: &Needs, arch: &str) -> Vec<String> {
    let mut p = Vec::new();
    if facts.uid != Some(0) {
        p.push(format!(
            "commands do not run as root (uid {}): set `sudo = true` for this host's user",
            facts.uid.map_or("unknown".into(), |u| u.to_string())
        ));
    }
    if facts.arch != arch {
        p.push(format!(
            "architecture is {}, this bundle is for {arch}: use the bundle built for {}",
            if facts.arch.is_empty() { "unknown" } else { &facts.arch },
            if facts.arch.is_empty() { "it" } else { &facts.arch }
        ));
    }
    match facts.free_bytes {
        Some(free) if free < needs.bytes => p.push(format!(
            "only {} free under /var/lib/delivery, {} needed: free some space",
            terminal::bytes(free),
            terminal::bytes(needs.bytes)
        )),
        None => p.push("could not read the free disk space (df)".to_string()),
        _ => {}
    }
    for port in &needs.ports {
        if facts.busy_ports.contains(port) {
            p.push(format!(
                "port {port} is already in use: stop what listens there (`ss -ltnp 'sport = :{port}'`)"
            ));
        }
    }
    match facts.clock_skew {
        Some(s) if s.abs() > MAX_CLOCK_SKEW.as_secs_f64() => p.push(format!(
            "clock is {s:+.1} s off the master's (more than {} s): synchronise the clocks (NTP/chrony)",
            MAX_CLOCK_SKEW.as_secs()
        )),
        None => p.push("could not read the clock".to_string()),
        _ => {}
    }
    p
}

/// Adds a problem to every host whose hostname another host also has.
pub fn check_unique_hostnames(rows: &mut [Row]) {
    let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in rows.iter() {
        if let Some(f) = &r.facts {
            if !f.hostname.is_empty() {
                by_name.entry(f.hostname.clone()).or_default().push(r.address.clone());
            }
        }
    }
    for r in rows.iter_mut() {
        let Some(f) = &r.facts else { continue };
        if let Some(same) = by_name.get(&f.hostname).filter(|v| v.len() > 1) {
            let others: Vec<&str> = same.iter().filter(|a| **a != r.address).map(String::as_str).collect();
            r.problems.push(format!(
                "hostname `{}` is also the hostname of {}: give every host its own (or two addresses reach the same host)",
                f.hostname,
                others.join(", ")
            ));
        }
    }
}

/// The table for people.
pub fn render(rows: &[Row]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<16} {:<14} {:<6} {:<5} {:<8} {:<14} {:<21} {:<8} {:<7} RESULT",
        "HOST", "HOSTNAME", "SSH", "ROOT", "ARCH", "OS", "DISK FREE/NEEDED", "PORTS", "CLOCK"
    );
    for r in rows {
        match &r.facts {
            None => {
                let _ = writeln!(
                    s,
                    "{:<16} {:<14} {:<6} {:<5} {:<8} {:<14} {:<21} {:<8} {:<7} FAILED",
                    r.address, "-", "FAIL", "-", "-", "-", "-", "-", "-"
                );
            }
            Some(f) => {
                let disk = match f.free_bytes {
                    Some(b) => format!("{}/{}", terminal::bytes(b), terminal::bytes(r.needs.bytes)),
                    None => "?".into(),
                };
                let ports = if r.needs.ports.iter().any(|p| f.busy_ports.contains(p)) {
                    "BUSY"
                } else {
                    "ok"
                };
                let clock = f.clock_skew.map_or("?".to_string(), |c| format!("{c:+.1}s"));
                let _ = writeln!(
                    s,
                    "{:<16} {:<14} {:<6} {:<5} {:<8} {:<14} {:<21} {:<8} {:<7} {}",
                    r.address,
                    truncate(&f.hostname, 14),
                    "ok",
                    if f.uid == Some(0) { "ok" } else { "NO" },
                    f.arch,
                    truncate(&f.os, 14),
                    disk,
                    ports,
                    clock,
                    if r.ok() { "ok" } else { "FAILED" }
                );
            }
        }
    }
    for r in rows.iter().filter(|r| !r.ok()) {
        for p in &r.problems {
            let _ = writeln!(s, "  {}: {p}", r.address);
        }
    }
    s
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('~');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUT: &str = "uid=0\nhostname=node1\narch=x86_64\nos=debian 12\nfree_kib=1048576\ninstaller_id=abc\nport_busy=5000\ntime=1000.5\n";

    #[test]
    fn parses_the_script_output() {
        let f = parse(OUT, 1000.0);
        assert_eq!(f.uid, Some(0));
        assert_eq!(f.hostname, "node1");
        assert_eq!(f.free_bytes, Some(1 << 30));
        assert_eq!(f.busy_ports, [5000]);
        assert_eq!(f.installer_id, "abc");
        assert_eq!(f.clock_skew, Some(0.5));
    }

    #[test]
    fn finds_each_problem_with_advice() {
        let f = parse(OUT, 1000.0);
        let fine = Needs {
            bytes: 1,
            ports: vec![22],
        };
        assert!(evaluate(&f, &fine, "x86_64").is_empty());
        let p = evaluate(
            &f,
            &Needs {
                bytes: 2 << 30,
                ports: vec![5000],
            },
            "aarch64",
        );
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].contains("architecture is x86_64"));
        assert!(p[1].contains("1.0 GiB free") && p[1].contains("2.0 GiB needed"));
        assert!(p[2].contains("port 5000"));
        let skewed = parse(&OUT.replace("uid=0", "uid=1000"), 990.0);
        let p = evaluate(&skewed, &fine, "x86_64");
        assert!(p[0].contains("sudo = true") && p[1].contains("+10.5 s"), "{p:?}");
    }

    #[test]
    fn duplicate_hostnames_fail_both_hosts() {
        let f = parse(OUT, 1000.0);
        let row = |a: &str| Row {
            address: a.into(),
            facts: Some(f.clone()),
            needs: Needs::default(),
            problems: vec![],
        };
        let mut rows = vec![
            row("10.0.0.1"),
            row("10.0.0.2"),
            Row {
                facts: None,
                ..row("10.0.0.3")
            },
        ];
        check_unique_hostnames(&mut rows);
        assert!(rows[0].problems[0].contains("also the hostname of 10.0.0.2"));
        assert!(rows[1].problems[0].contains("10.0.0.1"));
        assert!(rows[2].problems.is_empty());
        let table = render(&rows);
        assert!(table.contains("10.0.0.3") && table.contains("FAILED"), "{table}");
    }
}
