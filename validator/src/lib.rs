//! Proposal handlers: the all-nodes checkpoint handler (re-execute, validate, then store as a proposed
//! checkpoint), the validator handler that signs attestations, and slashing protection.
