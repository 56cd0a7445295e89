//! Real libp2p swarms on 127.0.0.1 with a shared `ManualClock`: gossip and handlers, peering
//! and discovery, req/resp, tx spam.

#[path = "../common/mod.rs"]
mod common;

mod gossip;
mod lanes;
mod peering;
mod reqresp;
mod spam;
