# join-master (the other masters, one at a time, once): kubeadm join --control-plane with the
# token and certificate key init published; the PKI is already in /etc/kubernetes/pki.
export PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin
umask 077
state='{{ paths.state }}'
if [ -f /etc/kubernetes/kubelet.conf ]; then
  echo "{{ host.name }}: already joined"
else
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
controlPlane:
  localAPIEndpoint:
    advertiseAddress: "{{ host.address }}"
    bindPort: 6443
  certificateKey: "{{ published.KUBEADM_CERT_KEY }}"
CONF
  # As on the first master: kubeconfigs made, taken to 100 years, then the join uses them.
  kubeadm join phase control-plane-prepare all --config "$state/kubeadm-join.yaml"
  '{{ paths.root }}/bin/delivery' cert --renew --dir /etc/kubernetes/pki >/dev/null
  kubeadm join --config "$state/kubeadm-join.yaml"
fi
# From now on this master uses its own API server.
case '{{ kubernetes.endpoint_host }}' in
  *[!0-9.]*)
    grep -v '# delivery kubernetes endpoint$' /etc/hosts >/etc/hosts.delivery-new || true
    echo '{{ host.address }} {{ kubernetes.endpoint_host }} # delivery kubernetes endpoint' >>/etc/hosts.delivery-new
    cat /etc/hosts.delivery-new >/etc/hosts
    rm -f /etc/hosts.delivery-new
    ;;
esac
mkdir -p /root/.kube
cp /etc/kubernetes/admin.conf /root/.kube/config 2>/dev/null || true
echo "{{ host.name }}: joined the control plane"
