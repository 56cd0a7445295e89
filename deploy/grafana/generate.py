#!/usr/bin/env python3
"""Writes the provisioned Grafana dashboards (dashboards/*.json) from the panel lists below.

Edit here and run `python3 deploy/grafana/generate.py`; the JSON is committed (Grafana reads it
as is). Every expression uses only metrics the node exports: deploy/check fails otherwise, and
scripts/e2e.sh runs each one against a real devnet. `$instance` is every template variable a
panel needs (`$role` narrows the instance list).
"""
import json
import os

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dashboards")
I = '{instance=~"$instance"}'
R = "$__rate_interval"


def sel(extra=""):
    """A selector with the instance filter and optional extra matchers."""
    return '{instance=~"$instance"' + (", " + extra if extra else "") + "}"


def q(expr, legend="{{instance}}"):
    return {"expr": expr, "legend": legend}


def quantiles(metric, by="instance", extra=""):
    """p50 and p90 of a histogram, per `by`."""
    return [
        q(f"histogram_quantile({p}, sum by (le, {by}) (rate({metric}_bucket{sel(extra)}[{R}])))",
          "p" + str(int(p * 100)) + " {{" + by + "}}")
        for p in (0.5, 0.9)
    ]


def panel(title, targets, unit="short", kind="timeseries", description=""):
    return {"title": title, "targets": targets, "unit": unit, "kind": kind,
            "description": description}


