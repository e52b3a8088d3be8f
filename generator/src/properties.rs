//! The properties the Kubefile parser keeps on any input, beyond not panicking: every error
//! points inside the text, errors come sorted, and no value outgrows the expansion cap however
//! the variables nest. [`kubefile`] is the fuzz target (`fuzz/fuzz_targets/kubefile.rs`, run by
//! `cargo +nightly fuzz run kubefile`) and, on stable, a bounded property test below over seeded
//! mutations of the repository's Kubefiles (issue 12).

use std::collections::BTreeMap;
use std::path::Path;

use arbitrary::{Arbitrary, Unstructured};

use crate::kubefile::{self, Base, Kubefile, Launch, RunCommand};

/// What the parser is given besides the text: `--build-arg`s and the target architecture.
#[derive(Debug, Arbitrary)]
struct Settings {
    build_args: BTreeMap<String, String>,
    arm64: bool,
}

/// The Kubefile text is `data` up to the first NUL byte (all of it if there is none, so that a
/// plain Kubefile is a seed as it is); `arbitrary` makes the [`Settings`] from the bytes after.
pub fn kubefile(data: &[u8]) {
    let (text, rest) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let settings = Settings::arbitrary_take_rest(Unstructured::new(rest)).unwrap_or(Settings {
        build_args: BTreeMap::new(),
        arm64: false,
    });
    let arch = if settings.arm64 { "arm64" } else { "amd64" };
    let (parsed, errors) = kubefile::parse_partial(Path::new("Kubefile"), text, &settings.build_args, arch);

    let lines: Vec<&str> = text.strip_prefix('\u{feff}').unwrap_or(text).lines().collect();
    let positions: Vec<_> = errors.iter().map(|e| e.pos()).collect();
    assert!(positions.is_sorted(), "errors out of order: {positions:?}");
    for e in &errors {
        let pos = e.pos();
        assert!(
            (1..=lines.len().max(1)).contains(&pos.line),
            "{e}: line {} of {}",
            pos.line,
            lines.len()
        );
        let columns = lines.get(pos.line - 1).map_or(0, |l| l.chars().count()) + 1;
        assert!(
            (1..=columns).contains(&pos.column),
            "{e}: column {} of {columns}",
            pos.column
        );
    }
    // The cap bounds each value: what it may expand to, plus the literal text around it.
    let input = data.len();
    let cap = kubefile::MAX_EXPANDED + input;
    for value in values(&parsed) {
        assert!(
            value.len() <= cap,
            "a value of {} bytes from {input} bytes of input",
            value.len()
        );
    }
}

/// Every string the parsed Kubefile holds.
fn values(k: &Kubefile) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    if let Base::Bundle { path, .. } = &k.base {
        out.push(path);
    }
    for map in [&k.args, &k.env, &k.labels] {
        out.extend(map.iter().flat_map(|(a, b)| [a.as_str(), b.as_str()]));
    }
    for c in &k.copies {
        out.extend(c.sources.iter().map(|(s, _)| s.as_str()));
        out.push(&c.dest.0);
    }
    for a in &k.apps {
        out.push(&a.name);
        out.extend(a.sources.iter().map(|(s, _)| s.as_str()));
        out.extend(a.cmds.iter().map(String::as_str));
        out.extend(a.env.iter().flat_map(|(a, b)| [a.as_str(), b.as_str()]));
    }
    for r in &k.runs {
        match &r.command {
            RunCommand::Shell(s) => out.push(s),
            RunCommand::Exec(v) => out.extend(v.iter().map(String::as_str)),
        }
    }
    match &k.launch {
        Some(Launch::Apps { names, .. }) => out.extend(names.iter().map(String::as_str)),
        Some(Launch::Cmds { cmds, .. }) => out.extend(cmds.iter().map(String::as_str)),
        None => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The repository's Kubefiles, and the sealer-style examples of the reference.
    fn kubefiles() -> Vec<Vec<u8>> {
        let bundles = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bundles");
        let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&bundles)
            .expect("bundles/ reads")
            .flatten()
            .filter_map(|d| std::fs::read(d.path().join("Kubefile")).ok())
            .collect();
        seeds.push(
            b"ARG VERSION=1.0.0\nFROM scratch\nENV CLUSTER_NAME=demo REGISTRY=\"registry.local:5000\"\nLABEL v=${VERSION} m=\"ops\"\nCOPY images/${ARCH}/ images/\nCOPY [\"charts/nginx\", \"charts/\"]\nAPP nginx local://apps/nginx/values.yaml local://apps/nginx/chart\nAPPCMDS nginx [\"kubectl apply -f .\"]\nAPPENV nginx A=${VERSION:-x}\nRUN mkdir zookeeper \\\n  && echo $A\nKUBEVERSION >=1.25\nLAUNCH [\"nginx\"]\n".to_vec(),
        );
        // A doubling chain that the cap must stop.
        seeds.push(b"ARG A=aaaaaaaaaaaaaaaa\nARG B=${A}${A}${A}${A}\nARG C=${B}${B}${B}${B}\nARG D=${C}${C}${C}${C}\nARG E=${D}${D}${D}${D}\nARG F=${E}${E}${E}${E}\nARG G=${F}${F}${F}${F}\nARG H=${G}${G}${G}${G}\nARG I=${H}${H}${H}${H}\nFROM scratch\nLABEL x=${I}${I}\n".to_vec());
        seeds.push(b"FROM scratch\nCMD echo\0\x02\x00\x41\x41\x42\x01".to_vec());
        assert!(seeds.len() >= 4, "the repository's Kubefiles are found");
        seeds
    }

    #[test]
    fn kubefile_errors_point_inside_and_values_stay_capped() {
        let dictionary: &[&[u8]] = &[
            b"${A}",
            b"${ARCH:-x}",
            b"${X:+\"y z\"}",
            b"$",
            b"\\\n",
            b"\\",
            b"\"",
            b"'",
            b"[\"",
            b"\"]",
            b" # ",
            b"\nFROM scratch\n",
            b"\nARG A=",
            b"\nLAUNCH [\"x\"]\n",
            b"\nAPP x local://a\n",
            "\u{feff}".as_bytes(),
            b"\r\n",
            b"\0",
        ];
        fuzz_cases::run("kubefile", 10_000, &kubefiles(), dictionary, 16 << 10, kubefile);
    }
}
