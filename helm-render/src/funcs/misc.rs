//! Sprig functions whose real output does not matter for finding images, made deterministic:
//! random strings and UUIDs, certificates and keys (placeholder PEM text), password hashes,
//! dates (Go layouts, UTC), paths (`base`, `dir`, `ext`, `clean`) and URLs.

use super::{want, want_at_least, FnResult};
use crate::template::Executor;
use crate::value::{to_i64, to_str, Map, Value};

/// Dispatches these functions; `None` when `name` is not one of them.
pub fn call(ex: &mut Executor<'_>, name: &str, a: &[Value]) -> Option<FnResult> {
    let arg = |i: usize| a.get(i).map(to_str).unwrap_or_default();
    let r = match name {
        "randAlphaNum" | "randAlpha" | "randNumeric" | "randAscii" => want(name, a, 1).and_then(|_| {
            let n = to_i64(&a[0]);
            if !(0..=1 << 20).contains(&n) {
                return Err(format!("{name}: bad length {n}").into());
            }
            let set: &[u8] = match name {
                "randAlphaNum" => b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
                "randAlpha" => b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
                "randNumeric" => b"0123456789",
                _ => b"!#$%&()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_abcdefghijklmnopqrstuvwxyz{|}~",
            };
            Ok(Value::String(
                (0..n)
                    .map(|_| set[(next_rand(ex) % set.len() as u64) as usize] as char)
                    .collect(),
            ))
        }),
        "randBytes" => want(name, a, 1).map(|_| {
            let n = to_i64(&a[0]).clamp(0, 1 << 16);
            let bytes: Vec<u8> = (0..n).map(|_| next_rand(ex) as u8).collect();
            use base64::Engine as _;
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
        }),
        "randInt" => want(name, a, 2).map(|_| {
            let (lo, hi) = (to_i64(&a[0]), to_i64(&a[1]));
            let span = hi.saturating_sub(lo).max(1) as u64;
            Value::Int(lo + (next_rand(ex) % span) as i64)
        }),
        "uuidv4" => {
            let (x, y) = (next_rand(ex), next_rand(ex));
            let h = format!("{x:016x}{y:016x}");
            Ok(Value::String(format!(
                "{}-{}-4{}-a{}-{}",
                &h[0..8],
                &h[8..12],
                &h[13..16],
                &h[17..20],
                &h[20..32]
            )))
        }
        "genPrivateKey" => Ok(Value::str(pem("PRIVATE KEY"))),
        "genCA"
        | "genCAWithKey"
        | "genSelfSignedCert"
        | "genSelfSignedCertWithKey"
        | "genSignedCert"
        | "genSignedCertWithKey"
        | "buildCustomCert" => {
            let mut m = Map::new();
            m.insert("Cert".into(), Value::str(pem("CERTIFICATE")));
            m.insert("Key".into(), Value::str(pem("RSA PRIVATE KEY")));
            Ok(Value::Map(m))
        }
        "derivePassword" => want(name, a, 5).map(|_| {
            let digest = ring::digest::digest(
                &ring::digest::SHA256,
                format!("{}{}{}{}", arg(1), arg(2), arg(3), arg(4)).as_bytes(),
            );
            Value::String(super::encoding::hex(&digest.as_ref()[..10]))
        }),
        "htpasswd" => want(name, a, 2).map(|_| Value::String(format!("{}:{}", arg(0), placeholder_hash(&arg(1))))),
        "bcrypt" => want(name, a, 1).map(|_| Value::String(placeholder_hash(&arg(0)))),
        "encryptAES" | "decryptAES" => want(name, a, 2).map(|_| Value::String(arg(1))),
        "now" => Ok(Value::Int(unix_now())),
        "unixEpoch" => want(name, a, 1).map(|_| Value::String(to_i64(&a[0]).to_string())),
        "date" => want(name, a, 2).map(|_| Value::String(format_date(&arg(0), to_i64(&a[1])))),
        "dateInZone" => want(name, a, 3).map(|_| Value::String(format_date(&arg(0), to_i64(&a[1])))),
        "htmlDate" => want(name, a, 1).map(|_| Value::String(format_date("2006-01-02", to_i64(&a[0])))),
        "htmlDateInZone" => want(name, a, 2).map(|_| Value::String(format_date("2006-01-02", to_i64(&a[0])))),
        "ago" => want(name, a, 1).map(|_| Value::String(format!("{}s", (unix_now() - to_i64(&a[0])).max(0)))),
        "toDate" | "mustToDate" => want(name, a, 2).map(|_| Value::Int(0)),
        "dateModify" | "mustDateModify" => want(name, a, 2).map(|_| a[1].clone()),
        "duration" => want(name, a, 1).map(|_| Value::String(format!("{}s", to_i64(&a[0])))),
        "durationRound" => want(name, a, 1).map(|_| Value::String(arg(0))),
        "base" => want(name, a, 1).map(|_| Value::String(path_base(&arg(0)))),
        "dir" => want(name, a, 1).map(|_| Value::String(path_dir(&arg(0)))),
        "clean" => want(name, a, 1).map(|_| Value::String(path_clean(&arg(0)))),
        "ext" => want(name, a, 1).map(|_| {
            let b = path_base(&arg(0));
            Value::String(b.rfind('.').map(|i| b[i..].to_string()).unwrap_or_default())
        }),
        "isAbs" => want(name, a, 1).map(|_| Value::Bool(arg(0).starts_with('/'))),
        "urlParse" => want(name, a, 1).map(|_| url_parse(&arg(0))),
        "urlJoin" => want(name, a, 1).map(|_| url_join(&a[0])),
        "fromYamlFile" | "getHostByNames" => want_at_least(name, a, 0).map(|_| Value::Null),
        _ => return None,
    };
    Some(r)
}