DASHBOARDS = {
    "tandem-overview": ("tandem: overview", [
        panel("Ready", [q(f"tandem_node_ready{I}")], kind="stat",
              description="1 when /ready says ready (bound, synced to L1, world state at the archiver's tip, enough peers, clock within 500 ms)."),
        panel("Nodes (version, role)", [q("tandem_node_info" + sel('role=~"$role"'), "{{instance}} {{role}} {{version}}")], kind="table"),
        panel("Current slot", [q(f"tandem_node_current_slot{I}")], kind="stat"),
        panel("Block tips (archiver)", [q(f"tandem_archiver_tip_block{I}", "{{instance}} {{tip}}")],
              description="L2 block number of each tip: proposed, proposed_checkpoint, checkpointed, finalized."),
        panel("Checkpoint tips (archiver)", [q(f"tandem_archiver_tip_checkpoint{I}", "{{instance}} {{tip}}")]),
        panel("World-state tip", [q(f"tandem_node_synced_block{I}")]),
        panel("L1 sync lag (blocks)", [q(f"tandem_node_l1_sync_lag_blocks{I}")],
              description="L1 head minus the archiver's synced L1 block. Alert: TandemL1SyncLag (> 2)."),
        panel("L1 head / synced", [q(f"tandem_node_l1_head_block{I}", "head {{instance}}"),
                                   q(f"tandem_node_l1_synced_block{I}", "synced {{instance}}")]),
        panel("Peers", [q(f"tandem_node_peers{I}")], description="Alert: TandemPeersBelowMin."),
        panel("Slots filled / missed (this node as proposer)", [
            q(f"sum by (instance) (increase(tandem_sequencer_slots_filled_total{I}[{R}]))", "filled {{instance}}"),
            q(f"sum by (instance) (increase(tandem_sequencer_slots_missed_total{I}[{R}]))", "missed {{instance}}")]),
        panel("Clock offset vs L1", [q(f"tandem_node_clock_offset_seconds{I}", "estimate {{instance}}"),
                                     q(f"tandem_node_clock_head_delay_min_seconds{I}", "upper bound {{instance}}")], unit="s",
              description="Local clock minus L1 time. L1 timestamps are whole seconds and heads arrive late, so only an upper bound is "
                          "certain: the smallest (seen - timestamp) over recent heads. Below 0 the clock is behind by at least that much; "
                          "alert TandemClockOffset when below -250 ms. 'Ahead' cannot be proven: the estimate (midpoint of the possible "
                          "range, up to (1 s + L1 slot/3)/2 wrong; on Ethereum a healthy clock reads about -1 s) is for trends only."),
        panel("Tx pool", [q(f"tandem_pool_txs{I}")]),
    ]),
    "tandem-sequencer": ("tandem: sequencer and pipeline", [
        panel("Pipeline depth", [q(f"tandem_sequencer_pipeline_depth{I}")],
              description="Proposed (not yet on L1) checkpoints the last prepared checkpoint builds on."),
        panel("Blocks per checkpoint", [
            q(f"rate(tandem_sequencer_blocks_per_checkpoint_sum{I}[5m]) / rate(tandem_sequencer_blocks_per_checkpoint_count{I}[5m])", "mean {{instance}}")]),
        panel("Txs per checkpoint", [
            q(f"rate(tandem_sequencer_txs_per_checkpoint_sum{I}[5m]) / rate(tandem_sequencer_txs_per_checkpoint_count{I}[5m])", "mean {{instance}}")]),
        panel("Build start offset", quantiles("tandem_sequencer_build_start_offset_seconds"), unit="s",
              description="Time from the build frame opening to the start of building."),
        panel("Block build time", quantiles("tandem_sequencer_block_build_seconds"), unit="s"),
        panel("Attestation collection", quantiles("tandem_sequencer_attestation_collection_seconds"), unit="s",
              description="From gossiping a checkpoint proposal to quorum (or the deadline)."),
        panel("Pipeline discards", [q(f"sum by (instance) (increase(tandem_sequencer_pipeline_discards_total{I}[{R}]))")],
              description="Pipelined checkpoints built and gossiped that never landed. Alert: TandemPipelineDiscardsRising."),
        panel("Discards by reason (parent mismatch)", [
            q(f"sum by (reason) (increase(tandem_sequencer_pipeline_parent_mismatch_total{I}[{R}]))", "{{reason}}")]),
        panel("Prechecks failed by reason", [
            q(f"sum by (reason) (increase(tandem_sequencer_checkpoint_precheck_failed_total{I}[{R}]))", "{{reason}}")]),
        panel("Checkpoint outcomes", [
            q(f"sum by (result) (increase(tandem_sequencer_checkpoint_outcomes_total{I}[{R}]))", "{{result}}")]),
        panel("Time per sequencer state", [
            q(f"sum by (state) (rate(tandem_sequencer_state_seconds_sum{I}[{R}]))", "{{state}}")], unit="percentunit"),
        panel("Slots filled / missed", [
            q(f"sum(increase(tandem_sequencer_slots_filled_total{I}[{R}]))", "filled"),
            q(f"sum(increase(tandem_sequencer_slots_missed_total{I}[{R}]))", "missed")]),
        panel("Target slot", [q(f"tandem_node_target_slot{I}")]),
    ]),
    "tandem-publisher": ("tandem: publisher", [
        panel("L1 inclusion delay", quantiles("tandem_publisher_l1_inclusion_delay_seconds"), unit="s",
              description="Target slot's start to the L1 block that included the propose."),
        panel("Propose outcomes", [q(f"sum by (outcome) (increase(tandem_publisher_txs_total{I}[{R}]))", "{{outcome}}")]),
        panel("Fee bumps (speed-ups)", [q(f"sum by (kind, result) (increase(tandem_publisher_speed_ups_total{I}[{R}]))", "{{kind}} {{result}}")]),
        panel("Cancels", [q(f"sum by (result) (increase(tandem_publisher_cancels_total{I}[{R}]))", "{{result}}")]),
        panel("Balance runway (days)", [
            q(f"tandem_publisher_balance_runway_checkpoints{I} / on (instance) group_left () (sum by (instance) (rate(tandem_publisher_txs_total{I}[6h])) * 86400)",
              "{{instance}} {{address}}")], unit="d",
              description="Proposes the key pays for at current gas prices over this node's proposes per day (6 h average). Alert: TandemPublisherBalanceRunwayLow (< 1 day)."),
        panel("Balance runway (proposes)", [q(f"tandem_publisher_balance_runway_checkpoints{I}", "{{instance}} {{address}}")]),
        panel("Balance (ETH)", [q(f"tandem_publisher_balance_wei{I} / 1e18", "{{instance}} {{address}}")]),
        panel("Low balance flag", [q(f"tandem_publisher_low_balance{I}", "{{instance}} {{address}}")]),
        panel("Send failures", [q(f"sum by (reason) (increase(tandem_publisher_send_failures_total{I}[{R}]))", "{{reason}}")]),
        panel("Dropped at simulation", [q(f"sum by (reason) (increase(tandem_publisher_dropped_at_simulation_total{I}[{R}]))", "{{reason}}")]),
        panel("Simulation latency", quantiles("tandem_publisher_simulation_seconds", by="method"), unit="s"),
        panel("Effective gas price (gwei)", [q(f"tandem_publisher_effective_gas_price_wei{I} / 1e9")]),
        panel("In flight", [q(f"tandem_publisher_in_flight{I}")]),
    ]),
    "tandem-archiver": ("tandem: archiver", [
        panel("Prunes by kind", [q(f"sum by (kind) (increase(tandem_archiver_prunes_total{I}[{R}]))", "{{kind}}")]),
        panel("Pruned blocks by kind", [q(f"sum by (kind) (increase(tandem_archiver_pruned_blocks_total{I}[{R}]))", "{{kind}}")]),
        panel("L1 sync lag (blocks)", [q(f"tandem_archiver_l1_sync_lag_blocks{I}")]),
        panel("L1 sync lag (time)", [q(f"tandem_archiver_l1_sync_lag_seconds{I}")], unit="s"),
        panel("Write latency", quantiles("tandem_archiver_write_seconds"), unit="s"),
        panel("WAL sync latency", quantiles("tandem_archiver_wal_sync_seconds"), unit="s"),
        panel("L1 checkpoints by outcome", [q(f"sum by (outcome) (increase(tandem_archiver_l1_checkpoints_total{I}[{R}]))", "{{outcome}}")]),
        panel("Blocks added by source", [q(f"sum by (source) (increase(tandem_archiver_blocks_added_total{I}[{R}]))", "{{source}}")]),
        panel("L1 reorgs and sync errors", [
            q(f"sum by (instance) (increase(tandem_archiver_l1_reorgs_total{I}[{R}]))", "reorgs {{instance}}"),
            q(f"sum by (instance) (increase(tandem_archiver_sync_errors_total{I}[{R}]))", "errors {{instance}}")]),
        panel("Write queue depth", [q(f"tandem_archiver_queue_depth{I}")]),
        panel("L1 checkpoints awaiting their body", [q(f"tandem_archiver_l1_checkpoints_awaiting_body{I}")]),
    ]),
    "tandem-p2p": ("tandem: p2p", [
        panel("Gossip messages by topic and result", [
            q(f"sum by (topic, result) (rate(tandem_p2p_gossip_messages_total{I}[{R}]))", "{{topic}} {{result}}")], unit="reqps"),
        panel("Validation latency by topic", quantiles("tandem_p2p_gossip_validation_seconds", by="topic"), unit="s"),
        panel("Receipt to verdict by topic", quantiles("tandem_p2p_gossip_verdict_seconds", by="topic"), unit="s"),
        panel("Peer penalties by action", [q(f"sum by (action) (increase(tandem_p2p_peer_penalties_total{I}[{R}]))", "{{action}}")]),
        panel("Peers removed (bans)", [q(f"sum by (reason) (increase(tandem_p2p_peers_removed_total{I}[{R}]))", "{{reason}}")]),
        panel("Gossip queue depth", [q(f"tandem_p2p_gossip_queue_depth{I}", "{{instance}} {{topic}}")]),
        panel("Handler queue depth", [q(f"tandem_p2p_handler_queue_depth{I}", "{{instance}} {{lane}}")]),
        panel("Queue drops", [
            q(f"sum by (topic) (increase(tandem_p2p_gossip_queue_dropped_total{I}[{R}]))", "gossip {{topic}}"),
            q(f"sum by (lane) (increase(tandem_p2p_handler_dropped_total{I}[{R}]))", "handler {{lane}}")]),
        panel("Peers by direction", [q(f"tandem_p2p_peers_by_direction{I}", "{{instance}} {{direction}}")]),
        panel("Equivocations", [q(f"sum by (topic) (increase(tandem_p2p_equivocations_total{I}[{R}]))", "{{topic}}")],
              description="Alert: TandemEquivocationSeen."),
        panel("Proposal deadline margin (p10)", [
            q(f"histogram_quantile(0.1, sum by (le, topic) (rate(tandem_p2p_proposal_deadline_margin_seconds_bucket{I}[{R}])))", "{{topic}}")], unit="s"),
        panel("Request/response", [
            q(f"sum by (protocol, direction, result) (rate(tandem_p2p_reqresp_requests_total{I}[{R}]))", "{{protocol}} {{direction}} {{result}}")], unit="reqps"),
        panel("Rate-limited messages", [q(f"sum by (topic) (increase(tandem_p2p_gossip_rate_limited_total{I}[{R}]))", "{{topic}}")]),
    ]),
    "tandem-validator": ("tandem: validator", [
        panel("Re-execution results", [q(f"sum by (verdict) (increase(tandem_state_reexecutions_total{I}[{R}]))", "{{verdict}}")],
              description="Alert: TandemReexecutionFailures (any verdict but valid)."),
        panel("Re-execution time", quantiles("tandem_state_reexecution_seconds"), unit="s"),
        panel("Attestations", [q(f"sum by (result) (increase(tandem_validator_attestations_total{I}[{R}]))", "{{result}}")]),
        panel("Signatures by duty", [q(f"sum by (duty, origin) (increase(tandem_validator_signatures_total{I}[{R}]))", "{{duty}} {{origin}}")]),
        panel("Checkpoint validation", [q(f"sum by (result) (increase(tandem_validator_checkpoint_validation_total{I}[{R}]))", "{{result}}")]),
        panel("Block proposals", [q(f"sum by (result) (increase(tandem_validator_block_proposals_total{I}[{R}]))", "{{result}}")]),
        panel("Block proposal handling", quantiles("tandem_validator_block_proposal_seconds"), unit="s"),
        panel("Proposer faults", [q(f"sum by (proposal, reason) (increase(tandem_validator_proposer_faults_total{I}[{R}]))", "{{proposal}} {{reason}}")]),
        panel("Slashing-protection refusals", [q(f"sum by (duty) (increase(tandem_validator_slashing_refusals_total{I}[{R}]))", "{{duty}}")]),
        panel("Follower blocks applied", [q(f"sum by (source) (increase(tandem_validator_follower_blocks_applied_total{I}[{R}]))", "{{source}}")]),
        panel("Validator ready", [q(f"tandem_validator_ready{I}")]),
    ]),
}


