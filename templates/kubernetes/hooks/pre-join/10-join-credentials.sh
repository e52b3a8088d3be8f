# pre-join (first master, before joins, on every install or add-node that joins hosts): fresh
# join credentials, so a host added months later joins as well as one added at install.
# Publishes KUBEADM_TOKEN (valid 4 h) and KUBEADM_CERT_KEY (kubeadm deletes the uploaded
# certificates after 2 h); both are kept out of the log.
export PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin
export KUBECONFIG=/etc/kubernetes/admin.conf
token=$(kubeadm token create --ttl 4h)
certkey=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
kubeadm init phase upload-certs --upload-certs --certificate-key "$certkey" >/dev/null
echo "KUBEADM_TOKEN=$token" >>"$DELIVERY_PUBLISH"
echo "KUBEADM_CERT_KEY=$certkey" >>"$DELIVERY_PUBLISH"
echo "{{ host.name }}: made a join token (4 h) and uploaded the control-plane certificates for the joins"
