//! Helm's `.Files` object: a chart's non-template files and its methods (`Get`, `GetBytes`,
//! `Glob`, `Lines`, `AsConfig`, `AsSecrets`), as `pkg/engine/files.go` defines them. Those that
//! build template values (`Lines`, `AsConfig`, `AsSecrets`) are in `convert.rs`: a `Value` holds
//! `Files`, so this file uses neither `value.rs` nor `yaml/`.

mod convert;

use std::collections::BTreeMap;

/// The files of one chart that templates can read, keyed by path relative to the chart root.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Files {
    files: BTreeMap<String, Vec<u8>>,
}

impl Files {
    /// Wraps a set of files.
    pub fn new(files: BTreeMap<String, Vec<u8>>) -> Self {
        Files { files }
    }

    /// True when there are no files.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The file names in sorted order.
    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.files.keys()
    }

    /// `.Files.Get`: the file's text, or "" when it is absent.
    pub fn get(&self, name: &str) -> String {
        self.files
            .get(name)
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default()
    }

    /// `.Files.Glob`: the files whose path matches a glob (`*`, `?`, `[...]`, `**`).
    pub fn glob(&self, pattern: &str) -> Files {
        let files = self
            .files
            .iter()
            .filter(|(k, _)| glob_match(pattern.as_bytes(), k.as_bytes()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Files { files }
    }
}

/// Glob matching as Helm's `gobwas/glob` with `/` as separator: `*` stays within a path
/// segment, `**` crosses segments, `?` is one character, `[abc]`/`[!a-z]` are classes,
/// `{a,b}` alternatives.
pub fn glob_match(pat: &[u8], s: &[u8]) -> bool {
    glob_rec(pat, s, 0)
}

fn glob_rec(pat: &[u8], s: &[u8], depth: usize) -> bool {
    if depth > 64 {
        return false;
    }
    if pat.is_empty() {
        return s.is_empty();
    }
    match pat[0] {
        b'*' => {
            let double = pat.get(1) == Some(&b'*');
            let rest = if double { &pat[2..] } else { &pat[1..] };
            for i in 0..=s.len() {
                if glob_rec(rest, &s[i..], depth + 1) {
                    return true;
                }
                if i < s.len() && s[i] == b'/' && !double {
                    return false;
                }
            }
            false
        }
        b'?' => !s.is_empty() && s[0] != b'/' && glob_rec(&pat[1..], &s[1..], depth + 1),
        b'[' => {
            let Some(end) = pat.iter().position(|&c| c == b']') else {
                return !s.is_empty() && s[0] == b'[' && glob_rec(&pat[1..], &s[1..], depth + 1);
            };
            if s.is_empty() {
                return false;
            }
            let class = &pat[1..end];
            let (neg, class) = match class.first() {
                Some(b'!') | Some(b'^') => (true, &class[1..]),
                _ => (false, class),
            };
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == b'-' {
                    if class[i] <= s[0] && s[0] <= class[i + 2] {
                        hit = true;
                    }
                    i += 3;
                } else {
                    if class[i] == s[0] {
                        hit = true;
                    }
                    i += 1;
                }
            }
            hit != neg && glob_rec(&pat[end + 1..], &s[1..], depth + 1)
        }
        b'{' => {
            let Some(end) = pat.iter().position(|&c| c == b'}') else {
                return !s.is_empty() && s[0] == b'{' && glob_rec(&pat[1..], &s[1..], depth + 1);
            };
            pat[1..end].split(|&c| c == b',').any(|alt| {
                let mut p = alt.to_vec();
                p.extend_from_slice(&pat[end + 1..]);
                glob_rec(&p, s, depth + 1)
            })
        }
        b'\\' if pat.len() > 1 => !s.is_empty() && s[0] == pat[1] && glob_rec(&pat[2..], &s[1..], depth + 1),
        c => !s.is_empty() && s[0] == c && glob_rec(&pat[1..], &s[1..], depth + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn files() -> Files {
        let mut m = BTreeMap::new();
        m.insert("config/a.conf".to_string(), b"x=1\ny=2".to_vec());
        m.insert("config/sub/b.conf".to_string(), b"z".to_vec());
        m.insert("README.md".to_string(), b"hi".to_vec());
        Files::new(m)
    }

    #[test]
    fn globs() {
        assert!(glob_match(b"config/*.conf", b"config/a.conf"));
        assert!(!glob_match(b"config/*.conf", b"config/sub/b.conf"));
        assert!(glob_match(b"config/**.conf", b"config/sub/b.conf"));
        assert!(glob_match(b"*.{md,txt}", b"README.md"));
        assert_eq!(files().glob("config/**").names().count(), 2);
    }

    #[test]
    fn get_is_the_text_or_empty() {
        let f = files();
        assert_eq!(f.get("README.md"), "hi");
        assert_eq!(f.get("missing"), "");
    }
}
