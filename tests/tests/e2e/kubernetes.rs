//! The Kubernetes bundle (bundles/kubernetes + templates/kubernetes) on the SSH test bed.
//!
//! No real kubelet runs here (the bed's hosts share one kernel and have no systemd), so the
//! bundle is built from the real Kubefile and hooks with **recording stand-ins** for kubeadm,
//! kubelet, kubectl and crictl (shell scripts that log their arguments and copy the files they
//! are given into a shared directory), and the real containerd and runc. What is asserted is
//! the real outcome of our side: the PKI (checked with `openssl`), the rendered kubeadm
//! configurations, the order of init and joins, containerd's mirror configuration, the
//! endpoint each host uses, and the node-local balancer. Test names say `standin` where kubeadm
//! is a stand-in. Needs root.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::support::*;
use crate::testbed::Testbed;

const CLUSTER: &str = "k8s";

fn work() -> PathBuf {
    workspace().join(format!("target/e2e-kubernetes/{}", std::process::id()))
}

/// Where the stand-ins record (visible from inside the hosts).
fn standin_log() -> PathBuf {
    work().join("standin")
}

const KUBEADM: &str = r#"#!/bin/sh
# Recording stand-in for kubeadm (tests only): logs each call, keeps the config it was given,
# and leaves the files the hooks test for. Not Kubernetes.
LOG='@LOG@'
h=$(hostname)
mkdir -p "$LOG/calls" "$LOG/nodes"
echo "$(date +%s%N) $h start $*" >>"$LOG/kubeadm.log"
mkconf() { # FILE CN [ORG]: a kubeconfig with a one-year client certificate, as kubeadm makes it
  d=$(mktemp -d)
  subj="/CN=$2"; [ -n "${3:-}" ] && subj="/O=$3/CN=$2"
  openssl req -new -newkey rsa:2048 -nodes -keyout "$d/k" -subj "$subj" -out "$d/csr" 2>/dev/null
  openssl x509 -req -in "$d/csr" -CA /etc/kubernetes/pki/ca.crt -CAkey /etc/kubernetes/pki/ca.key \
    -set_serial "0x$(od -An -tx1 -N8 /dev/urandom | tr -d ' \n')" -days 365 -out "$d/c" 2>/dev/null
  printf 'apiVersion: v1\nclusters:\n- cluster:\n    server: https://apiserver.cluster.local:6443\n  name: kubernetes\nusers:\n- name: u\n  user:\n    client-certificate-data: %s\n    client-key-data: %s\n' \
    "$(base64 -w0 "$d/c")" "$(base64 -w0 "$d/k")" >"/etc/kubernetes/$1"
  rm -rf "$d"
}
case "$1 $2 $3" in
  "init phase upload-certs")
    echo "$(date +%s%N) $h end $1 phase" >>"$LOG/kubeadm.log"
    exit 0
    ;;
  "init phase kubeconfig" | "join phase control-plane-prepare")
    mkconf admin.conf kubernetes-admin kubeadm:cluster-admins
    mkconf super-admin.conf kubernetes-super-admin system:masters
    mkconf controller-manager.conf system:kube-controller-manager
    mkconf scheduler.conf system:kube-scheduler
    echo "$(date +%s%N) $h end $1 phase" >>"$LOG/kubeadm.log"
    exit 0
    ;;
esac
case "$1" in
  init)
    [ -f /etc/kubernetes/pki/ca.crt ] || { echo "stand-in kubeadm: no /etc/kubernetes/pki/ca.crt" >&2; exit 1; }
    cp "$3" "$LOG/calls/$h-init.yaml"
    mkdir -p /etc/kubernetes/manifests
    [ -f /etc/kubernetes/admin.conf ] || echo stand-in >/etc/kubernetes/admin.conf
    echo stand-in >/etc/kubernetes/kubelet.conf
    touch /etc/kubernetes/manifests/kube-apiserver.yaml
    echo "$h" >"$LOG/nodes/$h"
    ;;
  join)
    cp "$3" "$LOG/calls/$h-join.yaml"
    getent hosts apiserver.cluster.local >"$LOG/calls/$h-join-endpoint" || true
    sleep 1 # long enough for overlapping joins to show in the log
    if grep -q controlPlane "$3"; then
      mkdir -p /etc/kubernetes/manifests
      touch /etc/kubernetes/manifests/kube-apiserver.yaml
      [ -f /etc/kubernetes/admin.conf ] || echo stand-in >/etc/kubernetes/admin.conf
    fi
    echo stand-in >/etc/kubernetes/kubelet.conf
    echo "$h" >"$LOG/nodes/$h"
    ;;
  token) echo "$(tr -dc 'a-z0-9' </dev/urandom | head -c 6).$(tr -dc 'a-z0-9' </dev/urandom | head -c 16)" ;;
esac
echo "$(date +%s%N) $h end $1" >>"$LOG/kubeadm.log"
"#;

