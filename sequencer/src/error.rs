//! The sequencer's one error type.

use tandem_archiver::ArchiverError;
use tandem_p2p::P2pError;
use tandem_publisher::PublisherError;
use tandem_state::StateError;
use tandem_validator::ValidatorError;

/// What went wrong in the sequencer.
#[derive(Debug, thiserror::Error)]
pub enum SequencerError {
    /// A setting is out of range.
    #[error("sequencer.{field}: {problem}")]
    Config {
        /// The setting.
        field: &'static str,
        /// Why it is refused.
        problem: &'static str,
    },
    /// A deployment (protocol) parameter leaves the sequencer nothing to build: no
    /// `[sequencer]` setting can fix it.
    #[error("deployment parameter {param} = {value}: {problem}")]
    Deployment {
        /// The parameter.
        param: &'static str,
        /// Its value.
        value: u64,
        /// Why the sequencer refuses it.
        problem: String,
    },
    /// The sequencer is stopping: a state transition other than to `Stopped` was asked for.
    #[error("the sequencer is stopping")]
    Interrupted,
    /// The archiver refused or failed.
    #[error("archiver: {0}")]
    Archiver(Box<ArchiverError>),
    /// The world state failed (forking, building).
    #[error("world state: {0}")]
    State(Box<StateError>),
    /// The state service, signer or another validator part failed.
    #[error("validator: {0}")]
    Validator(Box<ValidatorError>),
    /// A simulation or a submission failed.
    #[error("publisher: {0}")]
    Publisher(Box<PublisherError>),
    /// p2p failed.
    #[error("p2p: {0}")]
    P2p(Box<P2pError>),
    /// Gossiping our own message failed.
    #[error("gossip: {0}")]
    Publish(Box<tandem_p2p::PublishError>),
    /// The checkpoint's blocks do not make a header (mana or fees overflow).
    #[error("the checkpoint's blocks do not make a header (mana or fees overflow)")]
    Header,
    /// The signer returned the checkpoint proposal without the last block it was given.
    #[error("the signer returned the checkpoint proposal without its last block")]
    LastBlockDropped,
    /// The assembled body is over the protocol's cap.
    #[error("checkpoint body of {len} bytes is over the cap of {cap}")]
    BodyTooLarge {
        /// Body length.
        len: usize,
        /// The cap.
        cap: usize,
    },
    /// The attestation bundle could not be packed.
    #[error("propose bundle: {0}")]
    Bundle(Box<tandem_l1::BundleError>),
    /// A background task panicked or was cancelled.
    #[error("sequencer task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Foreign errors are boxed: the enum stays small on every `Result` path.
macro_rules! boxed_from {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        $(impl From<$ty> for SequencerError {
            fn from(err: $ty) -> Self {
                Self::$variant(Box::new(err))
            }
        })*
    };
}

boxed_from!(
    Archiver(ArchiverError),
    State(StateError),
    Validator(ValidatorError),
    Publisher(PublisherError),
    P2p(P2pError),
    Publish(tandem_p2p::PublishError),
    Bundle(tandem_l1::BundleError),
);

/// Result of the sequencer.
pub type SequencerResult<T> = Result<T, SequencerError>;
