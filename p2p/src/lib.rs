//! Gossip and request/response over libp2p: typed topics, cheap gossip validation, proposal and
//! attestation pools with equivocation detection, peer scoring, and the registry of the all-nodes
//! and validator handlers that receive validated proposals.