const KUBECTL: &str = r#"#!/bin/sh
# Recording stand-in for kubectl (tests only): nodes are those the kubeadm stand-in joined.
LOG='@LOG@'
echo "$(hostname) $*" >>"$LOG/kubectl.log"
case "$*" in
  *"get nodes"*) for f in "$LOG"/nodes/*; do echo "$(cat "$f") Ready <none> 1m v1.35.1"; done ;;
  *"get pods"*) echo "coredns-1 1/1 Running 0 1m" ;;
  *apply*) for last; do :; done; cp "$last" "$LOG/calls/$(hostname)-applied.yml" ;;
esac
"#;

const SIMPLE: &str = r#"#!/bin/sh
# Recording stand-in (tests only).
echo "$(hostname) $*" >>'@LOG@/@NAME@.log'
[ "$1" = --version ] && echo "Kubernetes v1.35.1 (stand-in)"
exit 0
"#;

const FLANNEL: &str = r#"# Stand-in for Flannel's kube-flannel.yml (tests only): the parts the init hook edits.
apiVersion: v1
kind: ConfigMap
metadata:
  name: kube-flannel-cfg
  namespace: kube-flannel
data:
  net-conf.json: |
    {
      "Network": "10.244.0.0/16",
      "Backend": { "Type": "vxlan" }
    }
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: kube-flannel-ds
  namespace: kube-flannel
spec:
  selector:
    matchLabels: { app: flannel }
  template:
    metadata:
      labels: { app: flannel }
    spec:
      containers:
        - name: kube-flannel
          image: docker.io/library/busybox:1.36
"#;

fn write_exec(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
    ok(Command::new("chmod").arg("0755").arg(path));
}

/// The Kubernetes bundle built from the real Kubefile and hooks, with stand-ins (see the
/// module doc), once per test process.
fn kubernetes_bundle() -> &'static (PathBuf, PathBuf) {
    static BUNDLE: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    BUNDLE.get_or_init(|| {
        let work = work().join("bundle");
        let _ = fs::remove_dir_all(&work);
        let ctx = work.join("context");
        let k = ctx.join("bundles/kubernetes");
        fs::create_dir_all(&k).unwrap();
        fs::create_dir_all(standin_log().join("calls")).unwrap();
        for f in ["Kubefile", "kubernetes.toml"] {
            fs::copy(workspace().join("bundles/kubernetes").join(f), k.join(f)).unwrap();
        }
        fs::create_dir_all(ctx.join("templates/kubernetes")).unwrap();
        ok(Command::new("cp")
            .arg("-r")
            .arg(workspace().join("templates/kubernetes/hooks"))
            .arg(ctx.join("templates/kubernetes/hooks")));
        // Real containerd, shim, ctr and runc from Debian's packages.
        ok(Command::new(workspace().join("tests/fixtures/cluster-bundle/fetch-runtime.sh")).arg(&k));
        let log = standin_log().display().to_string();
        write_exec(&k.join("rootfs/bin/kubeadm"), &KUBEADM.replace("@LOG@", &log));
        write_exec(&k.join("rootfs/bin/kubectl"), &KUBECTL.replace("@LOG@", &log));
        for name in ["kubelet", "crictl"] {
            let text = SIMPLE.replace("@LOG@", &log).replace("@NAME@", name);
            write_exec(&k.join("rootfs/bin").join(name), &text);
        }
        write_exec(&k.join("rootfs/cni/bin/bridge"), "#!/bin/sh\nexit 0\n");
        fs::create_dir_all(k.join("manifests/cni")).unwrap();
        fs::write(k.join("manifests/cni/kube-flannel.yml"), FLANNEL).unwrap();
        fs::write(k.join("imageList"), "docker.io/library/busybox:1.36\n").unwrap();

        build_with_busybox(&k.join("Kubefile"), &ctx, &work, "kubernetes.run")
    })
}

fn setup(bed: &Testbed, hosts: &str) -> PathBuf {
    let dir = work().join("cluster");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let (config, _) = bed.clusterfile(
        &dir,
        CLUSTER,
        &format!(
            "[env]\nKERNEL_MODULES = \"\"\n\
             [kubernetes]\npod_cidr = \"10.32.0.0/16\"\nservice_cidr = \"10.112.0.0/12\"\ncert_sans = [\"k8s.example.test\", \"192.0.2.50\"]\n{hosts}"
        ),
    );
    config
}

fn on_master(bed: &Testbed, args: &[&str], config: Option<&Path>) -> Command {
    let (bundle, public) = kubernetes_bundle();
    let mut cmd = bed.on(1, bundle);
    cmd.args(args).env("DELIVERY_TRUSTED_KEY", public).stdin(Stdio::null());
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    cmd
}

fn explain(out: &Output, bed: &Testbed) -> String {
    let log =
        fs::read_to_string(bed.upper(1).join(format!("var/lib/delivery/{CLUSTER}/install.log"))).unwrap_or_default();
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}\ninstall.log:\n{log}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        stderr(out)
    )
}

/// `openssl <args>` on a file of the host, stdout as text; panics on failure.
fn openssl(args: &[&str]) -> String {
    let out = ok(Command::new("openssl").args(args));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Parses YAML (multi-document) with Debian's python3-yaml into JSON values.
fn yaml(path: &Path) -> Vec<serde_json::Value> {
    let out = ok(Command::new("/usr/bin/python3")
        .arg("-c")
        .arg("import sys, json, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))")
        .arg(path));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn journal(bed: &Testbed) -> serde_json::Value {
    let path = bed.upper(1).join(format!("var/lib/delivery/{CLUSTER}/journal.json"));
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

/// (start, end, host, what) of every kubeadm call the stand-in logged.
fn kubeadm_calls() -> Vec<(u128, u128, String, String)> {
    let log = fs::read_to_string(standin_log().join("kubeadm.log")).unwrap_or_default();
    let mut calls = Vec::new();
    let mut open: Vec<(u128, String, String)> = Vec::new();
    for line in log.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (t, host, kind) = (f[0].parse::<u128>().unwrap(), f[1].to_string(), f[2]);
        if kind == "start" {
            open.push((t, host, f[3..].join(" ")));
        } else if let Some(i) = open.iter().position(|(_, h, _)| *h == host) {
            let (s, h, what) = open.remove(i);
            calls.push((s, t, h, what));
        }
    }
    calls
}

#[test]
fn kubernetes_bundle_standin_kubeadm_three_masters_one_worker_then_add_node() {
    let bed = Testbed::up(5);
    let hosts = format!(
        "[[hosts]]\naddresses = [\"{}\"]\nroles = [\"master\", \"registry\"]\n\
         [[hosts]]\naddresses = [\"{}\", \"{}\"]\nroles = [\"master\"]\n\
         [[hosts]]\naddresses = [\"{}\"]\nroles = [\"node\"]\n",
        bed.ip(1),
        bed.ip(2),
        bed.ip(3),
        bed.ip(4)
    );
    let config = setup(&bed, &hosts);
    let plan = ok(&mut on_master(&bed, &["install", "--dry-run"], Some(&config)));
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(
        text.contains("pki          on 10.213.7.11, 10.213.7.12, 10.213.7.13"),
        "{text}"
    );

    let out = run(&mut on_master(&bed, &["install", "--yes"], Some(&config)));
    assert!(out.status.success(), "install failed: {}", explain(&out, &bed));

    // init once, on the first master, after the PKI was in place (the stand-in checks).
    let calls = kubeadm_calls();
    let inits: Vec<_> = calls.iter().filter(|c| c.3.starts_with("init --config")).collect();
    assert_eq!(inits.len(), 1, "{calls:?}");
    assert_eq!(inits[0].2, "node1");
    // Masters joined one at a time, after init; the worker joined too.
    let mut joins: Vec<_> = calls
        .iter()
        .filter(|c| c.3.starts_with("join --config") && c.2 != "node4")
        .collect();
    joins.sort();
    assert_eq!(
        joins.iter().map(|c| c.2.as_str()).collect::<Vec<_>>(),
        ["node2", "node3"]
    );
    assert!(inits[0].1 <= joins[0].0, "a master joined before init ended: {calls:?}");
    assert!(joins[0].1 <= joins[1].0, "masters joined at the same time: {calls:?}");
    assert!(
        calls.iter().any(|c| c.2 == "node4" && c.3.starts_with("join")),
        "{calls:?}"
    );

    // The rendered init configuration parses and carries the Clusterfile's networks and names.
    let calls_dir = standin_log().join("calls");
    let docs = yaml(&calls_dir.join("node1-init.yaml"));
    let init = docs.iter().find(|d| d["kind"] == "InitConfiguration").unwrap();
    let cluster = docs.iter().find(|d| d["kind"] == "ClusterConfiguration").unwrap();
    assert_eq!(cluster["networking"]["podSubnet"], "10.32.0.0/16");
    assert_eq!(cluster["networking"]["serviceSubnet"], "10.112.0.0/12");
    assert_eq!(cluster["controlPlaneEndpoint"], "apiserver.cluster.local:6443");
    // The version the bundle's kubernetes.toml pins (the installer hands it to the hooks).
    let pinned = fs::read_to_string(workspace().join("bundles/kubernetes/kubernetes.toml")).unwrap();
    let pinned = pinned
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .expect("kubernetes.toml has a version line");
    assert!(pinned.starts_with('v'), "{pinned}");
    assert_eq!(cluster["kubernetesVersion"], pinned);
    let sans: Vec<&str> = cluster["apiServer"]["certSANs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for want in [
        "apiserver.cluster.local",
        "10.213.7.11",
        "10.213.7.12",
        "10.213.7.13",
        "k8s.example.test",
        "192.0.2.50",
    ] {
        assert!(sans.contains(&want), "{want} not in certSANs {sans:?}");
    }
    assert_eq!(init["localAPIEndpoint"]["advertiseAddress"], "10.213.7.11");
    // The pre-join hook made the join credentials on node1, after init, before any join.
    let published = journal(&bed)["published"].clone();
    let token = published["KUBEADM_TOKEN"].as_str().unwrap().to_string();
    let cert_key = published["KUBEADM_CERT_KEY"].as_str().unwrap().to_string();
    assert!(token.len() == 23 && cert_key.len() == 64, "{token} {cert_key}");
    let made = calls.iter().find(|c| c.3.starts_with("token create")).unwrap();
    assert!(
        made.2 == "node1" && inits[0].1 <= made.0 && made.1 <= joins[0].0,
        "{calls:?}"
    );

    // Joins use what init published, and the CA hash of the installer's CA.
    let ca = bed.upper(1).join("etc/kubernetes/pki/ca.crt");
    let spki = ok(Command::new("sh").arg("-c").arg(format!(
        "openssl x509 -pubkey -noout -in '{}' | openssl pkey -pubin -outform der | sha256sum",
        ca.display()
    )));
    let hash = format!(
        "sha256:{}",
        String::from_utf8_lossy(&spki.stdout).split_whitespace().next().unwrap()
    );
    for host in ["node2", "node3", "node4"] {
        let docs = yaml(&calls_dir.join(format!("{host}-join.yaml")));
        let join = &docs[0];
        assert_eq!(join["discovery"]["bootstrapToken"]["token"], token.as_str(), "{host}");
        assert_eq!(
            join["discovery"]["bootstrapToken"]["caCertHashes"][0],
            hash.as_str(),
            "{host}"
        );
        assert_eq!(
            join["discovery"]["bootstrapToken"]["apiServerEndpoint"],
            "apiserver.cluster.local:6443"
        );
        let control_plane = &join["controlPlane"];
        if host == "node4" {
            assert!(control_plane.is_null(), "the worker joined as a master");
        } else {
            assert_eq!(control_plane["certificateKey"], cert_key.as_str(), "{host}");
        }
    }
    let log = fs::read_to_string(bed.upper(1).join(format!("var/lib/delivery/{CLUSTER}/install.log"))).unwrap();
    assert!(
        !log.contains(&token) && !log.contains(&cert_key),
        "a secret reached install.log"
    );
    // Joining masters reached the first master; the worker its local balancer.
    for (host, want) in [
        ("node2", "10.213.7.11"),
        ("node3", "10.213.7.11"),
        ("node4", "127.0.0.1"),
    ] {
        let seen = fs::read_to_string(calls_dir.join(format!("{host}-join-endpoint"))).unwrap();
        assert!(seen.starts_with(want), "{host} resolved the endpoint to {seen}");
    }
    // After joining, every master uses its own API server.
    let hosts3 = fs::read_to_string(bed.upper(3).join("etc/hosts")).unwrap();
    assert!(hosts3.contains("10.213.7.13 apiserver.cluster.local"), "{hosts3}");
    assert!(bed
        .upper(4)
        .join(format!("var/lib/delivery/{CLUSTER}/state/lb/lb.pid"))
        .exists());

    // Flannel applied with the cluster's pod network.
    let applied = fs::read_to_string(calls_dir.join("node1-applied.yml")).unwrap();
    assert!(applied.contains("\"Network\": \"10.32.0.0/16\""), "{applied}");

    // containerd on every host points every domain of the bundle at the mirror.
    for i in 1..=4 {
        let conf = fs::read_to_string(bed.upper(i).join("etc/containerd/config.toml")).unwrap();
        assert!(
            conf.contains(&format!("config_path = \"/var/lib/delivery/{CLUSTER}/certs.d\"")),
            "node{i}: {conf}"
        );
        let hosts_toml = fs::read_to_string(
            bed.upper(i)
                .join(format!("var/lib/delivery/{CLUSTER}/certs.d/docker.io/hosts.toml")),
        )
        .unwrap();
        assert!(hosts_toml.contains("http://10.213.7.11:5000"), "node{i}: {hosts_toml}");
    }

    // The PKI: the same on every master, nowhere else, chained, named, 100 years.
    let pki = |i: usize| bed.upper(i).join("etc/kubernetes/pki");
    assert!(!pki(4).exists(), "the worker got the PKI");
    for i in 2..=3 {
        assert_eq!(
            fs::read(pki(i).join("ca.crt")).unwrap(),
            fs::read(pki(1).join("ca.crt")).unwrap()
        );
        assert_eq!(
            fs::read(pki(i).join("etcd/ca.key")).unwrap(),
            fs::read(pki(1).join("etcd/ca.key")).unwrap()
        );
    }
    check_pki(&pki(2));

    // The kubeconfigs kubeadm made for one year were taken to 100 years before init and joins.
    for (i, conf) in [(1, "admin.conf"), (2, "controller-manager.conf"), (3, "scheduler.conf")] {
        let text = fs::read_to_string(bed.upper(i).join("etc/kubernetes").join(conf)).unwrap();
        let b64 = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("client-certificate-data: "))
            .unwrap()
            .to_string();
        let pem = ok(Command::new("sh").arg("-c").arg(format!("echo '{b64}' | base64 -d")));
        let pem_path = work().join(format!("node{i}-{conf}.crt"));
        fs::write(&pem_path, &pem.stdout).unwrap();
        let in_99_years = ((99.0 * 365.25 * 86400.0) as u64).to_string();
        let still = Command::new("openssl")
            .args([
                "x509",
                "-noout",
                "-checkend",
                &in_99_years,
                "-in",
                pem_path.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(still.status.success(), "node{i} {conf} expires within 99 years");
        let verified = openssl(&[
            "verify",
            "-CAfile",
            pki(1).join("ca.crt").to_str().unwrap(),
            pem_path.to_str().unwrap(),
        ]);
        assert!(verified.trim().ends_with(": OK"), "{verified}");
    }

    // cert --list and --renew on a master: the CA stays, leaves move on, still chained.
    let list = ok(&mut on_master(&bed, &["cert", "--list"], None));
    let text = String::from_utf8_lossy(&list.stdout);
    assert_eq!(text.lines().count(), 15, "{text}");
    assert!(text.contains("admin.conf") && text.contains("scheduler.conf"), "{text}");
    let json = ok(&mut on_master(&bed, &["cert", "--list", "--json"], None));
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&json.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 14);
    assert_eq!(rows.iter().filter(|r| r["ca"] == true).count(), 3);
    assert!(
        rows.iter().all(|r| r["days_left"].as_i64().unwrap() > 36_000),
        "{rows:?}"
    );
    let ca_before = fs::read(pki(1).join("ca.crt")).unwrap();
    let serial = |i: usize| {
        openssl(&[
            "x509",
            "-noout",
            "-serial",
            "-in",
            pki(i).join("apiserver.crt").to_str().unwrap(),
        ])
    };
    let before = serial(1);
    ok(&mut on_master(&bed, &["cert", "--renew"], None));
    assert_eq!(fs::read(pki(1).join("ca.crt")).unwrap(), ca_before);
    assert_ne!(serial(1), before);
    check_pki(&pki(1));

    // A second install converges: no second init, the renewed leaf on node1 is kept.
    let again = run(&mut on_master(&bed, &["install", "--yes"], Some(&config)));
    assert!(again.status.success(), "re-install failed: {}", explain(&again, &bed));
    assert_eq!(
        kubeadm_calls()
            .iter()
            .filter(|c| c.3.starts_with("init --config"))
            .count(),
        1
    );
    assert_ne!(
        serial(1),
        before,
        "re-install put the older leaf back over the renewed one"
    );
    let check = run(&mut on_master(&bed, &["check"], Some(&config)));
    assert!(check.status.success(), "check failed: {}", explain(&check, &bed));

    // add-node, later: node5 joins with fresh credentials from node1's pre-join hook; node1
    // gets nothing else, the other hosts nothing at all.
    let before = journal(&bed)["hosts"].clone();
    let creates =
        |calls: &[(u128, u128, String, String)]| calls.iter().filter(|c| c.3.starts_with("token create")).count();
    let created = creates(&kubeadm_calls());
    let five = format!(
        "{hosts}[[hosts]]\naddresses = [\"{}\"]\nroles = [\"node\"]\n",
        bed.ip(5)
    );
    let config5 = setup(&bed, &five);
    let plan = ok(&mut on_master(
        &bed,
        &["add-node", "--dry-run", "--host", bed.ip(5)],
        Some(&config5),
    ));
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(
        text.contains("pre-join     on 10.213.7.11 (first master, before joins)"),
        "{text}"
    );
    let out = run(&mut on_master(
        &bed,
        &["add-node", "--yes", "--host", bed.ip(5)],
        Some(&config5),
    ));
    assert!(out.status.success(), "add-node failed: {}", explain(&out, &bed));
    let calls = kubeadm_calls();
    assert_eq!(creates(&calls), created + 1, "{calls:?}");
    let fresh = journal(&bed)["published"]["KUBEADM_TOKEN"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(fresh, token);
    let docs = yaml(&calls_dir.join("node5-join.yaml"));
    assert_eq!(docs[0]["discovery"]["bootstrapToken"]["token"], fresh.as_str());
    let after = journal(&bed)["hosts"].clone();
    for i in 2..=4 {
        assert_eq!(before[bed.ip(i)], after[bed.ip(i)], "add-node touched node{i}");
    }
    let steps = |v: &serde_json::Value| -> Vec<String> {
        v[bed.ip(1)]["steps"]
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| !k.starts_with("hook:pre-join/"))
            .cloned()
            .collect()
    };
    assert_eq!(steps(&before), steps(&after));
    for step in steps(&before) {
        assert_eq!(
            before[bed.ip(1)]["steps"][&step],
            after[bed.ip(1)]["steps"][&step],
            "add-node redid {step} on node1"
        );
    }
    assert_eq!(calls.iter().filter(|c| c.3.starts_with("init --config")).count(), 1);

    check_images_digest_for_digest(&bed, &config5);
}

/// `check`'s image rule on the worker's real containerd: images pulled through the mirror (and
/// kubelet-style `REPO@sha256:` references to them) pass; a name the bundle does not carry, or a
/// carried name holding another digest (side-loaded), fail naming the host and the reference.
fn check_images_digest_for_digest(bed: &Testbed, config: &Path) {
    let ctr = |cmd: &str| {
        bed.ssh(
            4,
            "root",
            &format!("PATH=/usr/local/bin:$PATH ctr --address /run/containerd/containerd.sock -n k8s.io {cmd}"),
        )
    };
    let image = "docker.io/library/busybox:1.36";
    let out = ctr(&format!(
        "images pull --hosts-dir /var/lib/delivery/{CLUSTER}/certs.d {image}"
    ));
    assert!(out.status.success(), "pull through the mirror: {}", stderr(&out));
    let ls = String::from_utf8_lossy(&ctr("images ls").stdout).to_string();
    let digest = ls
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&image)).then(|| f[2].to_string())
        })
        .unwrap_or_else(|| panic!("{image} not listed:\n{ls}"));
    assert!(ctr(&format!("images tag {image} docker.io/library/busybox@{digest}"))
        .status
        .success());
    let check_log = || fs::read_to_string(bed.upper(1).join(format!("var/lib/delivery/{CLUSTER}/check.log"))).unwrap();
    let check = run(&mut on_master(bed, &["check"], Some(config)));
    assert!(
        check.status.success(),
        "check with mirror-pulled images: {}",
        explain(&check, bed)
    );
    assert!(
        check_log().contains("node4: all 2 Kubernetes image reference(s) here are the bundle's, digest for digest"),
        "{}",
        check_log()
    );

    // A name the bundle does not carry.
    assert!(ctr(&format!("images tag {image} quay.io/other/tool:1"))
        .status
        .success());
    let check = run(&mut on_master(bed, &["check"], Some(config)));
    assert_eq!(check.status.code(), Some(4), "{}", explain(&check, bed));
    let err = stderr(&check);
    assert!(
        err.contains("10.213.7.14") && err.contains("quay.io/other/tool:1") && err.contains("not in the bundle"),
        "{err}"
    );
    assert!(ctr("images rm quay.io/other/tool:1").status.success());

    // The bundle's name, other content: busybox side-loaded as a docker-archive (skopeo writes a
    // Docker schema 2 manifest, so the digest differs from the bundle's OCI manifest).
    let archive = work().join("busybox-docker-archive.tar");
    let _ = fs::remove_file(&archive);
    ok(Command::new("skopeo").args([
        "copy",
        "--quiet",
        &format!("oci:{}:1.36", fixture_layouts().join("busybox").display()),
        &format!("docker-archive:{}:{image}", archive.display()),
    ]));
    assert!(ctr(&format!("images rm {image} docker.io/library/busybox@{digest}"))
        .status
        .success());
    let out = ctr(&format!("images import {}", archive.display()));
    assert!(out.status.success(), "import: {}", stderr(&out));
    let check = run(&mut on_master(bed, &["check"], Some(config)));
    assert_eq!(check.status.code(), Some(4), "{}", explain(&check, bed));
    let err = stderr(&check);
    assert!(
        err.contains(&format!("{image}: sha256:")) && err.contains(&format!("here, {digest} in the bundle")),
        "{err}"
    );
}

/// Every leaf chains to its CA, carries its names and usages, and lasts 100 years.
fn check_pki(dir: &Path) {
    let p = |f: &str| dir.join(f).display().to_string();
    for (leaf, ca, usage) in [
        ("apiserver", "ca", "TLS Web Server Authentication"),
        ("apiserver-kubelet-client", "ca", "TLS Web Client Authentication"),
        ("front-proxy-client", "front-proxy-ca", "TLS Web Client Authentication"),
        (
            "etcd/server",
            "etcd/ca",
            "TLS Web Server Authentication, TLS Web Client Authentication",
        ),
        (
            "etcd/peer",
            "etcd/ca",
            "TLS Web Server Authentication, TLS Web Client Authentication",
        ),
        ("etcd/healthcheck-client", "etcd/ca", "TLS Web Client Authentication"),
        ("apiserver-etcd-client", "etcd/ca", "TLS Web Client Authentication"),
    ] {
        let crt = p(&format!("{leaf}.crt"));
        let verified = openssl(&["verify", "-CAfile", &p(&format!("{ca}.crt")), &crt]);
        assert!(verified.trim().ends_with(": OK"), "{leaf}: {verified}");
        let ext = openssl(&[
            "x509",
            "-noout",
            "-ext",
            "extendedKeyUsage,keyUsage,basicConstraints",
            "-in",
            &crt,
        ]);
        assert!(ext.contains(usage), "{leaf}: {ext}");
        assert!(
            ext.contains("CA:FALSE") && ext.contains("Digital Signature"),
            "{leaf}: {ext}"
        );
        // notAfter at least 99 years away.
        let in_99_years = (99.0 * 365.25 * 86400.0) as u64;
        let still = Command::new("openssl")
            .args(["x509", "-noout", "-checkend", &in_99_years.to_string(), "-in", &crt])
            .output()
            .unwrap();
        assert!(still.status.success(), "{leaf} expires within 99 years");
    }
    let sans = openssl(&["x509", "-noout", "-ext", "subjectAltName", "-in", &p("apiserver.crt")]);
    for want in [
        "DNS:kubernetes.default.svc.cluster.local",
        "DNS:apiserver.cluster.local",
        "DNS:node1",
        "DNS:node3",
        "DNS:k8s.example.test",
        "IP Address:10.112.0.1",
        "IP Address:10.213.7.12",
        "IP Address:192.0.2.50",
    ] {
        assert!(sans.contains(want), "apiserver.crt lacks {want}: {sans}");
    }
    let etcd = openssl(&["x509", "-noout", "-ext", "subjectAltName", "-in", &p("etcd/peer.crt")]);
    assert!(
        etcd.contains("DNS:node2") && etcd.contains("IP Address:10.213.7.13"),
        "{etcd}"
    );
    let ca = openssl(&[
        "x509",
        "-noout",
        "-ext",
        "basicConstraints,keyUsage",
        "-in",
        &p("ca.crt"),
    ]);
    assert!(ca.contains("CA:TRUE") && ca.contains("Certificate Sign"), "{ca}");
    let sa = openssl(&["pkey", "-pubin", "-in", &p("sa.pub"), "-noout", "-text_pub"]);
    assert!(sa.contains("2048 bit"), "{sa}");
}

/// A process killed (and reaped) when dropped, also when a test fails.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A plain TCP service on host `i`'s port 6443 that answers every connection with its name.
fn service(bed: &Testbed, i: usize) -> Killed {
    Killed(bed.on(i, Path::new("/usr/bin/python3"))
        .arg("-c")
        .arg(
            "import socket\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
             s.bind(('0.0.0.0', 6443)); s.listen(64)\nwhile True:\n  c,_=s.accept(); c.sendall(socket.gethostname().encode()+b'\\n'); c.close()\n",
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap())
}

/// `n` connections to 127.0.0.1:6443 from host `i`: who answered each (empty: refused).
fn ask(bed: &Testbed, i: usize, n: usize) -> Vec<String> {
    let out = run(bed.on(i, Path::new("/usr/bin/python3")).arg("-c").arg(format!(
        "import socket\nfor _ in range({n}):\n  try:\n    c=socket.create_connection(('127.0.0.1', 6443), timeout=3); print(c.makefile().readline().strip() or '-'); c.close()\n  except OSError:\n    print('-')\n"
    )));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Ask (`ask`: who answered each of a few connections) until `f` holds; how long that took.
/// Fails after `secs` seconds, naming `what` and the last answers.
fn until(what: &str, secs: u64, ask: &dyn Fn() -> Vec<String>, f: &dyn Fn(&[String]) -> bool) -> Duration {
    let t0 = Instant::now();
    loop {
        let got = ask();
        if f(&got) {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "{what}: still {got:?} after {secs} s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn lb_fails_over_between_masters_on_the_testbed() {
    let bed = Testbed::up(3);
    let one = service(&bed, 1);
    let _two = service(&bed, 2);
    let state = work().join("lb-state");
    let _ = fs::remove_dir_all(&state);
    let stub = stub();
    let start = |extra: &[&str]| {
        let mut cmd = bed.on(3, &stub);
        cmd.args(["lb", "start", "--no-systemd", "--state-dir"])
            .arg(&state)
            .args([
                "--backend",
                &format!("{}:6443", bed.ip(1)),
                "--backend",
                &format!("{}:6443", bed.ip(2)),
            ])
            .args(["--health-interval-ms", "500"])
            .args(extra);
        ok(&mut cmd)
    };
    let out = start(&[]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("balancer started"));
    // Idempotent: a second start keeps the running balancer.
    let out = start(&[]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("already running"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let wait_for = |what: &str, f: &dyn Fn(&[String]) -> bool| until(what, 10, &|| ask(&bed, 3, 6), f);
    wait_for("both masters serve", &|g| {
        g.iter().any(|s| s == "node1") && g.iter().any(|s| s == "node2")
    });

    // A master's service dies: every connection goes to the other one within seconds.
    drop(one);
    let took = wait_for("failover to node2", &|g| g.iter().all(|s| s == "node2"));
    eprintln!("failover took {:.1}s", took.as_secs_f64());
    // And no connection is lost once it is marked down.
    let got = ask(&bed, 3, 20);
    assert!(got.iter().all(|s| s == "node2"), "{got:?}");

    // It comes back and rejoins.
    let _one = service(&bed, 1);
    let took = wait_for("node1 rejoins", &|g| g.iter().any(|s| s == "node1"));
    eprintln!("rejoin took {:.1}s", took.as_secs_f64());

    // A master that vanishes from the network (no refusal, packets dropped): the same, once a
    // connect times out or the health probes notice.
    bed.cut(1);
    let took = wait_for("failover from a cut master", &|g| g.iter().all(|s| s == "node2"));
    eprintln!("failover from a cut link took {:.1}s", took.as_secs_f64());
    bed.restore(1);
    let took = wait_for("node1 rejoins after the link is back", &|g| {
        g.iter().any(|s| s == "node1")
    });
    eprintln!("rejoin after the link came back took {:.1}s", took.as_secs_f64());

    let stop = ok(bed.on(3, &stub).args(["lb", "stop", "--state-dir"]).arg(&state));
    assert!(String::from_utf8_lossy(&stop.stdout).contains("balancer stopped"));
    assert!(ask(&bed, 3, 1) == ["-"], "the balancer still answers after stop");
}

/// An HTTPS service on host `i`'s port 6443, shaped like an apiserver: `/readyz` answers 200
/// while the file `ready` exists and 503 otherwise (listening, handshaking, not ready); any other
/// path answers the host's name.
fn https_service(bed: &Testbed, i: usize, cert: &Path, key: &Path, ready: &Path) -> Killed {
    const SERVER: &str = r#"
import http.server, os, socket, ssl, sys
cert, key, ready = sys.argv[1:4]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/readyz":
            code = 200 if os.path.exists(ready) else 503
            body = b"ok" if code == 200 else b"not ready"
        else:
            code, body = 200, socket.gethostname().encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
http.server.ThreadingHTTPServer.allow_reuse_address = True
s = http.server.ThreadingHTTPServer(("0.0.0.0", 6443), H)
s.socket = ctx.wrap_socket(s.socket, server_side=True)
s.serve_forever()
"#;
    Killed(
        bed.on(i, Path::new("/usr/bin/python3"))
            .arg("-c")
            .arg(SERVER)
            .args([cert, key, ready])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// `n` HTTPS requests (`GET /who`, certificate not checked) to `addr` from host `i`: the body
/// of each answer, `-` for none.
fn ask_https(bed: &Testbed, i: usize, addr: &str, n: usize) -> Vec<String> {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let out = run(bed.on(i, Path::new("/usr/bin/python3")).arg("-c").arg(format!(
        "import socket, ssl\nctx = ssl._create_unverified_context()\nfor _ in range({n}):\n  try:\n    \
         c = ctx.wrap_socket(socket.create_connection(('{host}', {port}), timeout=3))\n    \
         c.sendall(b'GET /who HTTP/1.0\\r\\n\\r\\n'); data = b''\n    \
         while True:\n      d = c.recv(4096)\n      if not d: break\n      data += d\n    \
         print(data.split(b'\\r\\n\\r\\n', 1)[1].decode() or '-'); c.close()\n  \
         except (OSError, IndexError):\n    print('-')\n"
    )));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// `--probe https:/readyz` on the bed: a master that still listens and completes TLS
/// handshakes but answers 503 on /readyz gets no new connections, and is used again once ready.
#[test]
fn lb_https_probe_skips_a_master_that_listens_but_is_not_ready() {
    let bed = Testbed::up(3);
    let dir = work().join("lb-https");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    ok(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args(["-days", "1", "-subj", "/CN=apiserver"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert));
    let ready: Vec<PathBuf> = (1..=2).map(|i| dir.join(format!("ready.node{i}"))).collect();
    for r in &ready {
        fs::write(r, "").unwrap();
    }
    let _one = https_service(&bed, 1, &cert, &key, &ready[0]);
    let _two = https_service(&bed, 2, &cert, &key, &ready[1]);
    let state = dir.join("state");
    let stub = stub();
    ok(bed
        .on(3, &stub)
        .args(["lb", "start", "--no-systemd", "--state-dir"])
        .arg(&state)
        .args(["--backend", &format!("{}:6443", bed.ip(1))])
        .args(["--backend", &format!("{}:6443", bed.ip(2))])
        .args(["--health-interval-ms", "500", "--probe", "https:/readyz"]));

    let wait_for =
        |what: &str, f: &dyn Fn(&[String]) -> bool| until(what, 15, &|| ask_https(&bed, 3, "127.0.0.1:6443", 6), f);
    wait_for("both masters serve", &|g| {
        g.iter().any(|s| s == "node1") && g.iter().any(|s| s == "node2")
    });

    // node1 stops being ready but keeps serving TLS: the tcp probe would keep it.
    fs::remove_file(&ready[0]).unwrap();
    let direct = ask_https(&bed, 3, &format!("{}:6443", bed.ip(1)), 1);
    assert_eq!(direct, ["node1"], "node1 must still answer over TLS");
    let took = wait_for("node2 only while node1 is not ready", &|g| {
        g.iter().all(|s| s == "node2")
    });
    eprintln!("a not-ready master was dropped after {:.1}s", took.as_secs_f64());
    let got = ask_https(&bed, 3, "127.0.0.1:6443", 20);
    assert!(got.iter().all(|s| s == "node2"), "{got:?}");

    fs::write(&ready[0], "").unwrap();
    let took = wait_for("node1 rejoins once ready", &|g| g.iter().any(|s| s == "node1"));
    eprintln!("the ready master rejoined after {:.1}s", took.as_secs_f64());
    ok(bed.on(3, &stub).args(["lb", "stop", "--state-dir"]).arg(&state));
}

#[test]
fn kubernetes_bundle_without_fetched_files_fails_at_its_copy_line() {
    let dir = work().join("unfilled");
    let _ = fs::remove_dir_all(&dir);
    let k = dir.join("bundles/kubernetes");
    fs::create_dir_all(&k).unwrap();
    for f in ["Kubefile", "kubernetes.toml"] {
        fs::copy(workspace().join("bundles/kubernetes").join(f), k.join(f)).unwrap();
    }
    let keys = keygen(&dir, "vendor");
    let out = build(&k.join("Kubefile"), Some(&dir), &keys.private, &dir.join("k.run"), &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    let line = fs::read_to_string(k.join("Kubefile"))
        .unwrap()
        .lines()
        .position(|l| l.contains("rootfs/bin/kubeadm"))
        .unwrap()
        + 1;
    assert!(err.contains(&format!("Kubefile:{line}:")), "{err}");
    assert!(err.contains("bundles/kubernetes/rootfs/bin/kubeadm"), "{err}");
    assert!(!dir.join("k.run").exists());
}
