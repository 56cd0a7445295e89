"""The checks of scripts/crash-loop.sh, one subcommand per step; state in a JSON file.

    crash-loop.py DATA_DIR VICTIM STATE_FILE SUBCOMMAND [ARGS]

Exit status 0 when the step's condition holds; a violation is printed ("FAIL ...") and recorded.
"""

import json
import random
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request

data, victim, state_file, cmd, *args = sys.argv[1:]

EQUIVOCATIONS = "tandem_p2p_equivocations_total"
REFUSALS = "tandem_validator_slashing_refusals_total"


def devnet():
    with open(f"{data}/devnet.json") as f:
        return json.load(f)


def node(name):
    return next(n for n in devnet()["nodes"] if n["name"] == name)


def load():
    with open(state_file) as f:
        return json.load(f)


def save(state):
    with open(state_file + ".tmp", "w") as f:
        json.dump(state, f)
    # Atomic: a reader never sees half a file.
    import os

    os.replace(state_file + ".tmp", state_file)


def rpc(url, method, params=(), timeout=10):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
    req = urllib.request.Request(url, body.encode(), {"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        answer = json.load(r)
    if "error" in answer:
        raise RuntimeError(f"{method}: {answer['error']}")
    return answer["result"]


def q(hexnum):
    return int(hexnum, 16)


def ready(name):
    try:
        with urllib.request.urlopen(node(name)["rpcUrl"].rstrip("/") + "/ready", timeout=3) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


def metric_sum(name, metric):
    url = node(name)["metricsUrl"].rstrip("/")
    if not url.endswith("/metrics"):
        url += "/metrics"
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(metric + "{") or line.startswith(metric + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def tips(name):
    t = rpc(node(name)["rpcUrl"], "tandem_getL2Tips")
    return q(t["checkpointed"]["checkpoint"]["number"]), t["checkpointed"]["checkpoint"]["hash"]


def checkpoint_hash(name, number):
    return rpc(node(name)["rpcUrl"], "tandem_getCheckpoint", [hex(number)])["headerHash"]


def nonce(address, block):
    out = subprocess.run(
        ["cast", "nonce", "--rpc-url", devnet()["l1RpcUrl"], "--block", block, address],
        check=True, capture_output=True, text=True, timeout=20,
    )
    return int(out.stdout.strip())


def violation(state, i, what):
    line = f"kill {i}: {what}"
    print("FAIL", line, flush=True)
    state["violations"].append(line)


def others():
    return [n["name"] for n in devnet()["nodes"] if n["name"] != victim]


if cmd == "pid":
    pid = node(victim).get("pid")
    if not pid:
        sys.exit(1)
    print(pid)
elif cmd == "all-ready":
    sys.exit(0 if all(ready(n["name"]) for n in devnet()["nodes"]) else 1)
elif cmd == "ready":
    sys.exit(0 if ready(victim) else 1)
elif cmd == "checkpointed-at-least":
    sys.exit(0 if tips(victim)[0] >= int(args[0]) else 1)
elif cmd == "init":
    info = rpc(node(victim)["rpcUrl"], "tandem_nodeInfo")["deployment"]
    number, _ = tips(victim)
    l1 = devnet()["l1RpcUrl"]
    save({
        "seed": int(args[0]),
        "genesis": q(info["genesisTime"]),
        "slot": q(info["slotDuration"]),
        "rollup": devnet()["rollup"].lower(),
        "publisher": node(victim)["publisher"].lower(),
        "l1_start": q(rpc(l1, "eth_blockNumber")),
        "started": time.time(),
        "checkpoint_start": number,
        "hashes": {},
        "kills": [],
        "violations": [],
        "refusals_before": 0.0,
        "last_ready": time.time(),
    })
elif cmd == "next-kill-delay":
    state = load()
    rng = random.Random(state["seed"] * 1_000_003 + int(args[0]))
    phase = rng.uniform(0, state["slot"])
    earliest = max(time.time(), state["last_ready"]) + 2.0
    since = earliest - state["genesis"]
    at = state["genesis"] + (since // state["slot"]) * state["slot"] + phase
    if at < earliest:
        at += state["slot"]
    state["planned_phase"] = phase
    save(state)
    print(f"{max(0.0, at - time.time()):.3f}")
elif cmd == "snapshot":
    # What the victim reports just before the kill: its checkpointed tip and every checkpoint's
    # header hash up to it (fetched once each).
    state = load()
    number, tip_hash = tips(victim)
    for n in range(1, number + 1):
        if str(n) not in state["hashes"]:
            state["hashes"][str(n)] = checkpoint_hash(victim, n)
    state["before"] = {"number": number, "hash": tip_hash}
    try:
        state["refusals_before"] += metric_sum(victim, REFUSALS)
    except (urllib.error.URLError, OSError):
        pass
    state["kill_time"] = time.time()
    state["kill_phase"] = (time.time() - state["genesis"]) % state["slot"]
    save(state)
elif cmd == "violation":
    state = load()
    violation(state, args[0], args[1])
    save(state)
elif cmd == "verify":
    i, t0, t1 = args[0], float(args[1]), float(args[2])
    state = load()
    bad = []
    number, tip_hash = tips(victim)
    before = state["before"]
    if number < before["number"]:
        bad.append(f"checkpointed tip went back: {before['number']} before the kill, {number} after")
    elif number == before["number"] and tip_hash != before["hash"]:
        bad.append(f"checkpointed tip {number} changed hash: {before['hash']} -> {tip_hash}")
    reference = others()[0]
    for n in range(1, before["number"] + 1):
        try:
            after = checkpoint_hash(victim, n)
        except RuntimeError as err:
            bad.append(f"checkpoint {n} lost after restart: {err}")
            continue
        if after != state["hashes"][str(n)]:
            bad.append(f"checkpoint {n} hash {state['hashes'][str(n)]} before, {after} after")
        if n == before["number"] and checkpoint_hash(reference, n) != after:
            bad.append(f"checkpoint {n} differs from {reference}'s")
    equivocations = {}
    for name in others() + [victim]:
        try:
            count = metric_sum(name, EQUIVOCATIONS)
        except (urllib.error.URLError, OSError) as err:
            bad.append(f"{name} /metrics unreadable: {err}")
            continue
        if count:
            equivocations[name] = count
    if equivocations:
        bad.append(f"equivocations counted: {equivocations}")
    # A nonce lost at the kill leaves a gap: pending stays ahead of latest for good.
    publisher = state["publisher"]
    deadline = time.time() + 30
    while True:
        latest, pending = nonce(publisher, "latest"), nonce(publisher, "pending")
        if latest == pending:
            break
        if time.time() > deadline:
            bad.append(f"publisher {publisher} nonce gap: latest {latest}, pending {pending} for 30 s")
            break
        time.sleep(0.5)
    for what in bad:
        violation(state, i, what)
    record = {
        "kill": int(i),
        "phase": round(state["kill_phase"], 3),
        "ready_s": round(t1 - t0, 3),
        "checkpointed_before": before["number"],
        "checkpointed_after": number,
        "nonce": latest,
        "ok": not bad,
        "done": time.time(),
    }
    state["kills"].append(record)
    state["last_ready"] = t1
    save(state)
    print(json.dumps(record), flush=True)
    sys.exit(1 if bad else 0)
elif cmd in ("final", "summary"):
    state = load()
    l1 = devnet()["l1RpcUrl"]
    genesis, slot_secs = state["genesis"], state["slot"]
    last_restart = max([k["done"] - k["ready_s"] for k in state["kills"]], default=state["started"])

    scanned = {"next": state["l1_start"], "txs": []}

    def scan():
        """Rollup txs mined since the start: (slot, sender, status, hash, timestamp). Each call
        reads only the blocks after the last one read (the crash loop does not reorg L1)."""
        head = q(rpc(l1, "eth_blockNumber"))
        txs = scanned["txs"]
        for number in range(scanned["next"], head + 1):
            block = rpc(l1, "eth_getBlockByNumber", [hex(number), True])
            stamp = q(block["timestamp"])
            for tx in block["transactions"]:
                if (tx.get("to") or "").lower() != state["rollup"]:
                    continue
                receipt = rpc(l1, "eth_getTransactionReceipt", [tx["hash"]])
                txs.append(((stamp - genesis) // slot_secs, tx["from"].lower(),
                            q(receipt["status"]), tx["hash"], stamp))
        scanned["next"] = head + 1
        return list(txs)

    def proposer(slot):
        try:
            out = subprocess.run(
                ["cast", "call", state["rollup"], "getProposerForSlot(uint256)(address)",
                 str(slot), "--rpc-url", l1],
                capture_output=True, text=True, timeout=20,
            )
        except subprocess.TimeoutExpired:
            return None
        return out.stdout.strip().lower() if out.returncode == 0 else None

    if cmd == "final":
        # The victim's publisher must land a propose again after its last restart: by the end of
        # the slot after the first one it is the proposer of, built after it was ready. A fixed
        # wait fails whenever the schedule gives it no slot in time (12 slots: ~3 % of runs).
        # Slots are looked up as they come (L1 knows the current and the next epoch's committee).
        victim_address = node(victim)["validator"].lower()
        first = (int(last_restart) - genesis) // slot_secs + 2
        horizon = first + 24
        duty, looked = None, first
        landed, lookup_failures = False, 0
        while True:
            landed = any(s == 1 and f == state["publisher"] and t >= last_restart
                         for (_, f, s, _, t) in scan())
            current = (int(time.time()) - genesis) // slot_secs
            while not landed and duty is None and looked <= min(current + 1, horizon):
                named = proposer(looked)
                if named is None:
                    # cast failed (L1 busy): this slot is asked again at the next poll; 20
                    # failures in a row end the wait as a violation.
                    lookup_failures += 1
                    break
                lookup_failures = 0
                if named == victim_address:
                    duty = looked
                looked += 1
            if lookup_failures > 20:
                violation(state, "final", f"getProposerForSlot({looked}) kept failing")
                break
            end = genesis + ((duty if duty is not None else horizon) + 2) * slot_secs
            if landed or time.time() > end:
                break
            time.sleep(slot_secs / 4)
        if landed or lookup_failures > 20:
            pass
        elif duty is None and looked > horizon:
            print(f"final: the victim was the proposer of no slot in {first}..{horizon}: "
                  "its landing after the last restart was not checked", flush=True)
        elif duty is None:
            violation(state, "final", f"the proposers of slots {looked}..{horizon} were not "
                      "looked up in time (L1 too slow)")
        else:
            violation(state, "final", f"the victim was the proposer of slot {duty} after its last "
                      f"restart and its publisher landed no propose by the end of slot {duty + 1}")
    txs = scan()
    per_slot, victim_per_slot = {}, {}
    for slot, sender, status, tx_hash, _ in txs:
        if status == 1:
            per_slot.setdefault(slot, []).append(tx_hash)
        if sender == state["publisher"]:
            victim_per_slot.setdefault(slot, []).append((tx_hash, status))
    if cmd == "final":
        for slot, hashes in sorted(per_slot.items()):
            if len(hashes) > 1:
                violation(state, "final", f"{len(hashes)} successful proposes in L2 slot {slot}: {hashes}")
        for slot, sent in sorted(victim_per_slot.items()):
            if len(sent) > 1:
                violation(state, "final", f"the victim's publisher sent {len(sent)} proposes in L2 slot {slot}: {sent}")
        save(state)
    ok = [k for k in state["kills"] if k["ok"]]
    times = sorted(k["ready_s"] for k in state["kills"])
    number, _ = tips(others()[0])
    elapsed = (state["kills"][-1]["done"] if state["kills"] else time.time()) - state["started"]
    victim_landed = [t for t in txs if t[1] == state["publisher"] and t[2] == 1]
    victim_reverted = [t for t in txs if t[1] == state["publisher"] and t[2] != 1]
    phases = [0, 0, 0, 0]
    for k in state["kills"]:
        phases[min(3, int(4 * k["phase"] / slot_secs))] += 1
    print("── crash-loop summary ──")
    print(f"kills survived / attempted: {len(ok)} / {len(state['kills'])}")
    if times:
        print(f"restart→ready: p50 {statistics.median(times):.2f} s, max {times[-1]:.2f} s, min {times[0]:.2f} s")
        print(f"wall time per kill: {elapsed / len(state['kills']):.1f} s ({elapsed:.0f} s for {len(state['kills'])})")
    print(f"kill phase within the {slot_secs} s slot, by quarter: {phases}")
    print(f"checkpoints landed during the run: {number - state['checkpoint_start']} "
          f"(checkpointed tip {state['checkpoint_start']} -> {number})")
    print(f"rollup txs on L1: {len(txs)} ({sum(1 for t in txs if t[2] == 1)} successful); "
          f"victim's publisher: {len(victim_landed)} landed, {len(victim_reverted)} reverted")
    print(f"victim's slashing-protection refusals (summed over its lives): "
          f"{state['refusals_before'] + (metric_sum(victim, REFUSALS) if ready(victim) else 0):.0f}")
    print(f"violations: {len(state['violations'])}")
    for line in state["violations"]:
        print("  ", line)
    sys.exit(1 if state["violations"] else 0)
else:
    sys.exit(f"crash-loop.py: unknown step {cmd}")
