//! What the nodes say: tips, checkpoints and blocks over JSON-RPC, and `/metrics`.

use std::time::Duration;

use eyre::{bail, eyre};
use serde_json::{Value, json};

use crate::{
    client::{self, Metrics, quantity},
    network::Network,
    process::tandem_bin,
};

/// A checkpoint as `tandem_getCheckpoint` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Its number.
    pub number: u64,
    /// `proposed`, `checkpointed` or `finalized`.
    pub status: String,
    /// Its header hash.
    pub header_hash: String,
    /// Its slot (the target slot).
    pub slot: u64,
    /// First block.
    pub start_block: u64,
    /// Blocks in it.
    pub block_count: u64,
    /// The L1 block it landed in (on L1 only).
    pub l1_block: Option<u64>,
    /// That L1 block's timestamp.
    pub l1_timestamp: Option<u64>,
    /// Attestations on L1.
    pub attestations: Option<u64>,
}

impl Checkpoint {
    fn from_json(value: &Value) -> Result<Self, String> {
        let opt = |key: &str| -> Result<Option<u64>, String> {
            match value.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => quantity(v).map(Some),
            }
        };
        Ok(Self {
            number: quantity(&value["number"])?,
            status: value["status"].as_str().unwrap_or_default().to_string(),
            header_hash: value["headerHash"].as_str().unwrap_or_default().to_string(),
            slot: quantity(&value["slot"])?,
            start_block: quantity(&value["startBlock"])?,
            block_count: quantity(&value["blockCount"])?,
            l1_block: opt("l1Block")?,
            l1_timestamp: opt("l1Timestamp")?,
            attestations: opt("attestations")?,
        })
    }

    /// Whether it is on L1.
    pub fn landed(&self) -> bool {
        self.status == "checkpointed" || self.status == "finalized"
    }
}

/// One node's tips (block numbers and hashes, checkpoint numbers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tips {
    /// Proposed block number and hash.
    pub proposed: (u64, String),
    /// Proposed checkpoint number.
    pub proposed_checkpoint: u64,
    /// Checkpointed block number and hash.
    pub checkpointed_block: (u64, String),
    /// Checkpointed checkpoint number and hash.
    pub checkpointed: (u64, String),
}

impl Tips {
    fn from_json(value: &Value) -> Result<Self, String> {
        let id = |tip: &str, part: &str| -> Result<(u64, String), String> {
            Ok((
                quantity(&value[tip][part]["number"])?,
                value[tip][part]["hash"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            ))
        };
        Ok(Self {
            proposed: id("proposed", "block")?,
            proposed_checkpoint: id("proposedCheckpoint", "checkpoint")?.0,
            checkpointed_block: id("checkpointed", "block")?,
            checkpointed: id("checkpointed", "checkpoint")?,
        })
    }
}

impl Network {
    /// A JSON-RPC call to node `i`.
    pub fn rpc(&self, i: usize, method: &str, params: Value) -> eyre::Result<Value> {
        client::rpc(&self.nodes[i].rpc_url, method, params)
            .map_err(|err| eyre!("{}: {err}", self.nodes[i].name))
    }

    /// Node `i`'s tips.
    pub fn tips(&self, i: usize) -> eyre::Result<Tips> {
        let value = self.rpc(i, "tandem_getL2Tips", json!([]))?;
        Tips::from_json(&value).map_err(|err| eyre!("{}: tips {value}: {err}", self.nodes[i].name))
    }

    /// Checkpoint `number` as node `i` knows it.
    pub fn checkpoint(&self, i: usize, number: u64) -> eyre::Result<Checkpoint> {
        let value = self.rpc(i, "tandem_getCheckpoint", json!([format!("0x{number:x}")]))?;
        Checkpoint::from_json(&value)
            .map_err(|err| eyre!("{}: checkpoint {value}: {err}", self.nodes[i].name))
    }

    /// Every checkpoint on L1 by node `i`'s view, from 1 to its checkpointed tip.
    pub fn landed(&self, i: usize) -> eyre::Result<Vec<Checkpoint>> {
        let tip = self.tips(i)?.checkpointed.0;
        (1..=tip).map(|n| self.checkpoint(i, n)).collect()
    }