def variables():
    ds = {"type": "prometheus", "uid": "${datasource}"}
    return {"list": [
        {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source",
         "current": {}, "hide": 0, "refresh": 1},
        {"name": "role", "label": "Role", "type": "query", "datasource": ds,
         "query": {"query": "label_values(tandem_node_info, role)", "refId": "role"},
         "definition": "label_values(tandem_node_info, role)",
         "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2, "sort": 1,
         "current": {"selected": True, "text": ["All"], "value": ["$__all"]}},
        {"name": "instance", "label": "Instance", "type": "query", "datasource": ds,
         "query": {"query": 'label_values(tandem_node_info{role=~"$role"}, instance)', "refId": "instance"},
         "definition": 'label_values(tandem_node_info{role=~"$role"}, instance)',
         "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2, "sort": 1,
         "current": {"selected": True, "text": ["All"], "value": ["$__all"]}},
    ]}


def render(uid, title, panels):
    ds = {"type": "prometheus", "uid": "${datasource}"}
    out = []
    for index, p in enumerate(panels):
        width = 8 if p["kind"] == "stat" else 12
        out.append({
            "id": index + 1,
            "type": p["kind"],
            "title": p["title"],
            "description": p["description"],
            "datasource": ds,
            "gridPos": {"h": 8, "w": width, "x": (index % 2) * 12, "y": (index // 2) * 8},
            "fieldConfig": {"defaults": {"unit": p["unit"]}, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}}
            if p["kind"] == "timeseries" else {},
            "targets": [
                {"refId": chr(ord("A") + n), "datasource": ds, "expr": t["expr"],
                 "legendFormat": t["legend"], "range": True,
                 "instant": p["kind"] == "table", "format": "table" if p["kind"] == "table" else "time_series"}
                for n, t in enumerate(p["targets"])
            ],
        })
    links = [{"title": "tandem", "type": "dashboards", "tags": ["tandem"], "asDropdown": True,
              "includeVars": True, "keepTime": True}]
    return {
        "uid": uid, "title": title, "tags": ["tandem"], "editable": True, "schemaVersion": 39,
        "version": 1, "refresh": "10s", "time": {"from": "now-1h", "to": "now"},
        "timezone": "utc", "templating": variables(), "links": links, "panels": out,
        "annotations": {"list": []},
    }


if __name__ == "__main__":
    import sys
    if len(sys.argv) == 3 and sys.argv[1] == "--out":
        OUT = sys.argv[2]
    for uid, (title, panels) in DASHBOARDS.items():
        path = os.path.join(OUT, uid + ".json")
        with open(path, "w") as f:
            json.dump(render(uid, title, panels), f, indent=2)
            f.write("\n")
        print("wrote", path)
