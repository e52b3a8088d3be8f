//! Tests of the whole parse, and the helpers the tests of every file here use: parse a text,
//! expect it valid ([`ok`]) or get its errors ([`errs`], [`one`]).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::address::Address;
use super::document::RegistryEndpoint;
pub(crate) use super::error::ClusterfileError as E;
use super::*;

pub(crate) fn file() -> &'static Path {
    Path::new("cluster.toml")
}

pub(crate) fn ok(text: &str) -> Clusterfile {
    match parse_with_home(file(), text, Some("/home/op".into())) {
        Ok(c) => c,
        Err(e) => panic!("expected a valid Clusterfile, got:\n{e}"),
    }
}

pub(crate) fn errs(text: &str) -> Vec<ClusterfileError> {
    match parse_with_home(file(), text, Some("/home/op".into())) {
        Ok(c) => panic!("expected errors, parsed {c:?}"),
        Err(e) => e.0,
    }
}

/// The single error of `text`, with its line and column.
pub(crate) fn one(text: &str) -> (ClusterfileError, usize, usize) {
    let mut all = errs(text);
    assert_eq!(all.len(), 1, "expected one error, got: {all:#?}");
    let e = all.remove(0);
    let at = e.span().expect("has a position").clone();
    (e, at.line, at.column)
}

pub(crate) const HOSTS: &str = "[[hosts]]\naddresses = [\"10.0.0.1\"]\nroles = [\"master\"]\n";
pub(crate) const MINIMAL: &str = "name = \"c\"\n[[hosts]]\naddresses = [\"10.0.0.1\"]\nroles = [\"master\"]\n";

/// `name`, then `tables`, then one master: tables' lines start at 2.
pub(crate) fn with(tables: &str) -> String {
    format!("name = \"c\"\n{tables}{HOSTS}")
}

pub(crate) fn ip(s: &str) -> Address {
    Address::Ip(s.parse().unwrap())
}

#[test]
fn template_parses_and_expands_as_documented() {
    let c = ok(TEMPLATE);
    assert_eq!(c.name, "prod");
    let addrs: Vec<String> = c.hosts.iter().map(|h| h.address.to_string()).collect();
    assert_eq!(addrs, ["10.0.0.11", "10.0.0.21", "10.0.0.22", "10.0.0.23", "10.0.0.30"]);
    assert_eq!(c.first_master().address, ip("10.0.0.11"));
    assert_eq!(c.first_master().hostname.as_deref(), Some("master-1"));
    assert_eq!(c.first_master().roles, BTreeSet::from([Role::Master, Role::Registry]));
    assert_eq!(c.masters().count(), 1);
    assert_eq!(c.nodes().count(), 4);
    assert_eq!(
        c.registry,
        RegistryEndpoint {
            host: ip("10.0.0.11"),
            port: 5000
        }
    );
    assert_eq!(c.registry_host().address, ip("10.0.0.11"));
    assert_eq!(c.env.get("POD_CIDR").map(String::as_str), Some("10.244.0.0/16"));
    assert_eq!(c.ssh.auth, Auth::Key(PathBuf::from("/home/op/.ssh/id_ed25519")));
    assert_eq!(c.ssh.host_key_policy, HostKeyPolicy::AcceptNew);
    assert_eq!(c.ssh.connect_timeout, Duration::from_secs(10));
    let node = c.by_address("10.0.0.22").expect("expanded from the range");
    assert_eq!(node.ssh.user, "ops");
    assert!(node.ssh.sudo);
    assert_eq!(node.ssh.port, 22);
    assert_eq!(node.ssh.auth, c.ssh.auth);
    // Every address of a range points at the range.
    let line = TEMPLATE
        .lines()
        .position(|l| l.contains("10.0.0.21-10.0.0.23"))
        .unwrap()
        + 1;
    assert_eq!((node.origin.line, node.origin.column), (line, 14));
}

#[test]
fn every_error_at_once() {
    let text = r#"name = "c"
[ssh]
usr = "x"
password = "p"
host_key_policy = "strict"
[registry]
host = "10.9.9.9"
port = 0
[env]
"" = "x"
[[hosts]]
addresses = ["10.0.0.1", "10.0.0.9-1"]
roles = ["master", "wizard"]
hostname = "h"
[[hosts]]
addresses = ["10.0.0.1"]
roles = ["node"]
"#;
    let all = errs(text);
    let kinds: Vec<&str> = all
        .iter()
        .map(|e| match e {
            E::UnknownKey { .. } => "unknown",
            E::LiteralPassword { .. } => "password",
            E::StrictWithoutKnownHosts { .. } => "strict",
            E::RegistryHostNotInCluster { .. } => "registry",
            E::BadPort { .. } => "port",
            E::BadEnvKey { .. } => "env",
            E::BadRange { .. } => "range",
            E::UnknownRole { .. } => "role",
            E::DuplicateHost { .. } => "duplicate",
            other => panic!("unexpected {other}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "unknown",
            "password",
            "strict",
            "registry",
            "port",
            "env",
            "range",
            "role",
            "duplicate"
        ],
        "{}",
        ClusterfileErrors(all)
    );
}

#[test]
fn load_reports_unreadable_file() {
    let e = load(Path::new("/nonexistent/cluster.toml")).unwrap_err();
    assert!(matches!(&e.0[..], [E::Read { .. }]));
}

#[test]
fn syntax_error_has_tomls_position() {
    let (e, line, col) = one("name = \"c\"\n[ssh\nuser = \"x\"\n");
    assert!(matches!(e, E::Syntax { .. }), "{e}");
    assert_eq!(line, 2, "{e}");
    assert!(col >= 1);
}

#[test]
fn a_clusterfile_that_is_not_utf8_is_an_error_at_the_first_bad_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster.toml");
    std::fs::write(&path, b"name = \"c\"\n# caf\xe9\n").unwrap();
    let e = load(&path).expect_err("latin-1");
    match &e.0[..] {
        [ClusterfileError::NotUtf8 { at }] => assert_eq!((at.line, at.column), (2, 6)),
        other => panic!("{other:?}"),
    }
}
