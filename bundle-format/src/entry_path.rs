//! Entry paths and symlink targets: the only names the extractor will ever create.
//!
//! A valid entry path is relative, `/`-separated, and made of normal components only: no
//! leading `/`, no empty, `.` or `..` component, no control character (NUL, newline,
//! escape: a name must not forge a line or a terminal sequence in `list`), at most 4096 bytes with components of
//! at most 255. A symlink target must be relative and, resolved lexically from the link's
//! directory, stay inside the bundle root.

/// Why a name in a manifest cannot be extracted safely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("entry path is empty")]
    Empty,
    #[error("entry path `{0}` is absolute")]
    Absolute(String),
    #[error("entry path `{0}` has an empty, `.` or `..` component")]
    BadComponent(String),
    /// NUL, newline, escape and the like: they forge lines and terminal output in `list`.
    #[error("entry path `{0}` contains a control character")]
    Control(String),
    #[error("entry path `{0}` is too long")]
    TooLong(String),
    #[error("symlink `{link}` -> `{target}` points outside the bundle")]
    EscapingLink { link: String, target: String },
}

const MAX_PATH: usize = 4096;
const MAX_COMPONENT: usize = 255;

/// Check an entry path.
pub fn check(path: &str) -> Result<(), PathError> {
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if path.chars().any(char::is_control) {
        return Err(PathError::Control(
            path.chars().take(256).collect::<String>().escape_debug().to_string(),
        ));
    }
    if path.starts_with('/') {
        return Err(PathError::Absolute(path.to_string()));
    }
    if path.len() > MAX_PATH {
        return Err(PathError::TooLong(path.chars().take(64).collect()));
    }
    for c in path.split('/') {
        if c.is_empty() || c == "." || c == ".." {
            return Err(PathError::BadComponent(path.to_string()));
        }
        if c.len() > MAX_COMPONENT {
            return Err(PathError::TooLong(path.chars().take(64).collect()));
        }
    }
    Ok(())
}

/// Check a symlink at `link` (a valid entry path) pointing at `target`.
///
/// The target must be relative, and every `..` must come before the first name: once the walk
/// goes down through a name, that name may itself be a symlink of the bundle, and a `..` after
/// it would climb from wherever that link points, which no textual check can bound. With the
/// `..`s first, they climb real directories (the link's own parents, which are directory
/// entries) and stay inside the root if there are not more of them than the link is deep.
pub fn check_link(link: &str, target: &str) -> Result<(), PathError> {
    let escaping = || PathError::EscapingLink {
        link: link.to_string(),
        target: target.to_string(),
    };
    if target.is_empty() || target.starts_with('/') || target.contains('\0') || target.len() > MAX_PATH {
        return Err(escaping());
    }
    let depth = link.split('/').count() - 1; // directories above the link
    let mut climbed = 0;
    let mut descended = false;
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." if descended => return Err(escaping()),
            ".." => climbed += 1,
            _ => descended = true,
        }
    }
    if climbed > depth {
        return Err(escaping());
    }
    Ok(())
}

/// The parent of an entry path, or `None` at the root.
pub fn parent(path: &str) -> Option<&str> {
    path.rfind('/').map(|i| &path[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_traversal_entry_is_rejected() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "a/./b",
            "a/",
            ".",
            "a\0b",
        ] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
        for good in ["a", "a/b/c", ".hidden", "a/..b", "x/y..z"] {
            check(good).unwrap();
        }
    }

    #[test]
    fn escaping_symlink_is_rejected() {
        check_link("a/b/link", "../c").unwrap();
        check_link("a/b/link", "../../top").unwrap();
        check_link("a/link", "./b/c").unwrap();
        for bad in ["../../../etc", "/etc/passwd", "", "../../.."] {
            assert!(check_link("a/b/link", bad).is_err(), "{bad:?}");
        }
        assert!(check_link("link", "..").is_err());
        for forged in [
            "a\nb",
            "etc/passwd\n-rw-r--r-- 0 root",
            "a\u{1b}[2Jb",
            "a\0b",
            "a\u{7f}",
        ] {
            assert!(matches!(check(forged), Err(PathError::Control(_))), "{forged:?}");
            assert!(!check(forged).unwrap_err().to_string().contains('\n'));
        }
        // A `..` after a name could climb out of wherever that name (maybe a link) points.
        assert!(check_link("a/link", "b/../c").is_err());
        let deep = format!("{}s", "d/".repeat(12));
        let through = format!("{deep}/{}etc/passwd", "../".repeat(12));
        assert!(
            check_link("t", &through).is_err(),
            "a chain through another link must be refused"
        );
    }
}
