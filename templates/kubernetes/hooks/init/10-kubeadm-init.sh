# init (first master, once): kubeadm init with the installer's PKI, a rendered kubeadm config
# (CIDRs, SANs, endpoint from cluster.toml [kubernetes]), then the CNI (Flannel). The join
# credentials come from the pre-join hook, which runs next.
export PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin
umask 077
state='{{ paths.state }}'
files='{{ paths.files }}'
admin=/etc/kubernetes/admin.conf
if [ ! -f /etc/kubernetes/pki/ca.crt ]; then
  echo "{{ host.name }}: /etc/kubernetes/pki/ca.crt is missing: the installer's pki step did not run" >&2
  exit 1
fi
if [ "$(cat "$state/cgroup-systemd" 2>/dev/null)" = true ]; then driver=systemd; else driver=cgroupfs; fi
if [ -f "$admin" ]; then
  echo "{{ host.name }}: already initialised (an earlier run failed after kubeadm init)"
else
  cat >"$state/kubeadm-init.yaml" <<CONF
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: "{{ host.address }}"
  bindPort: 6443
nodeRegistration:
  name: "{{ host.name }}"
  criSocket: unix:///run/containerd/containerd.sock
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
clusterName: "{{ cluster.name }}"
kubernetesVersion: "{{ kubernetes.version }}"
controlPlaneEndpoint: "{{ kubernetes.endpoint }}"
certificatesDir: /etc/kubernetes/pki
imageRepository: registry.k8s.io
networking:
  podSubnet: "{{ kubernetes.pod_cidr }}"
  serviceSubnet: "{{ kubernetes.service_cidr }}"
  dnsDomain: "{{ kubernetes.dns_domain }}"
apiServer:
  certSANs:
    - "{{ kubernetes.endpoint_host }}"
    - "127.0.0.1"
{%- for m in masters %}
    - "{{ m }}"
{%- endfor %}
{%- for s in kubernetes.cert_sans %}
    - "{{ s }}"
{%- endfor %}
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: $driver
CONF
  # kubeadm makes the kubeconfigs' client certificates for one year: make them first, take
  # them to 100 years with the installer's CA, then init uses them as they are.
  kubeadm init phase kubeconfig all --config "$state/kubeadm-init.yaml"
  '{{ paths.root }}/bin/delivery' cert --renew --dir /etc/kubernetes/pki >/dev/null
  kubeadm init --config "$state/kubeadm-init.yaml" --skip-token-print
fi
mkdir -p /root/.kube
cp "$admin" /root/.kube/config

# The CNI, with the cluster's pod network (Flannel's manifest says 10.244.0.0/16).
sed 's#"Network": "10.244.0.0/16"#"Network": "{{ kubernetes.pod_cidr }}"#' \
  "$files/manifests/cni/kube-flannel.yml" >"$state/kube-flannel.yml"
kubectl --kubeconfig "$admin" apply -f "$state/kube-flannel.yml"
echo "{{ host.name }}: control plane initialised at {{ kubernetes.endpoint }}; Flannel applied for {{ kubernetes.pod_cidr }}"
