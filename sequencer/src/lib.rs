//! The sequencer actor: the slot loop, the checkpoint proposal job that builds blocks for the target
//! slot, and the background pipeline that collects attestations and hands the checkpoint to the
//! publisher once its parent is on L1.
