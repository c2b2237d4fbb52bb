# Sourced by scripts/slurm-local.sh and scripts/gluster-local.sh: a second "machine" on this
# one, a network namespace joined to this host by a veth pair (needs root and iproute2).
#   netns_up DIR TAG   namespace vfTAG; host side NETNS_HOST_ADDR (10.213.X.1), namespace
#                      side NETNS_PEER_ADDR (10.213.X.2); sets NETNS_NS; records it in DIR/netns
#   netns_down DIR     removes what DIR/netns records (safe when there is nothing)
# Run a program there with `nsenter --net=/run/netns/$NETNS_NS PROGRAM`, not `ip netns
# exec`: that one mounts a sysfs of its own, without the cgroup tree slurmd looks for.

netns_up() {
  local dir="$1" tag="$2" x link
  [ "$(id -u)" = 0 ] && command -v ip >/dev/null || {
    echo "netns: a second host needs root and ip (iproute2: scripts/fetch-data.sh installs it)" >&2
    return 1; }
  # A /24 no interface here uses yet (another cluster or file system may be up).
  for x in $(seq $(( RANDOM % 250 )) 250) $(seq 0 250); do
    ip -br addr | grep -q " 10\.213\.$x\." || break
  done
  NETNS_NS="vf$tag"; link="vf${tag}a"
  NETNS_HOST_ADDR="10.213.$x.1"; NETNS_PEER_ADDR="10.213.$x.2"
  echo "$NETNS_NS $link" > "$dir/netns"
  ip netns add "$NETNS_NS"
  ip link add "$link" type veth peer name "vf${tag}b"
  ip link set "vf${tag}b" netns "$NETNS_NS"
  ip addr add "$NETNS_HOST_ADDR/24" dev "$link"
  ip link set "$link" up
  ip netns exec "$NETNS_NS" ip addr add "$NETNS_PEER_ADDR/24" dev "vf${tag}b"
  ip netns exec "$NETNS_NS" ip link set "vf${tag}b" up
  ip netns exec "$NETNS_NS" ip link set lo up
}

netns_down() {
  local dir="$1" ns link
  [ -f "$dir/netns" ] || return 0
  read -r ns link < "$dir/netns"
  ip link del "$link" 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  rm -f "$dir/netns"
}
