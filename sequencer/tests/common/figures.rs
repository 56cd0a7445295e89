//! The figures of a network run, from the sequencers' events.

use tandem_sequencer::SequencerEvent;

/// The value at fraction `p` of `values` (nearest rank), `None` when empty.
pub fn percentile<T: Copy + Ord>(values: &[T], p: f64) -> Option<T> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied()
}

/// The figures, from the sequencers' events.
#[derive(Debug, Default)]
pub struct Figures {
    /// Blocks of each checkpoint proposed.
    pub blocks: Vec<usize>,
    /// Build start, ms after the build frame opened, of each job.
    pub frame_offsets_ms: Vec<u64>,
    /// Attestation collection, ms, of each checkpoint.
    pub attestation_ms: Vec<u64>,
    /// `(txs, build µs)` of each block.
    pub build_micros: Vec<(usize, u64)>,
    /// Outcomes seen, and how many landed.
    pub outcomes: usize,
    pub landed: usize,
}

impl Figures {
    pub fn record(&mut self, event: &SequencerEvent) {
        match event {
            SequencerEvent::Preparing {
                frame_offset_ms, ..
            } => self.frame_offsets_ms.push(*frame_offset_ms),
            SequencerEvent::BlockProposed {
                txs, build_micros, ..
            } => self.build_micros.push((*txs, *build_micros)),
            SequencerEvent::CheckpointProposed { blocks, .. } => self.blocks.push(*blocks),
            SequencerEvent::AttestationsCollected { elapsed_ms, .. } => {
                self.attestation_ms.push(*elapsed_ms);
            }
            SequencerEvent::CheckpointOutcome { result, .. } => {
                self.outcomes += 1;
                if *result == tandem_sequencer::CheckpointResult::Landed {
                    self.landed += 1;
                }
            }
            _ => {}
        }
    }

    pub fn print(&self, name: &str, max: usize) {
        let at_max = self.blocks.iter().filter(|b| **b == max).count();
        println!("== {name}");
        println!(
            "checkpoints built {}, landed {} of {} finished",
            self.blocks.len(),
            self.landed,
            self.outcomes
        );
        println!(
            "blocks per checkpoint: timetable max {max}; realized {:?}; at max {at_max}/{}; mean {:.2}",
            self.blocks,
            self.blocks.len(),
            self.blocks.iter().sum::<usize>() as f64 / self.blocks.len().max(1) as f64
        );
        println!(
            "build start offset from the frame opening: p50 {:?} ms, p99 {:?} ms",
            percentile(&self.frame_offsets_ms, 0.5),
            percentile(&self.frame_offsets_ms, 0.99)
        );
        println!(
            "attestation collection: p50 {:?} ms, p99 {:?} ms",
            percentile(&self.attestation_ms, 0.5),
            percentile(&self.attestation_ms, 0.99)
        );
    }
}
