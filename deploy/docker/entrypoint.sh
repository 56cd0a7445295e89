#!/bin/bash
# Entrypoint of the tandem image: prepares the data dir, then execs `tandem "$@"`.
#
#   TANDEM_NODE_KEY_FILE   a libp2p node key (from a Secret or a mounted dir) copied to
#                          $DATA/p2p/node.key when the data dir has none: peers know this
#                          node's peer id before it first starts.
#   TANDEM_BOOTNODE_DNS    space-separated HOST:PORT/PEER_ID entries, resolved to
#                          /ip4/<addr>/tcp/<port>/p2p/<peer id> and passed as
#                          TANDEM__P2P__BOOTNODES (the node dials IP multiaddrs only). A host
#                          that does not resolve within 60 s is left out: it dials us instead.
#                          Hosts are tried one after another: each unresolved one delays the
#                          start by 60 s (mind the liveness probe's initial delay). An entry
#                          that is not HOST:PORT/PEER_ID stops the container with a message.
#   TANDEM_INIT_SLASHING_PROTECTION_IF_MISSING=1
#                          adds --init-slashing-protection to `run` when the data dir has no
#                          record yet. Only for a validator's very first start (see
#                          deploy/README.md "Keys"): on a data dir that lost its record it
#                          would let the key sign again what it may have signed before.
# bash (it is in the image) for pipefail and [[ ]]; the getent pipe below tolerates a failure
# on purpose (it retries).
set -euo pipefail

data="${TANDEM__NODE__DATA_DIR:-/data}"

if [ -n "${TANDEM_NODE_KEY_FILE:-}" ] && [ ! -f "$data/p2p/node.key" ]; then
  mkdir -p "$data/p2p"
  cp "$TANDEM_NODE_KEY_FILE" "$data/p2p/node.key"
  chmod 600 "$data/p2p/node.key"
fi

if [ -n "${TANDEM_BOOTNODE_DNS:-}" ]; then
  list=""
  set -f # split on spaces only: no globbing of the entries
  for entry in $TANDEM_BOOTNODE_DNS; do
    hostport="${entry%%/*}"
    peer="${entry#*/}"
    host="${hostport%:*}"
    port="${hostport##*:}"
    if [ "$peer" = "$entry" ] || [ -z "$peer" ] || [ "$host" = "$hostport" ] || [ -z "$host" ] \
      || ! [[ "$port" =~ ^[0-9]+$ ]] || [[ "$peer" == */* ]]; then
      echo "tandem-entrypoint: TANDEM_BOOTNODE_DNS entry '$entry' is not HOST:PORT/PEER_ID" >&2
      exit 64
    fi
    addr=""
    tries=0
    while [ -z "$addr" ] && [ "$tries" -lt 60 ]; do
      addr="$(getent ahostsv4 "$host" 2>/dev/null | awk 'NR == 1 { print $1 }')" || true
      [ -n "$addr" ] || { tries=$((tries + 1)); sleep 1; }
    done
    if [ -z "$addr" ]; then
      echo "tandem-entrypoint: bootnode $host does not resolve; left out" >&2
      continue
    fi
    [ -z "$list" ] || list="$list, "
    list="$list\"/ip4/$addr/tcp/$port/p2p/$peer\""
  done
  set +f
  export TANDEM__P2P__BOOTNODES="[$list]"
fi

if [ "${1:-}" = "run" ] && [ "${TANDEM_INIT_SLASHING_PROTECTION_IF_MISSING:-}" = "1" ] \
  && [ ! -d "$data/validator/slashing-protection" ]; then
  set -- "$@" --init-slashing-protection
fi

exec tandem "$@"
