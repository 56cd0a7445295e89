#!/usr/bin/env bash
# Dashboards and alerts against reality: starts `tandem devnet --profile ci` and a real
# Prometheus scraping it (deploy/prometheus/prometheus.devnet.yml and its rules), injects faults
# (a killed validator, a validator whose publisher skips slots, a libp2p peer spraying invalid
# gossip, a stalled L1 fee market, an almost empty publisher key, an L1 reorg), then
# checks that no alert condition holds before the faults, then runs every dashboard panel,
# variable, recording and alert expression through Prometheus's HTTP API (see deploy/README.md "Dashboards against a devnet"). Not part of CI (~5 min).
#
#   scripts/e2e.sh            # E2E_KEEP=1 keeps the work dir (logs, devnet, Prometheus data)
#                             # E2E_TANDEM=BIN E2E_DEPLOY_CHECK=BIN E2E_SPRAY=BIN skip the build
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/install-tools.sh
export PATH="$root/.tools/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tandem/target}"

log() { printf 'e2e: %s\n' "$*" >&2; }

work="$(mktemp -d -t tandem-e2e.XXXXXX)"
devnet_pid="" prom_pid="" restarted_pid="" fees_pid=""
cleanup() {
  for pid in $fees_pid $restarted_pid $devnet_pid $prom_pid; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in $fees_pid $restarted_pid $devnet_pid $prom_pid; do
    wait "$pid" 2>/dev/null || true
  done
  if [ -n "${E2E_KEEP:-}" ]; then log "work dir kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# Polls `$1` (a shell condition) every second until it holds or `$2` seconds pass.
wait_for() {
  local condition="$1" deadline=$((SECONDS + $2))
  until eval "$condition"; do
    [ "$SECONDS" -lt "$deadline" ] || { log "timed out waiting for: $condition"; return 1; }
    sleep 1
  done
}

# E2E_TANDEM / E2E_DEPLOY_CHECK / E2E_SPRAY: use these binaries instead of building them.
mkdir -p "$work/bin"
if [ -z "${E2E_TANDEM:-}" ] || [ -z "${E2E_DEPLOY_CHECK:-}" ] || [ -z "${E2E_SPRAY:-}" ]; then
  log "building tandem, deploy-check and tandem-spray"
  # The workspace's bins, not `-p`: a per-package build unifies features differently and would
  # rebuild RocksDB's C++ next to the test build's copy.
  cargo build -q --workspace --bins
fi
# Private copies: other checkouts sharing the target dir may rebuild the shared binaries.
cp "${E2E_TANDEM:-$CARGO_TARGET_DIR/debug/tandem}" "$work/bin/tandem"
cp "${E2E_DEPLOY_CHECK:-$CARGO_TARGET_DIR/debug/deploy-check}" "$work/bin/deploy-check"
cp "${E2E_SPRAY:-$CARGO_TARGET_DIR/debug/tandem-spray}" "$work/bin/tandem-spray"
tandem="$work/bin/tandem"
"$work/bin/deploy-check" exprs >"$work/exprs.json"

# The compose stack's configs, through the real CLI: emitted, then `tandem config check`ed.
log "checking the configs of --emit-compose"
"$tandem" devnet --emit-compose "$work/compose" >/dev/null
for config in "$work"/compose/*/node.toml; do
  "$tandem" config check "$config" >/dev/null 2>&1 || { "$tandem" config check "$config"; exit 1; }
done

data="$work/devnet"
log "starting the devnet in $data"
"$tandem" devnet --profile ci --data-dir "$data" --tx-rate 5 >"$work/devnet.log" 2>&1 &
devnet_pid=$!

node_field() { # $1 = node name, $2 = field of devnet.json
  python3 -c 'import json,sys; n=[n for n in json.load(open(sys.argv[1]))["nodes"] if n["name"]==sys.argv[2]][0]; print(n[sys.argv[3]] if n[sys.argv[3]] is not None else "")' \
    "$data/devnet.json" "$1" "$2" 2>/dev/null
}
wait_for '[ -n "$(node_field validator-0 pid)" ]' 120

prom="$work/prometheus"
mkdir -p "$prom/targets"
cp deploy/prometheus/prometheus.devnet.yml "$prom/"
cp -r deploy/prometheus/rules "$prom/rules"
deploy/prometheus/devnet-targets.sh "$data" >"$prom/targets/devnet.json"
prom_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
prom_url="http://127.0.0.1:$prom_port"
prometheus --config.file="$prom/prometheus.devnet.yml" --storage.tsdb.path="$prom/data" \
  --web.listen-address="127.0.0.1:$prom_port" >"$work/prometheus.log" 2>&1 &
prom_pid=$!
wait_for "curl -fsS $prom_url/-/ready >/dev/null 2>&1" 60

query() { # prints the number of series an instant query returns
  curl -fsS --get "$prom_url/api/v1/query" --data-urlencode "query=$1" |
    python3 -c 'import json,sys; print(len(json.load(sys.stdin)["data"]["result"]))'
}
log "waiting for every node to be scraped and for checkpoints on L1"
wait_for '[ "$(query "up == 1")" = 5 ]' 120
wait_for '[ "$(query "max(tandem_archiver_tip_checkpoint{tip=\"checkpointed\"}) >= 2")" = 1 ]' 240

# Healthy baseline: before any fault, no alert condition may hold (a condition true on a
# healthy network is a false alarm). Node readiness and pipeline discards may still settle
# from the start, so those two are not asked here.
log "healthy baseline: no alert condition before the faults"
python3 - "$prom_url" "$work/exprs.json" <<'PY'
import json, sys, urllib.parse, urllib.request
url, exprs_file = sys.argv[1], sys.argv[2]
SETTLING = {"TandemNodeNotReady", "TandemPipelineDiscardsRising"}
bad = []
alerts = [e for e in json.load(open(exprs_file)) if e["alert"] and e["alert"] not in SETTLING]
for e in alerts:
    q = urllib.parse.urlencode({"query": e["expr"]})
    with urllib.request.urlopen(f"{url}/api/v1/query?{q}", timeout=30) as r:
        result = json.load(r)["data"]["result"]
    for series in result:
        bad.append(f"{e['alert']}: {series['metric'].get('instance')} = {series['value'][1]}")
for line in bad:
    print("FAIL baseline", line)
print(f"baseline: {len(alerts)} alert conditions, {len(bad)} holding")
sys.exit(1 if bad else 0)
PY

# Anvil-injected L1 events first, while every validator runs (so proposes are sent in every
# slot and can be caught pending); the devnet's own anvil, from devnet.json.
l1_url="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["l1RpcUrl"])' "$data/devnet.json")"
anvil_rpc() { # $1 = method, $2 = JSON params
  curl -fsS -X POST -H 'content-type: application/json' \
    --data "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"$1\",\"params\":$2}" "$l1_url" >/dev/null
}

# Fault 1: a propose stuck in the mempool. Anvil refuses a tx whose fee cap is below the base
# fee, and a pipelined sequencer sends nothing while L1 is paused, so the base fee is raised
# the moment a propose is in the pool (it waits there up to one 1 s L1 block): the next
# block's base fee is set to 100,000 gwei (above every fee cap) and held there for 30 s, one
# block at a time, while blocks go on. The propose stalls, is sped up and, when its slot ends,
# cancelled (the replacements are refused too). Then the base fee decays on its own.
log "waiting for a propose in L1's pool, then holding the base fee at 100,000 gwei for 30 s"
python3 - "$l1_url" >"$work/fee-stall.log" 2>&1 <<'PY' &
import json, sys, time, urllib.request
url = sys.argv[1]
def rpc(method, params):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    req = urllib.request.Request(url, body, {"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)["result"]
pending = lambda: int(rpc("txpool_status", [])["pending"], 16)
high = hex(100_000 * 10**9)
# Set back when the stall ends, so the drain below is priced at the usual fee, not a decay.
usual = rpc("eth_getBlockByNumber", ["latest", False])["baseFeePerGas"]
deadline = time.monotonic() + 120
stuck_since = None
while time.monotonic() < deadline:
    if stuck_since is None:
        if pending() >= 1:
            # Whether it was caught before the next block shows in Prometheus (speed-ups).
            rpc("anvil_setNextBlockBaseFeePerGas", [high])
            stuck_since = time.monotonic()
        else:
            time.sleep(0.05)  # polling the pool, well inside one L1 block
    elif time.monotonic() - stuck_since < 30:
        rpc("anvil_setNextBlockBaseFeePerGas", [high])
        time.sleep(0.3)  # re-arm within every block: the override applies to one
    else:
        rpc("anvil_setNextBlockBaseFeePerGas", [usual])
        sys.exit(0)
sys.exit("no propose could be held in the pool")
PY
fees_pid=$!

wait_for '[ "$(query "sum(tandem_publisher_speed_ups_total) > 0")" = 1 ]' 120
log "speed-ups show"
wait_for '[ "$(query "sum(tandem_publisher_cancels_total) > 0")" = 1 ]' 120
log "cancels show"
wait "$fees_pid" || { cat "$work/fee-stall.log"; exit 1; }
fees_pid=""

# Fault 2: an empty publisher key (validator-3's, after the stall). 1,000 wei pays for no
# propose at any base fee anvil reaches, so the runway is 0 whatever the fee does next (a
# runway in proposes, priced while the stalled fee still decays, would grow a thousandfold).
# Its next send is refused for want of ETH; the publisher then reads the balance, so the
# balance, runway and low-balance gauges move and TandemPublisherBalanceRunwayLow holds.
drained="$(node_field validator-3 publisher)"
wait_for '[ "$(query "tandem_publisher_balance_runway_checkpoints{node=\"validator-3\"} > 0")" = 1 ]' 150
log "draining validator-3's publisher $drained to 1,000 wei"
anvil_rpc anvil_setBalance "[\"$drained\", \"0x3e8\"]"

wait_for '[ "$(query "max(tandem_publisher_low_balance{node=\"validator-3\"}) == 1")" = 1 ]' 150
log "the drained publisher's low-balance gauge shows"

# Fault 3: an L1 reorg of the newest 5 blocks (anvil_reorg, new blocks without their txs).
log "reorganising L1's newest 5 blocks"
anvil_rpc anvil_reorg '[5, []]'
wait_for '[ "$(query "sum(tandem_archiver_l1_reorgs_total) > 0")" = 1 ]' 60
log "the archivers saw the reorg"

# Fault 4: a libp2p peer joins every topic and sprays invalid gossip (garbage, snappy bombs,
# oversized frames, wrong signers, bad signatures). Every node it reaches must disconnect it,
# and refuse it when it comes back (its score passes the ban threshold).
log "spraying invalid gossip at every node (tandem-spray)"
"$work/bin/tandem-spray" --devnet "$data/devnet.json" --json >"$work/spray.json"
reached="$(python3 - "$work/spray.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
print("spray: sent", dict(report["sent"]), "not sent", report["not_sent"], file=sys.stderr)
reached, bad = 0, []
unreachable = [node["addr"] for node in report["nodes"] if node["unreachable"]]
for node in report["nodes"]:
    if node["unreachable"]:
        print(f"spray: {node['addr']}: unreachable", file=sys.stderr)
        continue
    reached += 1
    print(f"spray: {node['addr']}: disconnected at {node['disconnected_ms']} ms, "
          f"refused {node['refused']} redials, readmitted {node['readmitted']}", file=sys.stderr)
    if node["disconnected_ms"] is None or node["refused"] < 1 or node["readmitted"]:
        bad.append(node["addr"])
# Every node is up at this point (the kills come later): an unreachable one is a failure.
if bad or unreachable or not reached:
    sys.exit(f"spray: not disconnected and refused by: {bad}; unreachable: {unreachable}")
print(reached)
PY
)"
[ "$reached" = "$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["nodes"]))' "$data/devnet.json")" ] ||
  { echo "spray: reached $reached nodes, not all of devnet.json's" >&2; exit 1; }
# Instances that scored the sprayer out, not removals: a node closes the connection at the first
# heavy penalty, and whether it also reaches the ban threshold depends on how much of the burst it
# read first (timing), so a ban or a score disconnect both count.
wait_for '[ "$(query "count(sum by (instance) (tandem_p2p_peers_removed_total{reason=~\"banned|disconnected\"}) > 0) >= '"$reached"'")" = 1 ]' 60
wait_for '[ "$(query "sum(tandem_p2p_peer_penalties_total{action=\"low_tolerance\"}) > 0")" = 1 ]' 60
log "spray: $reached nodes scored the sprayer out (Prometheus agrees)"

# Fault 5: validator-1's publisher skips the next slots (the sequencer's test hook): it is
# restarted outside the devnet with the hook set through the environment.
slot="$(curl -fsS --get "$prom_url/api/v1/query" --data-urlencode 'query=max(tandem_node_current_slot)' |
  python3 -c 'import json,sys; print(int(float(json.load(sys.stdin)["data"]["result"][0]["value"][1])))')"
skip="[$(seq -s, "$((slot + 1))" "$((slot + 12))")]"
log "slot $slot: validator-1 skips publishing slots $skip"
pid="$(node_field validator-1 pid)"
kill "$pid"
wait_for "! kill -0 $pid 2>/dev/null" 60
TANDEM__SEQUENCER__SKIP_PUBLISHING_SLOTS="$skip" \
  "$tandem" run --config "$data/validator-1/node.toml" >>"$data/validator-1/logs/restarted.log" 2>&1 &
restarted_pid=$!

# Fault 6: validator-2 is killed and stays down.
log "killing validator-2"
kill -9 "$(node_field validator-2 pid)"

# A few slots (12 s each) for the faults to show, and the `for:` clauses to pass.
log "letting 10 slots pass after the kills"
wait_for '[ "$(query "max(tandem_node_current_slot) >= '"$((slot + 10))"'")" = 1 ]' 240
deploy/prometheus/devnet-targets.sh "$data" >"$prom/targets/devnet.json"

python3 - "$prom_url" "$work/exprs.json" <<'PY'
import json, sys, urllib.parse, urllib.request

url, exprs_file = sys.argv[1], sys.argv[2]
# Every panel must return data: the rare-event counters are registered at zero when their
# component starts, so an event not injected shows as zeros (listed), not as no data.

def get(path, **params):
    with urllib.request.urlopen(url + path + "?" + urllib.parse.urlencode(params), timeout=30) as r:
        return json.load(r)["data"]

exported = set(get("/api/v1/label/__name__/values"))
exprs = json.load(open(exprs_file))
recorded = {n for e in exprs if e["source"].count(":") and e["alert"] is None
            for n in [e["source"].split(": ", 1)[1]] if n.startswith("tandem:")}
failures, fired = [], []
for e in exprs:
    missing = [m for m in e["metrics"] if m not in exported and m not in recorded and m != "up"]
    if missing:
        failures.append(f"{e['source']}: not exported by any node: {', '.join(missing)}")
        continue
    if e["alert"] is None and e["source"].split(": ", 1)[1] in recorded:
        # A recording rule: it must have recorded something during the run (its condition,
        # a checkpoint moving within a minute, need not hold at the end).
        name = e["source"].split(": ", 1)[1]
        result = get("/api/v1/query", query=f"count_over_time({name}[30m])")["result"]
    else:
        result = get("/api/v1/query", query=e["expr"])["result"]
    if e["alert"]:
        if result:
            fired.append(e["alert"])
        continue  # every alert has promtool unit tests (deploy/check asserts it)
    if not result:
        failures.append(f"{e['source']}: no data\n    {e['expr']}")

print(f"{len(exprs)} expressions, {len(exported)} exported names")
print("alert conditions true now:", ", ".join(sorted(set(fired))) or "none")
# Counters still at zero everywhere: their events were not injected (their panels show 0).
counters = sorted({m for e in exprs if e["alert"] is None for m in e["metrics"]
                   if m.endswith("_total") and m in exported})
zeros = [m for m in counters if not get("/api/v1/query", query=f"{m} > 0")["result"]]
print(f"only zeros (event not injected): {len(zeros)} of {len(counters)} panel counters:",
      ", ".join(zeros) or "none")
# The injected faults must show.
for alert, fault in [("TandemNodeDown", "a validator was killed"),
                     ("TandemPublisherBalanceRunwayLow", "a publisher key was drained")]:
    if alert not in fired:
        failures.append(f"{alert}: its condition is false although {fault}")
for line in failures:
    print("FAIL", line)
passed = len(exprs) - len(failures)
print(f"{passed} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
PY
