//! [`ContextError`]: why the build context cannot provide what a COPY or APP asks for, with the
//! Kubefile position and text of the offending source or destination.

use std::path::PathBuf;

/// Why the build context cannot provide what the Kubefile asks for. Every variant but
/// [`ContextError::BadContext`] carries the Kubefile path, the line and column of the
/// offending source or destination token and its text as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    #[error("build context {context} is not a readable directory: {error}\n  hint: the build context must be an existing directory")]
    BadContext { context: PathBuf, error: String },
    #[error("{file}:{line}:{column}: {instruction} source `{text}` not found in build context {context}\n  hint: sources are paths relative to the build context")]
    NotFound {
        file: PathBuf,
        line: usize,
        column: usize,
        instruction: &'static str,
        text: String,
        context: PathBuf,
    },
    #[error("{file}:{line}:{column}: {instruction} source pattern `{text}` matched nothing in build context {context}\n  hint: sources are paths relative to the build context")]
    NoMatch {
        file: PathBuf,
        line: usize,
        column: usize,
        instruction: &'static str,
        text: String,
        context: PathBuf,
    },
    #[error("{file}:{line}:{column}: invalid glob pattern `{text}`: {error}\n  hint: write `[[]` for a literal `[`")]
    BadPattern {
        file: PathBuf,
        line: usize,
        column: usize,
        text: String,
        error: String,
    },
    #[error("{file}:{line}:{column}: {instruction} source `{text}` resolves to {resolved}, outside the build context {context}\n  hint: only files inside the build context can be copied; move them into it")]
    Escapes {
        file: PathBuf,
        line: usize,
        column: usize,
        instruction: &'static str,
        text: String,
        resolved: PathBuf,
        context: PathBuf,
    },
    #[error("{file}:{line}:{column}: {instruction} source `{text}` is a symlink {link} to `{target}`, which does not exist\n  hint: fix the link or copy its target")]
    BrokenSymlink {
        file: PathBuf,
        line: usize,
        column: usize,
        instruction: &'static str,
        text: String,
        link: PathBuf,
        target: String,
    },
    #[error("{file}:{line}:{column}: COPY destination `{text}` {problem}\n  hint: destinations are paths inside the bundle, relative to its root")]
    BadDest {
        file: PathBuf,
        line: usize,
        column: usize,
        text: String,
        problem: &'static str,
    },
    #[error("{file}:{line}:{column}: symlink {link} has the absolute target `{target}` (copied by {instruction} `{text}`)\n  hint: make the target relative to the link's directory and inside the copied directory, or copy the target itself")]
    AbsoluteSymlink {
        file: PathBuf,
        line: usize,
        column: usize,
        instruction: &'static str,
        text: String,
        link: PathBuf,
        target: String,
    },
    #[error("{file}:{line}:{column}: symlink {link} -> `{target}` points outside the copied directory {tree} (copied by {instruction} `{text}`)\n  hint: keep link targets inside the copied directory, or copy the target itself")]
    EscapingSymlink {
        file: PathBuf,
        line: usize,
        column: usize,
        instruction: &'static str,
        text: String,
        link: PathBuf,
        target: String,
        tree: PathBuf,
    },
    #[error("{file}:{line}:{column}: {path} is a {kind} (copied by {instruction} `{text}`)\n  hint: only regular files, directories and symlinks can be copied")]
    SpecialFile {
        file: PathBuf,
        line: usize,
        column: usize,
        instruction: &'static str,
        text: String,
        path: PathBuf,
        kind: &'static str,
    },
    #[error("{file}:{line}:{column}: path {path} is not valid UTF-8 (copied by {instruction} `{text}`)\n  hint: rename it; bundle paths must be UTF-8")]
    NonUtf8 {
        file: PathBuf,
        line: usize,
        column: usize,
        instruction: &'static str,
        text: String,
        path: PathBuf,
    },
    #[error("{file}:{line}:{column}: cannot read {path}: {error} (copied by {instruction} `{text}`)")]
    Io {
        file: PathBuf,
        line: usize,
        column: usize,
        instruction: &'static str,
        text: String,
        path: PathBuf,
        error: String,
    },
}
