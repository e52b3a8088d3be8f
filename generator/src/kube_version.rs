//! Kubernetes version constraints, as sealer's `KUBEVERSION` and Helm's `kubeVersion` write
//! them (the Masterminds/semver syntax): `1.22 - 1.24`, `>=1.25`, `>= 1.19, < 1.22`,
//! `~1.28`, `^1.2`, `1.27.x`, alternatives joined by `||`. Pre-release suffixes such as
//! `-0` (Helm's idiom to admit `v1.28.3-gke.1`) are accepted and ignored: a cluster's version
//! is compared by major, minor and patch.
//!
//! A partial version stands for every version it prefixes: `<= 1.24` admits 1.24.9 and
//! `1.22 - 1.24` admits 1.22.0 to 1.24.x, as in Masterminds.

use std::fmt;

/// A version: major, minor, patch (missing parts are 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u64, pub u64, pub u64);

impl Version {
    /// `v1.35.1`, `1.35`, `1.35.1-gke.100` (suffix ignored).
    pub fn parse(text: &str) -> Option<Version> {
        let p = Partial::parse(text).ok()?;
        Some(p.floor())
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// Why a version or a constraint does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConstraintError {
    #[error("`{text}` is not a version")]
    NotAVersion { text: String },
    #[error("`{text}` has more than three parts")]
    TooManyParts { text: String },
    #[error("`{text}`: a number after a wildcard")]
    NumberAfterWildcard { text: String },
    #[error("`{text}` is not a version: `{piece}` is not a number")]
    NotANumber { text: String, piece: String },
    #[error("empty alternative in `{text}`")]
    EmptyAlternative { text: String },
    #[error("`{token}`: `!=` is not supported; write the admitted ranges joined by `||`")]
    NotEqual { token: String },
    #[error("`{token}`: unknown operator `{op}`")]
    UnknownOperator { token: String, op: String },
}

/// A version as written, where `x`/`*` or a missing part is a wildcard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Partial {
    parts: [Option<u64>; 3],
}

impl Partial {
    fn parse(text: &str) -> Result<Partial, ConstraintError> {
        let t = text.trim();
        let t = t.strip_prefix(['v', 'V']).unwrap_or(t);
        // Pre-release and build suffixes are ignored.
        let t = t.split(['-', '+']).next().unwrap_or_default();
        if t.is_empty() {
            return Err(ConstraintError::NotAVersion { text: text.to_string() });
        }
        let mut parts = [None; 3];
        let mut wild = false;
        for (i, piece) in t.split('.').enumerate() {
            if i >= 3 {
                return Err(ConstraintError::TooManyParts { text: text.to_string() });
            }
            if matches!(piece, "x" | "X" | "*") {
                wild = true;
                continue;
            }
            if wild {
                return Err(ConstraintError::NumberAfterWildcard { text: text.to_string() });
            }
            parts[i] = Some(piece.parse().map_err(|_| ConstraintError::NotANumber {
                text: text.to_string(),
                piece: piece.to_string(),
            })?);
        }
        Ok(Partial { parts })
    }

    /// How many leading parts are given.
    fn given(&self) -> usize {
        self.parts.iter().take_while(|p| p.is_some()).count()
    }

    fn floor(&self) -> Version {
        let [a, b, c] = self.parts;
        Version(a.unwrap_or(0), b.unwrap_or(0), c.unwrap_or(0))
    }

    /// The first version past everything this prefix names (None: no upper end, `*`).
    fn ceiling(&self) -> Option<Version> {
        let Version(a, b, c) = self.floor();
        match self.given() {
            0 => None,
            1 => Some(Version(a + 1, 0, 0)),
            2 => Some(Version(a, b + 1, 0)),
            _ => Some(Version(a, b, c + 1)),
        }
    }
}

/// One `lower <= v < upper` interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    lower: Option<(Version, bool)>, // (bound, inclusive)
    upper: Option<(Version, bool)>,
}

impl Range {
    const ALL: Range = Range {
        lower: None,
        upper: None,
    };

    fn contains(&self, v: Version) -> bool {
        let lower_ok = match self.lower {
            None => true,
            Some((b, true)) => v >= b,
            Some((b, false)) => v > b,
        };
        let upper_ok = match self.upper {
            None => true,
            Some((b, true)) => v <= b,
            Some((b, false)) => v < b,
        };
        lower_ok && upper_ok
    }

    fn at_least(v: Version) -> Range {
        Range {
            lower: Some((v, true)),
            upper: None,
        }
    }

    fn below(v: Option<Version>) -> Range {
        Range {
            lower: None,
            upper: v.map(|v| (v, false)),
        }
    }

    fn between(lower: Version, upper: Option<Version>) -> Range {
        Range {
            lower: Some((lower, true)),
            upper: upper.map(|v| (v, false)),
        }
    }
}

