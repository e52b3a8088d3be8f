# prepare (every master and node, every install): the kubelet unit and kubeadm's drop-in
# (kubeadm writes the kubelet's configuration and starts it during init and join).
export PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p /etc/systemd/system/kubelet.service.d /etc/kubernetes/manifests /var/lib/kubelet
cat >/etc/systemd/system/kubelet.service <<'UNIT'
[Unit]
Description=kubelet: The Kubernetes Node Agent (delivery Kubernetes bundle)
Wants=network-online.target containerd.service
After=network-online.target containerd.service
[Service]
ExecStart=/usr/local/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10
[Install]
WantedBy=multi-user.target
UNIT
cat >/etc/systemd/system/kubelet.service.d/10-kubeadm.conf <<'UNIT'
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/local/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
UNIT
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable kubelet >/dev/null 2>&1
  echo "{{ host.name }}: kubelet unit enabled ($(kubelet --version))"
else
  echo "{{ host.name }}: no systemd here: kubelet unit written, not enabled ($(kubelet --version))"
fi