fn next_rand(ex: &mut Executor<'_>) -> u64 {
    // xorshift64*: deterministic so that the same chart renders the same bytes.
    let mut x = ex.rand_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    ex.rand_state = x;
    x.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

fn pem(kind: &str) -> String {
    format!("-----BEGIN {kind}-----\nUExBQ0VIT0xERVI=\n-----END {kind}-----\n")
}

fn placeholder_hash(s: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    format!("$2a$10${}", super::encoding::hex(&d.as_ref()[..26]))
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Formats a Unix time (UTC) with a Go reference layout ("2006-01-02T15:04:05Z07:00").
fn format_date(layout: &str, secs: i64) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DAYS: [&str; 7] = [
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
    ];
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, mo, d) = civil(days);
    let (h, mi, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    let wd = DAYS[days.rem_euclid(7) as usize];
    let month = MONTHS[(mo - 1) as usize];
    let subs: [(&str, String); 22] = [
        ("January", month.to_string()),
        ("Monday", wd.to_string()),
        ("Z07:00", "Z".into()),
        ("-07:00", "+00:00".into()),
        ("-0700", "+0000".into()),
        ("2006", format!("{y:04}")),
        ("Jan", month[..3].to_string()),
        ("Mon", wd[..3].to_string()),
        ("MST", "UTC".into()),
        (".000", ".000".into()),
        ("01", format!("{mo:02}")),
        ("02", format!("{d:02}")),
        ("_2", format!("{d:>2}")),
        ("15", format!("{h:02}")),
        ("03", format!("{:02}", if h % 12 == 0 { 12 } else { h % 12 })),
        ("04", format!("{mi:02}")),
        ("05", format!("{s:02}")),
        ("06", format!("{:02}", y % 100)),
        ("PM", if h >= 12 { "PM" } else { "AM" }.into()),
        ("1", mo.to_string()),
        ("2", d.to_string()),
        ("3", (if h % 12 == 0 { 12 } else { h % 12 }).to_string()),
    ];
    let mut out = String::new();
    let mut rest = layout;
    'outer: while !rest.is_empty() {
        for (pat, val) in &subs {
            if let Some(r) = rest.strip_prefix(pat) {
                out.push_str(val);
                rest = r;
                continue 'outer;
            }
        }
        let c = rest.chars().next().unwrap_or(' ');
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Go's `path.Clean`.
fn path_clean(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let abs = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !abs {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    match (abs, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

fn path_base(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        return "/".into();
    }
    t.rsplit('/').next().unwrap_or(t).to_string()
}

fn path_dir(p: &str) -> String {
    match p.rfind('/') {
        Some(i) => path_clean(&p[..=i]),
        None => ".".into(),
    }
}

fn url_parse(u: &str) -> Value {
    let mut m = Map::new();
    let (rest, fragment) = u.split_once('#').map_or((u, ""), |(a, b)| (a, b));
    let (rest, query) = rest.split_once('?').map_or((rest, ""), |(a, b)| (a, b));
    let (scheme, rest) = match rest.split_once("://") {
        Some((s, r)) => (s, r),
        None => ("", rest),
    };
    let (authority, path) = if scheme.is_empty() {
        ("", rest)
    } else {
        match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        }
    };
    let (userinfo, host) = authority.rsplit_once('@').map_or(("", authority), |(a, b)| (a, b));
    for (k, v) in [
        ("scheme", scheme),
        ("host", host),
        ("hostname", host.rsplit_once(':').map_or(host, |(h, _)| h)),
        ("path", path),
        ("query", query),
        ("fragment", fragment),
        ("userinfo", userinfo),
        ("opaque", ""),
    ] {
        m.insert(k.into(), Value::str(v));
    }
    Value::Map(m)
}

fn url_join(v: &Value) -> Value {
    let get = |k: &str| v.path(k).map(to_str).unwrap_or_default();
    let mut out = String::new();
    if !get("scheme").is_empty() {
        out.push_str(&format!("{}://", get("scheme")));
    }
    if !get("userinfo").is_empty() {
        out.push_str(&format!("{}@", get("userinfo")));
    }
    out.push_str(&get("host"));
    out.push_str(&get("path"));
    if !get("query").is_empty() {
        out.push_str(&format!("?{}", get("query")));
    }
    if !get("fragment").is_empty() {
        out.push_str(&format!("#{}", get("fragment")));
    }
    Value::String(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_paths() {
        assert_eq!(format_date("2006-01-02T15:04:05Z07:00", 0), "1970-01-01T00:00:00Z");
        assert_eq!(format_date("Jan 2, 2006", 1_700_000_000), "Nov 14, 2023");
        assert_eq!(path_clean("a/../b/./c/"), "b/c");
        assert_eq!(path_base("/x/y.tar.gz"), "y.tar.gz");
        assert_eq!(path_dir("/x/y"), "/x");
        let u = url_parse("https://user@host:5000/p?q=1#f");
        assert_eq!(u.path("hostname"), Some(&Value::str("host")));
        assert_eq!(url_join(&u), Value::str("https://user@host:5000/p?q=1#f"));
    }
}
