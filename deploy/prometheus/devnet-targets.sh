#!/usr/bin/env bash
# Prints Prometheus file_sd targets for the nodes of a `tandem devnet` data dir (devnet.json):
#   deploy/prometheus/devnet-targets.sh ./devnet-data > deploy/prometheus/targets/devnet.json
# Labels: node (the devnet's node name) and node_role (validator or full_node). `role` itself
# is left to the node's own `tandem_node_info{role}`.
set -euo pipefail
data="${1:?usage: devnet-targets.sh DEVNET_DATA_DIR}"
python3 - "$data/devnet.json" <<'PY'
import json, sys
from urllib.parse import urlparse

devnet = json.load(open(sys.argv[1]))
targets = []
for node in devnet["nodes"]:
    url = urlparse(node["metricsUrl"])
    targets.append({
        "targets": [url.netloc],
        "labels": {"node": node["name"], "node_role": node["role"], "__metrics_path__": url.path or "/metrics"},
    })
json.dump(targets, sys.stdout, indent=2)
print()
PY
