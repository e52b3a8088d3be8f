#!/usr/bin/env bash
# A multi-host SSH test bed on this one machine: hosts node1..nodeN, each an sshd in its own
# network, mount and UTS namespace, joined by a bridge on a private /24 with no default route
# (nothing can leave the machine). Recipe and gotchas: ../shared/notes/testbed.md; usage and
# layout: README.md next to this script. Needs root.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: testbed.sh COMMAND [ARGS] [--dir DIR]

  up N        create hosts node1..nodeN (1..9) and wait until every sshd accepts TCP
  down        kill every host process, delete namespaces, veths, bridge (idempotent)
  status      print each host, its address and whether its sshd answers
  cut I       set host I's root-side veth down (link fault)
  restore I   set it up again
  kill I      kill every process of host I (its overlay files stay)
  start I     start host I's sshd again on its overlay (reboot-like: fresh /tmp and /run)
  shape I R   limit host I's link with tc tbf at rate R (e.g. 1gbit, 100mbit); R=off removes it

  --dir DIR   bed directory (default /var/tmp/delivery-testbed; later commands default to the
              directory of the running bed). Holds id_ed25519, known_hosts, hosts.env, nodeI/.

exit codes: 0 ok, 1 error, 2 usage, 3 another testbed.sh holds the lock or a bed is already up
EOF
}

BRIDGE=dlvbr0
SUBNET=10.213.7
STATE_DIR=/run/delivery-testbed
STATE="$STATE_DIR/state"
LOCK=/run/lock/delivery-testbed.lock
# /var last: the bed directory's upper dirs usually live under /var/tmp, and once /var is an
# overlay they would resolve into it (overlayfs refuses an upperdir on overlayfs).
OVERLAYS=(etc opt usr root home srv var)

die() { echo "testbed: $1" >&2; exit "${2:-1}"; }
log() { echo "testbed: $*" >&2; }

ns() { echo "dlv-node$1"; }
veth() { echo "dlv-veth$1"; }
ip_of() { echo "$SUBNET.1$1"; }

# --- arguments -------------------------------------------------------------------------------
DIR=""
ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) [ $# -ge 2 ] || { usage >&2; exit 2; }; DIR="$2"; shift 2 ;;
    --dir=*) DIR="${1#--dir=}"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
