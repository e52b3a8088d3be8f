# join-node (workers, in parallel, once): kubeadm join through the node-local balancer that
# prepare started on 127.0.0.1:{{ kubernetes.endpoint_port }}.
export PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin
umask 077
state='{{ paths.state }}'
if [ -f /etc/kubernetes/kubelet.conf ]; then
  echo "{{ host.name }}: already joined"
  exit 0
fi
cat >"$state/kubeadm-join.yaml" <<'CONF'
apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: "{{ kubernetes.endpoint }}"
    token: "{{ published.KUBEADM_TOKEN }}"
    caCertHashes: ["{{ kubernetes.ca_cert_hash }}"]
nodeRegistration:
  name: "{{ host.name }}"
  criSocket: unix:///run/containerd/containerd.sock
CONF
kubeadm join --config "$state/kubeadm-join.yaml"
echo "{{ host.name }}: joined as a worker"