    /// Block `number`'s hash on node `i`.
    pub fn block_hash(&self, i: usize, number: u64) -> eyre::Result<String> {
        let value = self.rpc(
            i,
            "tandem_getBlock",
            json!([format!("0x{number:x}"), false]),
        )?;
        value["hash"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| eyre!("block {number}: {value}"))
    }

    /// One scrape of node `i`'s `/metrics`.
    pub fn metrics(&self, i: usize) -> eyre::Result<Metrics> {
        let text = client::http_get(&self.nodes[i].metrics_url, "/metrics")
            .map_err(|err| eyre!("{}: /metrics: {err}", self.nodes[i].name))?;
        Metrics::parse(&text).map_err(|err| eyre!("{}: /metrics: {err}", self.nodes[i].name))
    }

    /// The timetable's most blocks per checkpoint for the deployed mode (`tandem timetable
    /// --config <node.toml> --json`).
    pub fn max_blocks_per_checkpoint(&self) -> eyre::Result<u64> {
        let info = self.rpc(0, "tandem_nodeInfo", json!([]))?;
        let mode = info["deployment"]["pipeliningMode"]
            .as_str()
            .unwrap_or("pipelined")
            .replace('-', "_");
        let out = std::process::Command::new(tandem_bin())
            .args(["timetable", "--json", "--config"])
            .arg(&self.nodes[0].config)
            .output()?;
        if !out.status.success() {
            bail!("tandem timetable: {}", String::from_utf8_lossy(&out.stderr));
        }
        let table: Value = serde_json::from_slice(&out.stdout)?;
        let key = if mode.contains("non") {
            "non_pipelined"
        } else {
            "pipelined"
        };
        table[key]["max_blocks_per_checkpoint"]
            .as_u64()
            .ok_or_else(|| eyre!("timetable {key}: {table}"))
    }

    /// Whether a checkpoint's L1 block is the first L1 block of its target slot.
    pub fn in_first_l1_block(&self, checkpoint: &Checkpoint) -> bool {
        let start = self.genesis + checkpoint.slot * self.slot_secs;
        checkpoint
            .l1_timestamp
            .is_some_and(|ts| ts >= start && ts < start + self.l1_slot_secs)
    }

    /// Indices of the nodes that run now.
    pub fn running(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].running())
            .collect()
    }

    /// Waits until every running node reports the same checkpointed tip (number and hash) of
    /// at least `min`; returns it.
    pub fn agree(&mut self, min: u64, within: Duration) -> eyre::Result<(u64, String)> {
        let running = self.running();
        crate::wait::until("every node on one checkpointed tip", within, || {
            let views: Vec<(u64, String)> = running
                .iter()
                .map(|i| self.tips(*i).map(|t| t.checkpointed))
                .collect::<eyre::Result<_>>()
                .map_err(|e| e.to_string())?;
            if views.iter().all(|v| v == &views[0]) && views[0].0 >= min {
                Ok(views[0].clone())
            } else {
                Err(format!("{views:?}"))
            }
        })
    }

    /// Waits until every running node holds the same block at the lowest proposed tip among
    /// them (their proposed chains have converged); returns that block number.
    pub fn agree_proposed(&mut self, within: Duration) -> eyre::Result<u64> {
        let running = self.running();
        crate::wait::until("every node on one proposed chain", within, || {
            let tips: Vec<u64> = running
                .iter()
                .map(|i| self.tips(*i).map(|t| t.proposed.0))
                .collect::<eyre::Result<_>>()
                .map_err(|e| e.to_string())?;
            let low = tips.iter().copied().min().unwrap_or(0);
            let hashes: Vec<String> = running
                .iter()
                .map(|i| self.block_hash(*i, low))
                .collect::<eyre::Result<_>>()
                .map_err(|e| e.to_string())?;
            if hashes.iter().all(|h| h == &hashes[0]) {
                Ok(low)
            } else {
                Err(format!("block {low}: {hashes:?} (tips {tips:?})"))
            }
        })
    }
}
