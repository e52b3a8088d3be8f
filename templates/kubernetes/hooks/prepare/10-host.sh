# prepare (every master and node, every install): the host as kubeadm needs it.
# Idempotent; rendered by minijinja on the installer, run as root with `sh -s` (set -eu).
export PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin
files='{{ paths.files }}'
state='{{ paths.state }}'
mkdir -p "$state"

# 1. Swap off, now and after a reboot (kubelet refuses to start with swap on by default).
if [ -r /proc/swaps ] && [ "$(wc -l </proc/swaps)" -gt 1 ]; then
  swapoff -a
  echo "{{ host.name }}: swap turned off"
fi
if [ -f /etc/fstab ] && grep -Eq '^[^#].*[[:space:]]swap[[:space:]]' /etc/fstab; then
  sed -i.delivery-bak -E 's/^([^#].*[[:space:]]swap[[:space:]].*)$/# \1  # disabled by delivery/' /etc/fstab
fi

# 2. Kernel modules ($KERNEL_MODULES, from the bundle's ENV or cluster.toml [env]; "" skips).
modules="${KERNEL_MODULES:-}"
if [ -n "$modules" ]; then
  mkdir -p /etc/modules-load.d
  printf '%s\n' $modules >/etc/modules-load.d/delivery-kubernetes.conf
  for m in $modules; do
    if [ ! -d "/sys/module/$m" ] && ! modprobe "$m" 2>/dev/null; then
      echo "{{ host.name }}: kernel module $m is not loaded and modprobe $m failed; install it, or set KERNEL_MODULES in cluster.toml [env]" >&2
      exit 1
    fi
  done
fi

# 3. Sysctls: written for boot, applied now (net.* are per network namespace).
mkdir -p /etc/sysctl.d
cat >/etc/sysctl.d/99-delivery-kubernetes.conf <<'CONF'
net.ipv4.ip_forward = 1
net.ipv6.conf.all.forwarding = 1
net.bridge.bridge-nf-call-iptables = 1
net.bridge.bridge-nf-call-ip6tables = 1
CONF
while read -r key _ value; do
  f=/proc/sys/$(echo "$key" | tr . /)
  if [ -w "$f" ]; then
    echo "$value" >"$f"
  else
    echo "{{ host.name }}: sysctl $key is not available here (is br_netfilter loaded?)"
  fi
done </etc/sysctl.d/99-delivery-kubernetes.conf

# 4. Binaries (`install` gives a new inode: a running process keeps its old file).
for b in kubeadm kubelet kubectl crictl containerd containerd-shim-runc-v2 ctr runc; do
  if ! cmp -s "$files/rootfs/bin/$b" "/usr/local/bin/$b"; then
    install -D -m 0755 "$files/rootfs/bin/$b" "/usr/local/bin/$b"
  fi
done
mkdir -p /opt/cni/bin
for p in "$files"/rootfs/cni/bin/*; do
  [ -f "$p" ] || continue
  cmp -s "$p" "/opt/cni/bin/${p##*/}" || install -m 0755 "$p" "/opt/cni/bin/${p##*/}"
done
cat >/etc/crictl.yaml <<'CONF'
runtime-endpoint: unix:///run/containerd/containerd.sock
image-endpoint: unix:///run/containerd/containerd.sock
CONF

# 5. The API endpoint's name: masters use their own API server once they run one (until then
# the first master's), nodes their local balancer on 127.0.0.1.
endpoint_host='{{ kubernetes.endpoint_host }}'
case "$endpoint_host" in
  *[!0-9.]*)
    {% if "master" in host.roles %}
    if [ -f /etc/kubernetes/manifests/kube-apiserver.yaml ]; then ip='{{ host.address }}'; else ip='{{ first_master }}'; fi
    {% else %}
    ip=127.0.0.1
    {% endif %}
    grep -v '# delivery kubernetes endpoint$' /etc/hosts >/etc/hosts.delivery-new || true
    echo "$ip $endpoint_host # delivery kubernetes endpoint" >>/etc/hosts.delivery-new
    cat /etc/hosts.delivery-new >/etc/hosts # in place: /etc/hosts may be a bind mount
    rm -f /etc/hosts.delivery-new
    echo "{{ host.name }}: $endpoint_host -> $ip"
    ;;
esac
{% if "master" not in host.roles %}
# 6. Nodes reach the API servers through the node-local balancer (the stub, as a service),
# which sends new connections only to masters whose /readyz answers (anonymous access to it is
# kube-apiserver's default).
case "$endpoint_host" in
  *[!0-9.]*)
    '{{ paths.root }}/bin/delivery' lb start --state-dir "$state/lb" \
      --listen '127.0.0.1:{{ kubernetes.endpoint_port }}' --probe https:/readyz{% for a in kubernetes.apiservers %} --backend '{{ a }}'{% endfor %}
    ;;
esac
{% endif %}
