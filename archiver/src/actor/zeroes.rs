//! The archiver's rare-event counters registered at zero when it starts, so their series exist
//! from the first scrape: panels show 0 rather than no data, and `increase()` alerts see the
//! first event (a series born at 1 hides it).

pub(super) fn register_zeroes() {
    metrics::counter!("archiver_sync_errors_total").absolute(0);
    metrics::counter!("archiver_l1_reorgs_total").absolute(0);
}

#[cfg(test)]
mod tests {
    use metrics_util::{
        MetricKind,
        debugging::{DebugValue, DebuggingRecorder},
    };

    #[test]
    fn rare_event_counters_start_at_zero() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, super::register_zeroes);
        let mut counters: Vec<(String, u64)> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter_map(|(key, _, _, value)| match (key.kind(), value) {
                (MetricKind::Counter, DebugValue::Counter(n)) => {
                    Some((key.key().name().to_owned(), n))
                }
                _ => None,
            })
            .collect();
        counters.sort();
        assert_eq!(
            counters,
            [
                ("archiver_l1_reorgs_total".to_owned(), 0),
                ("archiver_sync_errors_total".to_owned(), 0),
            ]
        );
    }
}