/// A parsed constraint: any of several sets of ranges that must all hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    text: String,
    alternatives: Vec<Vec<Range>>,
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Constraint {
    pub fn parse(text: &str) -> Result<Constraint, ConstraintError> {
        let mut alternatives = Vec::new();
        for alt in text.split("||") {
            let alt = alt.trim();
            if alt.is_empty() {
                return Err(ConstraintError::EmptyAlternative { text: text.to_string() });
            }
            alternatives.push(parse_and(alt)?);
        }
        Ok(Constraint {
            text: text.trim().to_string(),
            alternatives,
        })
    }

    pub fn matches(&self, v: Version) -> bool {
        self.alternatives.iter().any(|all| all.iter().all(|r| r.contains(v)))
    }
}

/// `A - B`, or comparators separated by commas or blanks.
fn parse_and(text: &str) -> Result<Vec<Range>, ConstraintError> {
    if let Some((a, b)) = text.split_once(" - ") {
        let (a, b) = (Partial::parse(a)?, Partial::parse(b)?);
        return Ok(vec![Range::between(a.floor(), b.ceiling())]);
    }
    // Tokens: an operator may stand apart from its version (`>= 1.19`).
    let mut tokens: Vec<String> = Vec::new();
    for word in text.split([',', ' ', '\t']).filter(|w| !w.is_empty()) {
        match tokens.last_mut() {
            Some(last) if last.chars().all(|c| "<>=!~^".contains(c)) => last.push_str(word),
            _ => tokens.push(word.to_string()),
        }
    }
    tokens.iter().map(|t| comparator(t)).collect()
}

fn comparator(token: &str) -> Result<Range, ConstraintError> {
    let op_len = token.chars().take_while(|c| "<>=!~^".contains(*c)).count();
    let (op, rest) = token.split_at(op_len);
    let p = Partial::parse(rest)?;
    let (floor, ceiling) = (p.floor(), p.ceiling());
    Ok(match op {
        "" | "=" | "==" => match p.given() {
            0 => Range::ALL,
            _ => Range::between(floor, ceiling),
        },
        ">=" | "=>" => Range::at_least(floor),
        ">" => match ceiling {
            // `> 1.24` is past every 1.24.x
            Some(c) if p.given() < 3 => Range::at_least(c),
            _ => Range {
                lower: Some((floor, false)),
                upper: None,
            },
        },
        "<" => Range::below(Some(floor)),
        "<=" | "=<" => Range::below(ceiling),
        "~" | "~>" => {
            let Version(a, b, _) = floor;
            let upper = if p.given() <= 1 {
                Version(a + 1, 0, 0)
            } else {
                Version(a, b + 1, 0)
            };
            Range::between(floor, Some(upper))
        }
        "^" => {
            let Version(a, b, c) = floor;
            let upper = match (a, b, p.given()) {
                (0, 0, 3) => Version(0, 0, c + 1),
                (0, _, n) if n >= 2 => Version(0, b + 1, 0),
                _ => Version(a + 1, 0, 0),
            };
            Range::between(floor, Some(upper))
        }
        "!=" => {
            return Err(ConstraintError::NotEqual {
                token: token.to_string(),
            })
        }
        _ => {
            return Err(ConstraintError::UnknownOperator {
                token: token.to_string(),
                op: op.to_string(),
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(c: &str, v: &str) -> bool {
        Constraint::parse(c)
            .unwrap_or_else(|e| panic!("{c}: {e}"))
            .matches(Version::parse(v).expect("version"))
    }

    #[test]
    fn hyphen_range_with_partial_ends_admits_every_patch() {
        assert!(ok("1.22 - 1.24", "1.22.0"));
        assert!(ok("1.22 - 1.24", "v1.24.17"));
        assert!(!ok("1.22 - 1.24", "1.25.0"));
        assert!(!ok("1.22 - 1.24", "1.21.9"));
    }

    #[test]
    fn comparators_commas_blanks_and_alternatives() {
        assert!(ok(">=1.25", "1.35.1"));
        assert!(ok(">= 1.19, < 1.22", "1.21.3"));
        assert!(!ok(">= 1.19, < 1.22", "1.22.0"));
        assert!(ok(">=1.21-0", "v1.21.0-gke.1"));
        assert!(ok("<1.25.0-0 || >=1.30", "1.31.0"));
        assert!(!ok("<1.25.0-0 || >=1.30", "1.27.0"));
        assert!(ok("<= 1.24", "1.24.9"));
        assert!(!ok("> 1.24", "1.24.9"));
        assert!(ok("> 1.24", "1.25.0"));
        assert!(ok("~1.28", "1.28.4"));
        assert!(!ok("~1.28", "1.29.0"));
        assert!(ok("^1.2", "1.35.0"));
        assert!(!ok("^1.2", "2.0.0"));
        assert!(ok("1.27.x", "1.27.3"));
        assert!(!ok("1.27.x", "1.28.0"));
        assert!(ok("1.35", "1.35.1"));
        assert!(ok("*", "1.0.0"));
    }

    #[test]
    fn bad_constraints_are_errors_naming_the_token() {
        for bad in ["", ">=", "1.a", "!=1.2", "1.x.3", "1.2.3.4", "1.2 ||"] {
            assert!(Constraint::parse(bad).is_err(), "{bad} parsed");
        }
        let e = Constraint::parse(">=1.2, %3").expect_err("bad operator");
        assert!(e.to_string().contains("%3"), "{e}");
    }
}
