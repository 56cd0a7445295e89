//! The scenario DSL: steps that change the network (time passing, crashes, restarts, a silent
//! publisher, L1 reorgs, link faults).

use std::time::Duration;

use eyre::{WrapErr, bail, eyre};
use serde_json::json;

use crate::{
    client,
    network::{Network, unix_ms},
    process::tool,
    proxy::Faults,
    wait,
};

impl Network {
    /// Lets `n` slots pass (by the wall clock against the rollup's genesis); fails if a node
    /// that should run exits meanwhile. Returns the slot reached.
    pub fn run_slots(&mut self, n: u64) -> eyre::Result<u64> {
        let target = self.slot_now() + n;
        self.wait_for_slot(target)?;
        Ok(target)
    }

    /// Waits until `slot` has begun.
    pub fn wait_for_slot(&mut self, slot: u64) -> eyre::Result<()> {
        self.wait_for_slot_with(slot, |_| Ok(()))
    }

    /// Waits until `slot` has begun, calling `sample` at every poll (to watch gauges or
    /// timestamps of events while time passes).
    pub fn wait_for_slot_with(
        &mut self,
        slot: u64,
        mut sample: impl FnMut(&Network) -> eyre::Result<()>,
    ) -> eyre::Result<()> {
        let at = self.slot_start_ms(slot);
        let within = Duration::from_millis(at.saturating_sub(unix_ms()) + 5_000);
        let deadline = std::time::Instant::now() + within;
        while unix_ms() < at {
            self.check_alive()?;
            sample(self)?;
            if std::time::Instant::now() > deadline {
                bail!("slot {slot} did not begin within {within:?}");
            }
            std::thread::sleep(wait::POLL);
        }
        Ok(())
    }

    /// Fails naming a node that should run but exited.
    pub fn check_alive(&mut self) -> eyre::Result<()> {
        for node in &mut self.nodes {
            if let Some(proc) = node.proc.as_mut()
                && let Some(status) = proc.exited()
            {
                bail!(
                    "{} exited by itself with {status} (log {})",
                    node.name,
                    node.log.display()
                );
            }
        }
        Ok(())
    }

    /// SIGKILL node `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut proc) = self.nodes[i].proc.take() {
            proc.kill();
        }
    }

    /// SIGTERM node `i` and wait for its exit (SIGKILL after 15 s).
    pub fn stop(&mut self, i: usize) {
        if let Some(mut proc) = self.nodes[i].proc.take() {
            proc.stop(Duration::from_secs(15));
        }
    }

    /// Starts node `i` again (with its current environment) and waits until it is ready.
    pub fn restart(&mut self, i: usize) -> eyre::Result<()> {
        self.launch(i)?;
        self.wait_ready(i, Duration::from_secs(90))
    }

    /// Starts node `i` without waiting for readiness.
    pub fn start_node(&mut self, i: usize) -> eyre::Result<()> {
        self.launch(i)
    }

    /// Restarts validator `i` so that it never submits the checkpoints of `slots` (the
    /// sequencer's `skip_publishing_slots` test hook, as `scripts/e2e.sh` uses it).
    pub fn silence_publisher(&mut self, i: usize, slots: &[u64]) -> eyre::Result<()> {
        if !self.nodes[i].is_validator() {
            bail!("{} is no validator", self.nodes[i].name);
        }
        self.stop(i);
        let list: Vec<String> = slots.iter().map(u64::to_string).collect();
        let node = &mut self.nodes[i];
        node.env
            .retain(|(k, _)| k != "TANDEM__SEQUENCER__SKIP_PUBLISHING_SLOTS");
        node.env.push((
            "TANDEM__SEQUENCER__SKIP_PUBLISHING_SLOTS".into(),
            format!("[{}]", list.join(",")),
        ));
        self.restart(i)
    }

    /// Reorganises L1: anvil drops its last `depth` blocks and mines `depth` new empty ones
    /// (`anvil_reorg`); the dropped blocks' txs go back to anvil's pool.
    pub fn reorg_l1(&self, depth: u64) -> eyre::Result<()> {
        client::rpc(&self.l1_url, "anvil_reorg", json!([depth, []]))
            .map_err(|err| eyre!("anvil_reorg {depth}: {err}"))?;
        Ok(())
    }

    /// The L1 head block number.
    pub fn l1_head(&self) -> eyre::Result<u64> {
        let head = client::rpc(&self.l1_url, "eth_blockNumber", json!([])).map_err(|e| eyre!(e))?;
        client::quantity(&head).map_err(|e| eyre!(e))
    }

    /// Cuts every link between nodes of different groups (both directions): open connections
    /// are reset, new ones refused. Nodes in no group keep all their links.
    pub fn partition(&self, groups: &[&[usize]]) {
        let group_of = |node: usize| groups.iter().position(|g| g.contains(&node));
        for (from, to) in self.mesh.pairs() {
            if let (Some(a), Some(b)) = (group_of(from), group_of(to))
                && a != b
            {
                let faults = self.mesh.faults(from, to);
                self.mesh.set(
                    from,
                    to,
                    Faults {
                        cut: true,
                        ..faults
                    },
                );
            }
        }
    }

    /// Ends every partition (delays stay).
    pub fn heal(&self) {
        for (from, to) in self.mesh.pairs() {
            let faults = self.mesh.faults(from, to);
            self.mesh.set(
                from,
                to,
                Faults {
                    cut: false,
                    ..faults
                },
            );
        }
    }

    /// Every link, both directions: `delay` ± `jitter` one way, and `loss` (0..=1) of chunks
    /// stalled for a retransmission timeout.
    pub fn delay_links(&self, delay: Duration, jitter: Duration, loss: f64) {
        for (from, to) in self.mesh.pairs() {
            let cut = self.mesh.faults(from, to).cut;
            self.mesh.set(
                from,
                to,
                Faults {
                    delay,
                    jitter,
                    loss,
                    cut,
                },
            );
        }
    }

    /// The validator the rollup contract names as proposer of `slot` (`getProposerForSlot`).
    pub fn proposer_of(&self, slot: u64) -> eyre::Result<usize> {
        let out = std::process::Command::new(tool("cast"))
            .args([
                "call",
                &self.rollup,
                "getProposerForSlot(uint256)(address)",
                &slot.to_string(),
                "--rpc-url",
                &self.l1_url,
            ])
            .output()
            .wrap_err("running cast (from .tools/bin; or set TANDEM_CAST)")?;
        if !out.status.success() {
            bail!(
                "getProposerForSlot({slot}): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let address = String::from_utf8_lossy(&out.stdout).trim().to_lowercase();
        self.nodes
            .iter()
            .position(|n| n.validator.as_deref() == Some(address.as_str()))
            .ok_or_else(|| eyre!("proposer {address} of slot {slot} is none of our validators"))
    }
}
