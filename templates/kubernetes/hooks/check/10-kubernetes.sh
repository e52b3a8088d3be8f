# check (every host): on masters, every node Ready and every kube-system pod Running; on every
# host, every image containerd holds for Kubernetes is one the bundle carries (pulled from the
# mirror by its original name, never from elsewhere).
export PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin
{% if "master" in host.roles %}
export KUBECONFIG=/etc/kubernetes/admin.conf
want={{ (masters | length) + (nodes | length) }}
nodes=$(kubectl get nodes --no-headers)
ready=$(echo "$nodes" | awk '$2 == "Ready"' | wc -l)
if [ "$ready" -lt "$want" ]; then
  echo "{{ host.name }}: $ready of $want nodes are Ready:" >&2
  echo "$nodes" >&2
  exit 1
fi
pods=$(kubectl get pods -n kube-system --no-headers)
bad=$(echo "$pods" | awk 'NF && $3 != "Running" && $3 != "Completed"')
if [ -n "$bad" ]; then
  echo "{{ host.name }}: kube-system pods not running:" >&2
  echo "$bad" >&2
  exit 1
fi
echo "{{ host.name }}: $ready nodes Ready, $(echo "$pods" | awk 'NF' | wc -l) kube-system pods running"
{% endif %}
carried='{% for i in registry.images %}{{ i }}
{% endfor %}'
foreign=$(ctr --address /run/containerd/containerd.sock -n k8s.io images ls -q 2>/dev/null \
  | grep -v -e '^sha256:' -e '@sha256:' | while read -r ref; do
      printf '%s\n' "$carried" | grep -qxF "$ref" || echo "$ref"
    done)
if [ -n "$foreign" ]; then
  echo "{{ host.name }}: images that are not in the bundle (pulled from elsewhere?):" >&2
  echo "$foreign" >&2
  exit 1
fi
echo "{{ host.name }}: every Kubernetes image here is one the bundle carries"
