#!/usr/bin/env bash
# A three-host overlay on one machine (root): hosts wtdemo-a, wtdemo-b, wtdemo-c are network namespaces
# in a line (a and c share no network), each runs `weave-ts launch`; containers wtdemo-web (on a) and
# wtdemo-db (on c) are attached by name, then web pings db by name through b. Everything is removed at
# the end (also on failure). Run from the repository after `npm ci`: sudo bash examples/three-namespaces.sh
# Every output line starts with [who]: the host, container or command it comes from. WEAVE_DEMO_PREFIX
# renames everything the demo creates (default wtdemo; at most 8 characters, interface names are short).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f dist/src/cli/main.js ] || npm run build >/dev/null
WEAVE="node $PWD/dist/src/cli/main.js"
P=${WEAVE_DEMO_PREFIX:-wtdemo}
WORK=$(mktemp -d /tmp/wtdemo.XXXXXX)
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for ns in $P-a $P-b $P-c $P-web $P-db; do ip netns del "$ns" 2>/dev/null || true; rm -rf "/etc/netns/$ns"; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# The underlay: a—b on 10.250.1.0/24, b—c on 10.250.2.0/24, no forwarding on b.
for ns in $P-a $P-b $P-c $P-web $P-db; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip link add $P-ab netns $P-a type veth peer name $P-ba netns $P-b
ip link add $P-bc netns $P-b type veth peer name $P-cb netns $P-c
ip -n $P-a addr add 10.250.1.1/24 dev $P-ab && ip -n $P-a link set $P-ab up
ip -n $P-b addr add 10.250.1.2/24 dev $P-ba && ip -n $P-b link set $P-ba up
ip -n $P-b addr add 10.250.2.1/24 dev $P-bc && ip -n $P-b link set $P-bc up
ip -n $P-c addr add 10.250.2.2/24 dev $P-cb && ip -n $P-c link set $P-cb up

label() { sed -u "s/^/[$1] /"; } # prefixes every line of a command's output with who said it

echo 'demo password: use a long random one' > "$WORK/password"
launch() { # host, extra args…
  local host=$1; shift
  local log="$WORK/$host.log"
  : > "$log" # exists before the agent starts, so the wait below never reads a missing file
  ip netns exec "$P-$host" $WEAVE launch --nickname "$host" --password-file "$WORK/password" \
    --ipalloc-init consensus=3 --bridge "${P}br" --data-dir "$WORK/$host" --log-level warn "$@" \
    >> "$log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  for _ in $(seq 1 150); do # 30 s
    grep -q 'weave-ts ready' "$log" && break
    if ! kill -0 "$pid" 2>/dev/null; then label "$host" < "$log"; echo "[$host] the agent exited before it was ready" >&2; exit 1; fi
    sleep 0.2
  done
  grep -q 'weave-ts ready' "$log" || { label "$host" < "$log"; echo "[$host] not ready after 30 s" >&2; exit 1; }
  grep 'weave-ts ready' "$log" | head -1 | label "$host"
}
launch b
launch a --peer 10.250.1.2
launch c --peer 10.250.2.1

ip netns exec $P-a $WEAVE attach --netns $P-web --name web --data-dir "$WORK/a" 2>&1 | label "a attach"
ip netns exec $P-c $WEAVE attach --netns $P-db --name db --data-dir "$WORK/c" 2>&1 | label "c attach"
ip netns exec $P-a $WEAVE ps --data-dir "$WORK/a" 2>&1 | label "a ps"
for _ in $(seq 1 50); do ip netns exec $P-web ping -c 1 -W 1 db >/dev/null 2>&1 && break; sleep 0.2; done
ip netns exec $P-web ping -c 3 db 2>&1 | label "web ping db"
ip netns exec $P-a $WEAVE status --data-dir "$WORK/a" 2>&1 | label "a status"
