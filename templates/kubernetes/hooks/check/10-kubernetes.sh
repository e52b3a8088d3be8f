# check (every host): on masters, every node Ready and every kube-system pod Running; on every
# host, every image containerd holds for Kubernetes is one the bundle carries, with the bundle's
# digest (pulled through the mirror by its original name, never from elsewhere).
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
# Every image containerd holds for Kubernetes must be the bundle's, digest for digest: a name
# the bundle does not carry was pulled from elsewhere; a carried name with another digest was
# pulled past the mirror or side-loaded. Kubelet's `REPO@sha256:...` entries must name a digest
# the bundle carries for that repository; bare `sha256:...` entries are image ids.
carried='{% for name, digest in registry.digests | items %}{{ name }} {{ digest }}
{% endfor %}'
repo_of() { # docker.io/library/busybox:1.36 -> docker.io/library/busybox
  r=${1%@*}
  case ${r##*/} in *:*) r=${r%:*} ;; esac
  echo "$r"
}
repos=$(printf '%s' "$carried" | while read -r name digest; do echo "$(repo_of "$name") $digest"; done)
list=$(ctr --address /run/containerd/containerd.sock -n k8s.io images ls) || {
  echo "{{ host.name }}: containerd does not answer on /run/containerd/containerd.sock" >&2
  exit 1
}
held=$(printf '%s\n' "$list" | awk 'NR > 1 { print $1, $3 }')
wrong=$(printf '%s\n' "$held" | while read -r ref digest; do
  case "$ref" in
    ''|sha256:*) continue ;;
    *@sha256:*)
      printf '%s\n' "$repos" | grep -qxF "$(repo_of "$ref") ${ref#*@}" \
        || echo "  $ref: not a digest the bundle carries for $(repo_of "$ref")" ;;
    *)
      want=$(printf '%s\n' "$carried" | awk -v r="$ref" '$1 == r { print $2 }')
      if [ -z "$want" ]; then
        echo "  $ref ($digest): not in the bundle"
      elif [ "$want" != "$digest" ]; then
        echo "  $ref: $digest here, $want in the bundle"
      fi ;;
  esac
done)
if [ -n "$wrong" ]; then
  echo "{{ host.name }}: images that did not come from the bundle's mirror (pulled from elsewhere or side-loaded):" >&2
  echo "$wrong" >&2
  exit 1
fi
n=$(printf '%s\n' "$held" | awk 'NF && $1 !~ /^sha256:/' | wc -l)
echo "{{ host.name }}: all $n Kubernetes image reference(s) here are the bundle's, digest for digest"
