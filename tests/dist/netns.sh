#!/usr/bin/env bash
# Two "machines" without a cluster: two network namespaces joined by a veth pair, one rank in
# each, MASTER_ADDR on the veth address; the run must equal the single-process one.
# Needs root (CI runs as root) and iproute2. Exit 77 = skipped (says why).
source "$(dirname "$0")/common.sh" "$@"
command -v ip >/dev/null || skip "no 'ip' command (Debian: apt-get install iproute2)"
has_gloo || skip "this ddpm-train was built without c10d/Gloo (no Gloo headers)"
A=ddpm-a$$ B=ddpm-b$$
ip netns add "$A" 2>"$WORK/netns.err" || skip "cannot create network namespaces here ($(head -1 "$WORK/netns.err"))"
cleanup_ns() { ip netns del "$A" 2>/dev/null || true; ip netns del "$B" 2>/dev/null || true; }
trap 'kill $(jobs -p) 2>/dev/null || true; cleanup_ns; rm -rf "$WORK"' EXIT
ip netns add "$B"
ip link add va$$ netns "$A" type veth peer name vb$$ netns "$B"
ip -n "$A" addr add 10.213.0.1/24 dev va$$
ip -n "$B" addr add 10.213.0.2/24 dev vb$$
for ns in "$A" "$B"; do ip -n "$ns" link set lo up; done
ip -n "$A" link set va$$ up
ip -n "$B" link set vb$$ up

echo "== 1 process, batch 8, 16 steps"
"$TRAIN" "${COMMON[@]}" --steps 16 --run-dir "$WORK/one" >"$WORK/one.log" 2>&1 || { cat "$WORK/one.log"; fail "single run"; }
losses "$WORK/one" >"$WORK/one.txt"

echo "== rank 0 in $A (10.213.0.1), rank 1 in $B (10.213.0.2)"
run_rank() {  # rank namespace interface
  ip netns exec "$2" env RANK=$1 LOCAL_RANK=0 WORLD_SIZE=2 LOCAL_WORLD_SIZE=1 MASTER_ADDR=10.213.0.1 MASTER_PORT=29611 \
    GLOO_SOCKET_IFNAME=$3 "$TRAIN" "${COMMON[@]}" --steps 16 --run-dir "$WORK/two" --dist-timeout 60
}
run_rank 0 "$A" va$$ >"$WORK/r0.log" 2>&1 & p0=$!
run_rank 1 "$B" vb$$ >"$WORK/r1.log" 2>&1 & p1=$!
c0=0; wait $p0 || c0=$?
c1=0; wait $p1 || c1=$?
(( c0 == 0 && c1 == 0 )) || { cat "$WORK/r0.log" "$WORK/r1.log"; fail "ranks exited $c0 and $c1"; }
losses "$WORK/two" >"$WORK/two.txt"
same_losses "$WORK/one.txt" "$WORK/two.txt" 1e-5 || fail "the two-namespace run differs from the single process"
echo "PASS"
