//! The override module's slot constants against the compiled contract's storage layout.

use serde_json::Value;
use tandem_l1::overrides::{
    ARCHIVES_SLOT, LOG_FEE_HEADER_OFFSET, LOG_HEADER_HASH_OFFSET, LOG_SLOT_OFFSET, LOGS_SLOT,
    TIPS_SLOT,
};

const ARTIFACT: &str = include_str!("../contracts/out/Rollup.json");

fn slot_of(layout: &Value, label: &str) -> (u64, Value) {
    let entry = layout["storage"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["label"] == label)
        .unwrap_or_else(|| panic!("no storage variable {label}"));
    (
        entry["slot"].as_str().unwrap().parse().unwrap(),
        entry["type"].clone(),
    )
}

#[test]
fn override_slots_match_the_compiled_layout() {
    let artifact: Value = serde_json::from_str(ARTIFACT).unwrap();
    let layout = &artifact["storageLayout"];
    assert_eq!(slot_of(layout, "tips").0, TIPS_SLOT);
    assert_eq!(slot_of(layout, "archives").0, ARCHIVES_SLOT);
    let (logs_slot, logs_type) = slot_of(layout, "logs");
    assert_eq!(logs_slot, LOGS_SLOT);

    // logs is mapping(uint256 => CheckpointLog): check the struct's member offsets.
    let value_type = layout["types"][logs_type.as_str().unwrap()]["value"]
        .as_str()
        .unwrap()
        .to_string();
    let members = layout["types"][value_type.as_str()]["members"]
        .as_array()
        .unwrap();
    let offset = |label: &str| -> u64 {
        let member = members.iter().find(|m| m["label"] == label).unwrap();
        assert_eq!(member["offset"], 0, "{label} must start its own word");
        member["slot"].as_str().unwrap().parse().unwrap()
    };
    assert_eq!(offset("headerHash"), LOG_HEADER_HASH_OFFSET);
    assert_eq!(offset("slot"), LOG_SLOT_OFFSET);
    assert_eq!(offset("feeHeader"), LOG_FEE_HEADER_OFFSET);
}
