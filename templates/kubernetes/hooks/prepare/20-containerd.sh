# prepare (every master and node, every install): containerd with the bundle's registry mirror
# for every upstream domain (hosts.toml files in {{ paths.certs_d }}), so image names are never
# rewritten. Under systemd as containerd.service; without systemd, started detached.
export PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin
state='{{ paths.state }}'
conf=/etc/containerd/config.toml
root=/var/lib/containerd
sock=/run/containerd/containerd.sock
mkdir -p "$root" "$state" /etc/containerd

if [ -d /run/systemd/system ]; then cgroup_systemd=true; else cgroup_systemd=false; fi
echo "$cgroup_systemd" >"$state/cgroup-systemd"
# overlayfs cannot sit on overlayfs (the kernel refuses): `native` works on any file system.
if [ "$(stat -f -c %T "$root")" = overlayfs ]; then snapshotter=native; else snapshotter=overlayfs; fi
echo "$snapshotter" >"$state/snapshotter"

pause=$(grep -m1 '/pause:' '{{ paths.files }}/manifests/imageList' 2>/dev/null || echo registry.k8s.io/pause:3.10.1)
# containerd 2.x reads config version 3; 1.x (e.g. a distribution's package) version 2.
case "$(containerd --version 2>/dev/null | awk '{print $3}')" in
  v1.* | 1.*)
    cat >"$conf.new" <<CONF
# Written by the delivery Kubernetes bundle (prepare hook); changes are overwritten.
version = 2
root = "$root"
state = "/run/containerd"
[grpc]
  address = "$sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause"
[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "$snapshotter"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  BinaryName = "/usr/local/bin/runc"
  SystemdCgroup = $cgroup_systemd
[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "{{ paths.certs_d }}"
[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "/opt/cni/bin"
  conf_dir = "/etc/cni/net.d"
CONF
    ;;
  *)
    cat >"$conf.new" <<CONF
# Written by the delivery Kubernetes bundle (prepare hook); changes are overwritten.
version = 3
root = "$root"
state = "/run/containerd"
[grpc]
  address = "$sock"
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "$snapshotter"
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = "{{ paths.certs_d }}"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "$pause"
[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
    BinaryName = "/usr/local/bin/runc"
    SystemdCgroup = $cgroup_systemd
[plugins."io.containerd.cri.v1.runtime".cni]
  bin_dirs = ["/opt/cni/bin"]
  conf_dir = "/etc/cni/net.d"
CONF
    ;;
esac
changed=no
if ! cmp -s "$conf.new" "$conf"; then mv "$conf.new" "$conf"; changed=yes; else rm -f "$conf.new"; fi
answers() { [ -S "$sock" ] && ctr --address "$sock" --connect-timeout "$1" version >/dev/null 2>&1; }

if [ "$cgroup_systemd" = true ]; then
  cat >/etc/systemd/system/containerd.service.new <<'UNIT'
[Unit]
Description=containerd (delivery Kubernetes bundle)
After=network.target local-fs.target
[Service]
ExecStartPre=-/sbin/modprobe overlay
ExecStart=/usr/local/bin/containerd --config /etc/containerd/config.toml
Type=notify
Delegate=yes
KillMode=process
Restart=always
RestartSec=5
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
OOMScoreAdjust=-999
[Install]
WantedBy=multi-user.target
UNIT
  mv /etc/systemd/system/containerd.service.new /etc/systemd/system/containerd.service
  systemctl daemon-reload
  systemctl enable containerd >/dev/null 2>&1
  if [ "$changed" = yes ]; then systemctl restart containerd; else systemctl start containerd; fi
else
  # No systemd (containers, minimal hosts, the project's test bed): ours is found by its
  # command line in this mount namespace; restarted when its config changed or it is silent.
  mnt=$(readlink /proc/self/ns/mnt)
  ours() {
    for d in /proc/[0-9]*; do
      [ "$(tr '\0' ' ' 2>/dev/null <"$d/cmdline")" = "containerd --config $conf " ] || continue
      [ "$(readlink "$d/ns/mnt" 2>/dev/null)" = "$mnt" ] || continue
      echo "${d#/proc/}"
    done
  }
  pids=$(ours)
  if [ -n "$pids" ] && { [ "$changed" = yes ] || ! answers 3s; }; then
    kill $pids 2>/dev/null || true
    i=0
    while [ $i -lt 100 ] && [ -n "$(ours)" ]; do sleep 0.1; i=$((i + 1)); done
    [ -z "$(ours)" ] || kill -9 $(ours) 2>/dev/null || true
    pids=
  fi
  if [ -z "$pids" ]; then
    if answers 1s; then
      echo "{{ host.name }}: another containerd (not this bundle's) answers on $sock; stop it first" >&2
      exit 1
    fi
    rm -f "$sock"
    mkdir -p /run/containerd
    setsid containerd --config "$conf" </dev/null >>"$state/containerd.log" 2>&1 &
  fi
fi
i=0
until answers 1s; do
  if [ $i -ge 300 ]; then
    echo "{{ host.name }}: containerd does not answer on $sock after 30 s; last lines of its log:" >&2
    if [ "$cgroup_systemd" = true ]; then journalctl -u containerd -n 20 --no-pager >&2 || true; else tail -n 20 "$state/containerd.log" >&2; fi
    exit 1
  fi
  sleep 0.1; i=$((i + 1))
done
echo "{{ host.name }}: containerd answers (snapshotter $snapshotter, systemd cgroups $cgroup_systemd, mirror {{ registry.endpoint }})"