[ ${#ARGS[@]} -ge 1 ] || { usage >&2; exit 2; }
CMD="${ARGS[0]}"

[ "$(id -u)" = 0 ] || die "must run as root (network namespaces, mounts)"

# The bed has fixed names, so it is single-instance: one command at a time (flock), and `up`
# refuses while a bed exists. A second user fails clearly instead of corrupting the first.
mkdir -p "$(dirname "$LOCK")" "$STATE_DIR"
exec 9>"$LOCK"
flock -n 9 || die "another testbed.sh command is running (lock $LOCK held)" 3

RUNNING_DIR=""
[ ! -f "$STATE" ] || RUNNING_DIR=$(sed -n 's/^DIR=//p' "$STATE")
if [ -z "$DIR" ]; then
  [ "$CMD" = up ] || DIR="$RUNNING_DIR"
  DIR="${DIR:-/var/tmp/delivery-testbed}"
fi
DIR=$(realpath -m "$DIR")
case "$DIR" in /|/etc|/etc/*|/opt|/opt/*|/usr|/usr/*|/root|/root/*|/home|/home/*|/srv|/srv/*|/var|/tmp|/tmp/*|/run|/run/*)
  die "--dir $DIR would be hidden by or overlap a host's overlay; use e.g. /var/tmp/NAME" 2 ;;
esac
mkdir -p "$DIR"
if [ -n "$RUNNING_DIR" ] && [ "$CMD" != up ] && [ "$DIR" != "$RUNNING_DIR" ]; then
  die "the running bed is in $RUNNING_DIR, not $DIR" 2
fi

count() { # number of hosts of the running bed
  if [ -f "$STATE" ]; then sed -n 's/^N=//p' "$STATE"; else echo 0; fi
}

need_host() { # I: a valid host index of the running bed
  local n; n=$(count)
  [[ "${1:-}" =~ ^[1-9]$ ]] || { usage >&2; exit 2; }
  [ "$1" -le "$n" ] || die "node$1 is not part of the bed (it has $n hosts; is it up?)"
}

ensure_packages() {
  local missing=() p
  for p in openssh-server openssh-client iproute2 sudo; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  command -v flock >/dev/null || missing+=(util-linux)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

sshd_answers() { # IP: does port 22 accept a TCP connection within 1 s
  timeout 1 bash -c "exec 3<>/dev/tcp/$1/22" 2>/dev/null
}

# --- one host --------------------------------------------------------------------------------
# The init script runs inside `nsenter --net=/run/netns/dlv-nodeI unshare --mount --uts`: every
# step execs, so its PID ends up being sshd's. nsenter, not `ip netns exec`: the latter remounts
# /sys for the namespace, which hides /sys/fs/cgroup (runc, containerd and kubelet need it);
# init.sh mounts the host's own sysfs itself and moves the cgroup mounts onto it. Writes to
# /etc ... /srv land in DIR/nodeI/up, never on the machine; /run and /tmp are fresh tmpfs at
# every start.
write_init() {
  local i=$1 d="$DIR/node$1"
  cat >"$d/init.sh" <<EOF
set -euo pipefail
D='$d'
for m in ${OVERLAYS[*]}; do
  mount -t overlay "node$i-\$m" -o "lowerdir=/\$m,upperdir=\$D/up/\$m,workdir=\$D/wk/\$m" "/\$m"
done
hostname node$i
# A sysfs of our own shows this host's network devices (eth0, lo), like \`ip netns exec\` does;
# carry the machine's cgroup mounts over onto it (runc and containerd need them).
cg=\$(mktemp -d /var/tmp/.testbed-cg.XXXXXX)
mount --rbind /sys/fs/cgroup "\$cg"
umount -l /sys
mount -t sysfs "node$i-sys" /sys
mount --move "\$cg" /sys/fs/cgroup
rmdir "\$cg"
. '$DIR/hosts.env'
# Configuration comes from DIR, which /tmp's tmpfs may hide: copy it into the node's /etc first.
install -d -m 0755 /etc/ssh/testbed
install -m 0600 "\$D/ssh_host_ed25519_key" /etc/ssh/testbed/ssh_host_ed25519_key
install -m 0644 "\$D/ssh_host_ed25519_key.pub" /etc/ssh/testbed/ssh_host_ed25519_key.pub
install -m 0644 "\$D/sshd_config" /etc/ssh/testbed/sshd_config
printf '127.0.0.1 localhost\n%s node$i\n' "\$NODE${i}_IP" >/etc/hosts
echo node$i >/etc/hostname
# A wrong password costs ~3.7 s with pam_unix's delay; nodelay brings it to ~0.5 s.
sed -i '/pam_unix.so/{/nodelay/!s/\$/ nodelay/}' /etc/pam.d/common-auth
id ops >/dev/null 2>&1 || useradd -m -s /bin/bash ops
id ops2 >/dev/null 2>&1 || useradd -m -s /bin/bash ops2
printf 'root:%s\nops:%s\nops2:%s\n' "\$NODE${i}_ROOT_PASSWORD" "\$OPS_PASSWORD" "\$OPS2_PASSWORD" | chpasswd
# The machine's /root/.bashrc (pyenv) would run at every SSH command (Debian's bash reads it
# for sshd): once it stalled every host for a minute on pyenv's lock. Hosts get a plain one.
printf '# test bed host\n' >/root/.bashrc
install -d -m 0750 /etc/sudoers.d
printf 'ops ALL=(ALL) NOPASSWD:ALL\nops2 ALL=(ALL) ALL\n' >/etc/sudoers.d/testbed
chmod 0440 /etc/sudoers.d/testbed
for u in root ops ops2; do
  h=\$(getent passwd \$u | cut -d: -f6)
  install -d -m 0700 -o \$u -g \$u "\$h/.ssh"
  install -m 0600 -o \$u -g \$u '$DIR/id_ed25519.pub' "\$h/.ssh/authorized_keys"
done
# Hide the bed directory (client key, other hosts' upper dirs) from the host.
mount -t tmpfs -o mode=0700 tmpfs '$DIR'
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mkdir -p /run/sshd
exec /usr/sbin/sshd -D -e -f /etc/ssh/testbed/sshd_config
EOF
}

start_host() {
  local i=$1 d="$DIR/node$1"
  [ -z "$(ip netns pids "$(ns "$i")" 2>/dev/null)" ] || die "node$i is already running; kill it first"
  write_init "$i"
  setsid nsenter --net="/run/netns/$(ns "$i")" unshare --mount --uts --propagation private \
    bash "$d/init.sh" </dev/null >>"$d/sshd.log" 2>&1 9>&- &
}

descendants() { # PID...: these PIDs and every process below them (read from /proc)
  local f line pid rest
  declare -A parent=() keep=()
  for f in /proc/[0-9]*/stat; do
    read -r line <"$f" 2>/dev/null || continue
    pid=${f#/proc/}; pid=${pid%/stat}
    rest=${line##*) }; rest=${rest#* }; parent[$pid]=${rest%% *}
  done
  for pid in "$@"; do keep[$pid]=1; done
  local changed=1
  while [ $changed = 1 ]; do
    changed=0
    for pid in "${!parent[@]}"; do
      if [ -z "${keep[$pid]:-}" ] && [ -n "${keep[${parent[$pid]}]:-}" ]; then keep[$pid]=1; changed=1; fi
    done
  done
  echo "${!keep[@]}"
}

kill_host() { # kill -9 every process of the namespace; wait until the kernel lists none
  local n; n=$(ns "$1")
  ip netns list 2>/dev/null | grep -qw "^$n" || return 0
  # Containers a host started (runc) have their own network namespace, so `ip netns pids` misses
  # them: take every descendant of the host's processes too, before killing their parents
  # orphans them.
  local t others pids p line
  others=$(descendants $(ip netns pids "$n" 2>/dev/null || true))
  for t in $(seq 1 100); do
    pids=$(ip netns pids "$n" 2>/dev/null || true)
    for p in $others; do # still alive (a zombie waits for PID 1 and is gone for our purposes)
      read -r line <"/proc/$p/stat" 2>/dev/null || continue
      line=${line##*) }; [ "${line%% *}" = Z ] || pids+=" $p"
    done
    [ -n "${pids// /}" ] || return 0
    kill -9 $pids 2>/dev/null || true
    sleep 0.05
  done
  die "processes of node$1 did not go away: $pids"
}

wait_sshd() { # I...: wait up to 15 s for every listed host
  local i deadline=$((SECONDS + 15))
  for i in "$@"; do
    until sshd_answers "$(ip_of "$i")"; do
      if [ -z "$(ip netns pids "$(ns "$i")" 2>/dev/null)" ] || [ $SECONDS -ge $deadline ]; then
        die "sshd on node$i did not come up; its log ($DIR/node$i/sshd.log):
$(tail -n 20 "$DIR/node$i/sshd.log" 2>/dev/null)"
      fi
      sleep 0.05
    done
  done
}

# --- commands --------------------------------------------------------------------------------
cmd_down() {
  local n l
  for n in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^dlv-node[0-9]*$' || true); do
    kill_host "${n#dlv-node}"
  done
  # Mounts live in the hosts' private mount namespaces and vanish with their processes; anything
  # left in ours (a crash between steps) is under DIR or a netns handle.
  { grep -E " ($DIR/|/run/netns/dlv-node)" /proc/mounts || true; } | awk '{print $2}' | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
  for n in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^dlv-node[0-9]*$' || true); do
    ip netns del "$n" 2>/dev/null || true
  done
  for l in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep '^dlv-veth[0-9]*$' || true); do
    ip link del "$l" 2>/dev/null || true
  done
  ip link del "$BRIDGE" 2>/dev/null || true
  rm -f "$STATE"
}

cmd_up() {
  local n="${1:-}" i
  [[ "$n" =~ ^[1-9]$ ]] || { usage >&2; exit 2; }
  if [ -f "$STATE" ] || ip link show "$BRIDGE" >/dev/null 2>&1 ||
    ip netns list 2>/dev/null | grep -q '^dlv-node'; then
    die "a test bed is already up ($(sed -n 's/^DIR=//p' "$STATE" 2>/dev/null || echo 'partial')); run 'testbed.sh down' first" 3
  fi
  ensure_packages
  # From here on, any failure leaves nothing half-built behind.
  trap 'rc=$?; [ $rc -eq 0 ] || { log "up failed, tearing down"; cmd_down; }; exit $rc' EXIT
  printf 'DIR=%s\nN=%s\n' "$DIR" "$n" >"$STATE"
  rm -rf "$DIR"/node[0-9] "$DIR"/id_ed25519 "$DIR"/id_ed25519.pub "$DIR"/known_hosts "$DIR"/hosts.env
  ssh-keygen -q -t ed25519 -N '' -C delivery-testbed-client -f "$DIR/id_ed25519"

  rnd() { tr -dc 'A-Za-z0-9' </dev/urandom | head -c 16 || true; }
  {
    echo "# delivery test bed: sourced by shells, parsed by tests/tests/e2e/testbed.rs"
    echo "TESTBED_DIR=$DIR"
    echo "TESTBED_N=$n"
    echo "TESTBED_KEY=$DIR/id_ed25519"
    echo "TESTBED_KNOWN_HOSTS=$DIR/known_hosts"
    echo "OPS_PASSWORD=$(rnd)"
    echo "OPS2_PASSWORD=$(rnd)"
    for i in $(seq 1 "$n"); do
      echo "NODE${i}_IP=$(ip_of "$i")"
      echo "NODE${i}_ROOT_PASSWORD=$(rnd)"
    done
  } >"$DIR/hosts.env"
  chmod 0600 "$DIR/hosts.env"

  ip link add "$BRIDGE" type bridge
  ip addr add "$SUBNET.1/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  : >"$DIR/known_hosts"
  for i in $(seq 1 "$n"); do
    local d="$DIR/node$i" m
    for m in "${OVERLAYS[@]}"; do mkdir -p "$d/up/$m" "$d/wk/$m"; done
    ssh-keygen -q -t ed25519 -N '' -C "node$i" -f "$d/ssh_host_ed25519_key"
    chmod 0600 "$d/ssh_host_ed25519_key"
    echo "$(ip_of "$i") $(cut -d' ' -f1,2 "$d/ssh_host_ed25519_key.pub")" >>"$DIR/known_hosts"
    cat >"$d/sshd_config" <<EOF
ListenAddress $(ip_of "$i")
HostKey /etc/ssh/testbed/ssh_host_ed25519_key
PidFile none
PermitRootLogin yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
UsePAM yes
UseDNS no
AuthorizedKeysFile .ssh/authorized_keys
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
    ip netns add "$(ns "$i")"
    ip link add "$(veth "$i")" type veth peer name eth0 netns "$(ns "$i")"
    ip link set "$(veth "$i")" master "$BRIDGE" up
    ip -n "$(ns "$i")" addr add "$(ip_of "$i")/24" dev eth0
    ip -n "$(ns "$i")" link set lo up
    ip -n "$(ns "$i")" link set eth0 up
    start_host "$i"
  done
  wait_sshd $(seq 1 "$n")
  trap - EXIT
  log "$n hosts up in $DIR (hosts.env, known_hosts, id_ed25519)"
}

cmd_status() {
  local n i; n=$(count)
  if [ "$n" = 0 ]; then echo "no test bed is up"; return 0; fi
  echo "bed $DIR, $n hosts"
  for i in $(seq 1 "$n"); do
    local link sshd
    link=$(cat "/sys/class/net/$(veth "$i")/operstate" 2>/dev/null || echo missing)
    if sshd_answers "$(ip_of "$i")"; then sshd=answers; else sshd="no answer"; fi
    printf 'node%s %s link=%s sshd=%s\n' "$i" "$(ip_of "$i")" "$link" "$sshd"
  done
}

case "$CMD" in
  up) cmd_up "${ARGS[1]:-}" ;;
  down) cmd_down ;;
  status) cmd_status ;;
  cut) need_host "${ARGS[1]:-}"; ip link set "$(veth "${ARGS[1]}")" down ;;
  restore) need_host "${ARGS[1]:-}"; ip link set "$(veth "${ARGS[1]}")" up ;;
  kill) need_host "${ARGS[1]:-}"; kill_host "${ARGS[1]}" ;;
  start) need_host "${ARGS[1]:-}"; start_host "${ARGS[1]}"; wait_sshd "${ARGS[1]}" ;;
  shape)
    need_host "${ARGS[1]:-}"
    [ -n "${ARGS[2]:-}" ] || { usage >&2; exit 2; }
    if [ "${ARGS[2]}" = off ]; then
      tc qdisc del dev "$(veth "${ARGS[1]}")" root 2>/dev/null || true
    else
      tc qdisc replace dev "$(veth "${ARGS[1]}")" root tbf rate "${ARGS[2]}" burst 128kb latency 50ms
    fi ;;
  *) usage >&2; exit 2 ;;
esac
