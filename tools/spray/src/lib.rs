//! A hostile libp2p peer: it joins tandem's gossip like a node (same transport, noise, yamux,
//! gossipsub instances and topics, from `tandem-p2p`), subscribes to every topic the nodes
//! serve, sprays each with messages that fail validation in every way ([`Category`]), then
//! watches how each node reacts: when it closed the connection and whether it refuses the
//! sprayer when it comes back.
//!
//! Used by `scripts/e2e.sh` so that the penalty, ban and invalid-message series exist, and by
//! this crate's tests against a real `tandem-p2p` node.

mod messages;
mod swarm;

pub use messages::{Category, LiveSlot, Target};
pub use swarm::{NodeReport, Report, SprayConfig, SprayError, spray};
