//! `Range` request headers (RFC 9110 §14): one byte range of a representation, or the whole,
//! or none that can be satisfied. Several ranges are answered with the whole representation.

/// What a `Range` header asks of a representation of `len` bytes (RFC 9110 §14).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// No range, a unit other than bytes, or several ranges: send everything (a server may
    /// ignore Range; a single range is all that image clients ask for).
    Whole,
    /// First and last byte, inclusive.
    Part(u64, u64),
    /// Malformed, or outside the representation: 416.
    Unsatisfiable,
}

/// Interpret a `Range` header value against a length.
pub fn parse_range(value: Option<&[u8]>, len: u64) -> ByteRange {
    let Some(value) = value else {
        return ByteRange::Whole;
    };
    let Ok(value) = std::str::from_utf8(value) else {
        return ByteRange::Unsatisfiable;
    };
    let Some((unit, set)) = value.split_once('=') else {
        return ByteRange::Unsatisfiable;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return ByteRange::Whole;
    }
    // A list: empty elements and whitespace around commas are allowed (RFC 9110 §5.6.1).
    let specs: Vec<&str> = set
        .split(',')
        .map(|s| s.trim_matches([' ', '\t']))
        .filter(|s| !s.is_empty())
        .collect();
    let parsed: Vec<Option<(Option<u64>, Option<u64>)>> = specs.iter().map(|s| range_spec(s)).collect();
    match parsed.as_slice() {
        [Some(spec)] => resolve(*spec, len),
        [] => ByteRange::Unsatisfiable,
        many if many.iter().all(Option::is_some) => ByteRange::Whole,
        _ => ByteRange::Unsatisfiable,
    }
}

/// `first-last`, `first-` or `-suffix`, digits only; `None` if malformed or `last < first`.
fn range_spec(s: &str) -> Option<(Option<u64>, Option<u64>)> {
    let (a, b) = s.split_once('-')?;
    let num = |t: &str| -> Option<Option<u64>> {
        if t.is_empty() {
            Some(None)
        } else if t.bytes().all(|c| c.is_ascii_digit()) {
            t.parse().ok().map(Some)
        } else {
            None
        }
    };
    let (first, last) = (num(a)?, num(b)?);
    match (first, last) {
        (None, None) => None,
        (Some(f), Some(l)) if l < f => None,
        spec => Some(spec),
    }
}

fn resolve(spec: (Option<u64>, Option<u64>), len: u64) -> ByteRange {
    match spec {
        (Some(first), _) if first >= len => ByteRange::Unsatisfiable,
        (Some(first), None) => ByteRange::Part(first, len - 1),
        (Some(first), Some(last)) => ByteRange::Part(first, last.min(len - 1)),
        (None, Some(0)) => ByteRange::Unsatisfiable,
        (None, Some(_)) if len == 0 => ByteRange::Unsatisfiable,
        (None, Some(suffix)) => ByteRange::Part(len - suffix.min(len), len - 1),
        (None, None) => ByteRange::Unsatisfiable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_grammar() {
        use ByteRange::*;
        let r = |v: &str, len| parse_range(Some(v.as_bytes()), len);
        assert_eq!(parse_range(None, 10), Whole);
        assert_eq!(r("bytes=0-", 10), Part(0, 9));
        assert_eq!(r("bytes=3-", 10), Part(3, 9));
        assert_eq!(r("bytes=3-5", 10), Part(3, 5));
        assert_eq!(r("bytes=3-3", 10), Part(3, 3));
        assert_eq!(r("bytes=3-999", 10), Part(3, 9));
        assert_eq!(r("bytes=9-", 10), Part(9, 9));
        assert_eq!(r("bytes=-4", 10), Part(6, 9));
        assert_eq!(r("bytes=-40", 10), Part(0, 9));
        assert_eq!(r("Bytes = 1-2 , ", 10), Part(1, 2));
        assert_eq!(r("bytes=0-1,4-5", 10), Whole, "several ranges: ignored");
        assert_eq!(r("items=0-1", 10), Whole, "another unit: ignored");
        for bad in [
            "bytes=10-",
            "bytes=10-20",
            "bytes=-0",
            "bytes=5-3",
            "bytes=-",
            "bytes=",
            "bytes=,",
            "bytes=a-b",
            "bytes=1-2-3",
            "bytes=+1-2",
            "bytes=0x1-2",
            "bytes=1 -2",
            "bytes=99999999999999999999-",
            "bytes",
            "bytes=0-1,x",
        ] {
            assert_eq!(r(bad, 10), Unsatisfiable, "{bad:?}");
        }
        assert_eq!(r("bytes=0-", 0), Unsatisfiable);
        assert_eq!(r("bytes=-1", 0), Unsatisfiable);
        assert_eq!(parse_range(Some(b"bytes=\xff-"), 10), Unsatisfiable);
        assert_eq!(r(&format!("bytes={}-", u64::MAX), u64::MAX), Unsatisfiable);
        assert_eq!(r(&format!("bytes=0-{}", u64::MAX), u64::MAX), Part(0, u64::MAX - 1));
    }
}
