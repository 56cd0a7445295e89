// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {Attestations} from "./Attestations.sol";
import {CommitteeSampling, EpochSnapshots} from "./Committee.sol";
import {FeeMath} from "./FeeMath.sol";

/// @title tandem Rollup
/// @notice Accepts one checkpoint per L2 slot from the slot's proposer, with attestations from
/// more than 2/3 of the epoch's committee, and keeps the archive root and fee header of every
/// checkpoint. Nodes sync the chain from `CheckpointProposed` events and the `propose` calldata.
///
/// Storage layout (plain, from slot 0; `l1/src/overrides.rs` computes the same slots and a test
/// checks them against solc's `storageLayout` output):
///   slot 0  tips                   checkpointed number << 128 | proven number (proofs: future work)
///   slot 1  archives[n]            keccak256(abi.encode(n, 1)): archive root after checkpoint n
///   slot 2  logs[n]                keccak256(abi.encode(n, 2)) + 0 headerHash, + 1 slot, + 2 feeHeader
///   slot 3  validators             registered validator addresses, append-only
///   slot 4  snapshots              per-epoch (epoch, validator count, seed) history
///   slot 5  owner
///   slot 6  registered             validator => registered (duplicate check in O(1))
///
/// Fee header (one word, see FeeMath.sol): the min fee per mana of checkpoint K is a pure
/// function of K-1's fee header, so a simulation of K before K-1 lands must override K-1's word.
///
/// Committee and proposer: the committee of epoch e is sampled from the first `count` validators
/// with `seed`, both taken from the latest snapshot at or before epoch e - 2 (SEED_LAG_EPOCHS), so
/// it is fixed from the start of epoch e - 1 on and no proposal of epoch e - 1 or later can bias
/// it. A snapshot is taken by the first `propose` (or validator registration) of each epoch; its
/// seed chains the previous seed with `block.prevrandao`. The proposer of slot s is
/// committee[keccak256(abi.encode(epoch, s, seed)) % committee.length]. An empty committee
/// means anyone may propose without attestations (bootstrap only).
///
/// Sampling is unbiased and costs O(committee size), whatever the number of validators (see
/// Committee.sol).
///
/// Data availability: `propose` must be a direct call from an externally owned account, so the
/// body is always the input of the tx that emitted `CheckpointProposed` (full nodes decode it
/// from there). The body is capped at MAX_CHECKPOINT_BODY_BYTES, which the constructor only
/// accepts if a `propose` tx with a full body and a quorum of attestations fits what public
/// mempools accept (MEMPOOL_TX_SIZE_LIMIT); `RollupParams::validate` applies the same rule.
contract Rollup {
    // ---------------------------------------------------------------------------------------
    // Types
    // ---------------------------------------------------------------------------------------

    /// @notice Must match `CheckpointHeader` in `proto/src/checkpoint.rs` field for field.
    struct CheckpointHeader {
        bytes32 lastArchiveRoot;
        bytes32 blockHeadersHash;
        bytes32 bodyHash;
        uint64 slot;
        uint64 timestamp;
        address coinbase;
        address feeRecipient;
        uint128 feePerMana;
        uint64 totalManaUsed;
        uint128 accumulatedFees;
    }

    struct ProposeArgs {
        uint256 checkpointNumber;
        CheckpointHeader header;
        bytes32 archive;
        int256 feeAssetPriceModifier;
    }

    /// @notice An Ethereum signature `(v, r, s)`, v in {27, 28}.
    struct Signature {
        uint8 v;
        bytes32 r;
        bytes32 s;
    }

    struct CheckpointLog {
        bytes32 headerHash;
        uint256 slot;
        uint256 feeHeader;
    }

    struct Config {
        uint256 genesisTime;
        uint256 slotDuration;
        uint256 l1SlotDuration;
        uint256 epochDuration;
        uint256 committeeSize;
        uint256 manaTarget;
        uint256 manaLimit;
        uint256 minFeePerMana;
        uint256 feeUpdateFraction;
        uint256 initialEthPerFeeAsset;
        uint256 l2ChainId;
        bytes32 genesisArchive;
        /// D, in milliseconds: blocks are built in sub-slots of this length.
        uint256 blockDurationMs;
        /// R, in milliseconds: time validators have to re-execute the last block.
        uint256 lastBlockReexecutionBudgetMs;
        /// MODE_PIPELINED or MODE_NON_PIPELINED.
        uint256 pipeliningMode;
        /// Largest checkpoint body `propose` accepts, in bytes.
        uint256 maxCheckpointBodyBytes;
        /// Protocol version carried in every block header.
        uint256 rollupVersion;
    }

    // ---------------------------------------------------------------------------------------
    // Errors (decoded by `l1/src/errors.rs`)
    // ---------------------------------------------------------------------------------------

    error InvalidCheckpointNumber(uint256 expected, uint256 got);
    error InvalidArchive(bytes32 expected, bytes32 got);
    error InvalidSlot(uint256 expected, uint256 got);
    error SlotAlreadyInChain(uint256 parentSlot, uint256 slot);
    error InvalidTimestamp(uint256 expected, uint256 got);
    error InvalidCoinbase();
    error ManaLimitExceeded(uint256 limit, uint256 used);
    error InvalidManaMinFee(uint256 expected, uint256 got);
    error InvalidFeeAssetPriceModifier(int256 modifier_);
    error InvalidBodyHash(bytes32 expected, bytes32 got);
    error InvalidProposer(address expected, address got);
    error InvalidSignature();
    error InvalidSignerBitmap(uint256 committeeSize);
    error AttestationCountMismatch(uint256 signers, uint256 signatures);
    error InvalidAttestation(uint256 committeeIndex, address expected, address got);
    error InsufficientAttestations(uint256 needed, uint256 got);
    error NotOwner();
    error InvalidConfig(string field);
    error InvalidValidator(address validator);
    error BeforeGenesis(uint256 timestamp);
    error CheckpointNotFound(uint256 checkpointNumber);
    error NotDirectCall(address sender, address origin);
    error BodyTooLarge(uint256 size, uint256 limit);

    // ---------------------------------------------------------------------------------------
    // Events
    // ---------------------------------------------------------------------------------------

    /// @notice Carries the whole consensus payload (header, archive, fee modifier), so a node
    /// learns what landed even if it cannot get the body; the body and signatures are in the
    /// calldata of the emitting tx (always a direct `propose` call).
    event CheckpointProposed(
        uint256 indexed checkpointNumber,
        bytes32 indexed archive,
        bytes32 headerHash,
        CheckpointHeader header,
        int256 feeAssetPriceModifier
    );
    event ValidatorsAdded(uint256 count);

    // ---------------------------------------------------------------------------------------
    // Constants and configuration
    // ---------------------------------------------------------------------------------------

    bytes32 public constant CHECKPOINT_PROPOSAL_TAG = keccak256("tandem.checkpoint_proposal.v1");
    bytes32 public constant CHECKPOINT_ATTESTATION_TAG = keccak256("tandem.checkpoint_attestation.v1");
    uint256 public constant SEED_LAG_EPOCHS = 2;
    uint256 public constant MAX_COMMITTEE_SIZE = 256;
    uint256 public constant MAX_FEE_ASSET_PRICE_MODIFIER_BPS = 100;
    uint256 public constant PRICE_PRECISION = FeeMath.PRICE_PRECISION;
    uint256 public constant MIN_ETH_PER_FEE_ASSET = FeeMath.MIN_ETH_PER_FEE_ASSET;
    uint256 public constant MAX_ETH_PER_FEE_ASSET = FeeMath.MAX_ETH_PER_FEE_ASSET;
    uint256 public constant MAX_FEE_EXPONENT = FeeMath.MAX_FEE_EXPONENT;
    /// Checkpoints are built during the slot before their target.
    uint256 public constant MODE_PIPELINED = 1;
    /// Checkpoints are built, attested and published inside their target slot.
    uint256 public constant MODE_NON_PIPELINED = 2;
    /// Largest tx public mempools accept (geth's txMaxSize, 128 KiB); `propose` with a full
    /// body must fit in it. Must match `MEMPOOL_TX_SIZE_LIMIT` in `l1/src/propose.rs`.
    uint256 public constant MEMPOOL_TX_SIZE_LIMIT = 131072;
    /// Room kept for the tx envelope around the calldata (nonce, fees, signature, ...). Must
    /// match `TX_ENVELOPE_BYTES` in `l1/src/propose.rs`.
    uint256 public constant TX_ENVELOPE_BYTES = 256;

    uint256 public immutable GENESIS_TIME;
    uint256 public immutable SLOT_DURATION;
    uint256 public immutable L1_SLOT_DURATION;
    uint256 public immutable EPOCH_DURATION;
    uint256 public immutable COMMITTEE_SIZE;
    uint256 public immutable MANA_TARGET;
    uint256 public immutable MANA_LIMIT;
    uint256 public immutable MIN_FEE_PER_MANA;
    uint256 public immutable FEE_UPDATE_FRACTION;
    uint256 public immutable L2_CHAIN_ID;
    uint256 public immutable BLOCK_DURATION_MS;
    uint256 public immutable LAST_BLOCK_REEXECUTION_BUDGET_MS;
    uint256 public immutable PIPELINING_MODE;
    uint256 public immutable MAX_CHECKPOINT_BODY_BYTES;
    uint256 public immutable ROLLUP_VERSION;

    // ---------------------------------------------------------------------------------------
    // Storage (layout documented above; do not reorder)
    // ---------------------------------------------------------------------------------------

    uint256 internal tips;
    mapping(uint256 => bytes32) internal archives;
    mapping(uint256 => CheckpointLog) internal logs;
    address[] internal validators;
    EpochSnapshots.Snapshot[] internal snapshots;
    address public owner;
    mapping(address => bool) internal registered;

    constructor(Config memory config, address owner_, address[] memory initialValidators) {
        if (config.slotDuration == 0 || config.l1SlotDuration == 0) revert InvalidConfig("slotDuration");
        if (config.slotDuration % config.l1SlotDuration != 0) revert InvalidConfig("slotDuration");
        if (config.epochDuration == 0) revert InvalidConfig("epochDuration");
        if (config.committeeSize == 0 || config.committeeSize > MAX_COMMITTEE_SIZE) {
            revert InvalidConfig("committeeSize");
        }
        if (config.manaTarget == 0 || config.manaLimit < config.manaTarget || config.manaLimit > type(uint64).max) {
            revert InvalidConfig("manaLimit");
        }
        if (config.minFeePerMana == 0 || config.minFeePerMana > type(uint64).max) {
            revert InvalidConfig("minFeePerMana");
        }
        if (config.feeUpdateFraction == 0 || config.feeUpdateFraction > type(uint64).max) {
            revert InvalidConfig("feeUpdateFraction");
        }
        if (
            config.initialEthPerFeeAsset < MIN_ETH_PER_FEE_ASSET
                || config.initialEthPerFeeAsset > MAX_ETH_PER_FEE_ASSET
        ) revert InvalidConfig("initialEthPerFeeAsset");
        uint256 slotMs = config.slotDuration * 1000;
        if (config.blockDurationMs == 0 || config.blockDurationMs >= slotMs) revert InvalidConfig("blockDurationMs");
        if (config.lastBlockReexecutionBudgetMs == 0 || config.lastBlockReexecutionBudgetMs >= slotMs) {
            revert InvalidConfig("lastBlockReexecutionBudgetMs");
        }
        if (config.pipeliningMode != MODE_PIPELINED && config.pipeliningMode != MODE_NON_PIPELINED) {
            revert InvalidConfig("pipeliningMode");
        }
        if (
            config.maxCheckpointBodyBytes == 0
                || proposeCalldataLength(quorum(config.committeeSize), config.maxCheckpointBodyBytes)
                    + TX_ENVELOPE_BYTES > MEMPOOL_TX_SIZE_LIMIT
        ) revert InvalidConfig("maxCheckpointBodyBytes");
        if (config.rollupVersion > type(uint32).max) revert InvalidConfig("rollupVersion");
        if (config.l2ChainId == 0 || config.l2ChainId > type(uint64).max) revert InvalidConfig("l2ChainId");

        GENESIS_TIME = config.genesisTime;
        SLOT_DURATION = config.slotDuration;
        L1_SLOT_DURATION = config.l1SlotDuration;
        EPOCH_DURATION = config.epochDuration;
        COMMITTEE_SIZE = config.committeeSize;
        MANA_TARGET = config.manaTarget;
        MANA_LIMIT = config.manaLimit;
        MIN_FEE_PER_MANA = config.minFeePerMana;
        FEE_UPDATE_FRACTION = config.feeUpdateFraction;
        L2_CHAIN_ID = config.l2ChainId;
        BLOCK_DURATION_MS = config.blockDurationMs;
        LAST_BLOCK_REEXECUTION_BUDGET_MS = config.lastBlockReexecutionBudgetMs;
        PIPELINING_MODE = config.pipeliningMode;
        MAX_CHECKPOINT_BODY_BYTES = config.maxCheckpointBodyBytes;
        ROLLUP_VERSION = config.rollupVersion;

        owner = owner_;
        archives[0] = config.genesisArchive;
        logs[0] = CheckpointLog({headerHash: bytes32(0), slot: 0, feeHeader: FeeMath.pack(0, 0, config.initialEthPerFeeAsset)});
        _addValidators(initialValidators);
        snapshots.push(
            EpochSnapshots.Snapshot({
                epoch: 0,
                validatorCount: uint64(validators.length),
                seed: uint128(uint256(keccak256(abi.encode(block.prevrandao, address(this)))))
            })
        );
    }

    // ---------------------------------------------------------------------------------------
    // Propose
    // ---------------------------------------------------------------------------------------

    /// @notice Appends checkpoint `args.checkpointNumber` (= tip + 1).
    /// @param attestations signatures of the committee members whose bit is set in `signers`,
    ///        in committee order.
    /// @param signers bitmap over the epoch committee: bit i set iff committee[i] attested.
    /// @param body all txs of the checkpoint (see `encode_checkpoint_body`); only its size and
    ///        hash are checked here, full nodes decode it from calldata.
    /// @dev Only a direct call from an externally owned account: a contract (or an EIP-7702
    ///      delegated account, whose code is its delegation designator) could relay the call
    ///      inside another tx's input, where full nodes would not find the body.
    function propose(
        ProposeArgs calldata args,
        Signature calldata proposerSignature,
        Signature[] calldata attestations,
        uint256 signers,
        bytes calldata body
    ) external {
        if (msg.sender != tx.origin || msg.sender.code.length != 0) revert NotDirectCall(msg.sender, tx.origin);
        uint256 number = (tips >> 128) + 1;
        (bytes32 headerHash, uint256 feeHeader) = _checkHeaderAndFees(args, number, body, block.timestamp);
        _snapshotEpoch();
        _checkSignatures(args, headerHash, proposerSignature, attestations, signers);

        tips = (number << 128) | uint128(tips);
        archives[number] = args.archive;
        logs[number] = CheckpointLog({headerHash: headerHash, slot: args.header.slot, feeHeader: feeHeader});
        emit CheckpointProposed(number, args.archive, headerHash, args.header, args.feeAssetPriceModifier);
    }

    /// @notice Runs every check `propose` makes except the caller and signature checks, as if
    /// mined at `timestamp` on top of the current tip: the sequencer validates its checkpoint
    /// with it (under the simulation plan's overrides) before gossiping it, when no attestation
    /// exists yet. Reverts with the reason it would fail.
    /// @return headerHash the header hash the attestations will sign over.
    /// @return feeHeader the fee header `propose` would store.
    function validateHeader(ProposeArgs calldata args, bytes calldata body, uint256 timestamp)
        external
        view
        returns (bytes32 headerHash, uint256 feeHeader)
    {
        return _checkHeaderAndFees(args, (tips >> 128) + 1, body, timestamp);
    }

    function _checkHeaderAndFees(ProposeArgs calldata args, uint256 number, bytes calldata body, uint256 timestamp)
        internal
        view
        returns (bytes32 headerHash, uint256 feeHeader)
    {
        if (args.checkpointNumber != number) revert InvalidCheckpointNumber(number, args.checkpointNumber);
        if (body.length > MAX_CHECKPOINT_BODY_BYTES) revert BodyTooLarge(body.length, MAX_CHECKPOINT_BODY_BYTES);
        uint256 tip = number - 1;
        CheckpointHeader calldata header = args.header;
        _validateHeader(header, tip, timestamp);
        uint256 parentFeeHeader = logs[tip].feeHeader;
        uint256 minFee = computeManaMinFee(parentFeeHeader);
        if (header.feePerMana != minFee) revert InvalidManaMinFee(minFee, header.feePerMana);
        feeHeader = computeChildFeeHeader(parentFeeHeader, header.totalManaUsed, args.feeAssetPriceModifier);
        if (keccak256(body) != header.bodyHash) revert InvalidBodyHash(header.bodyHash, keccak256(body));
        headerHash = keccak256(abi.encode(header));
    }

    function _checkSignatures(
        ProposeArgs calldata args,
        bytes32 headerHash,
        Signature calldata proposerSignature,
        Signature[] calldata attestations,
        uint256 signers
    ) internal view {
        bytes32 payloadHash = keccak256(abi.encode(args.archive, args.feeAssetPriceModifier, headerHash));
        (address[] memory committee, uint256 seed) = getEpochCommitteeAndSeed(getEpochAt(block.timestamp));
        _verifyProposer(committee, seed, args.header.slot, payloadHash, proposerSignature);
        Attestations.verify(committee, digest(CHECKPOINT_ATTESTATION_TAG, payloadHash), attestations, signers);
    }

    function _validateHeader(CheckpointHeader calldata header, uint256 tip, uint256 timestamp) internal view {
        if (header.lastArchiveRoot != archives[tip]) revert InvalidArchive(archives[tip], header.lastArchiveRoot);
        uint256 currentSlot = getSlotAt(timestamp);
        if (header.slot != currentSlot) revert InvalidSlot(currentSlot, header.slot);
        uint256 parentSlot = logs[tip].slot;
        if (tip != 0 && header.slot <= parentSlot) revert SlotAlreadyInChain(parentSlot, header.slot);
        uint256 slotStart = getSlotStart(header.slot);
        if (header.timestamp != slotStart) revert InvalidTimestamp(slotStart, header.timestamp);
        if (header.coinbase == address(0)) revert InvalidCoinbase();
        if (header.totalManaUsed > MANA_LIMIT) revert ManaLimitExceeded(MANA_LIMIT, header.totalManaUsed);
    }

    function _verifyProposer(
        address[] memory committee,
        uint256 seed,
        uint256 slot,
        bytes32 payloadHash,
        Signature calldata signature
    ) internal view {
        if (committee.length == 0) return;
        address expected = _proposerFrom(committee, seed, getEpochForSlot(slot), slot);
        address got = Attestations.recover(digest(CHECKPOINT_PROPOSAL_TAG, payloadHash), signature);
        if (got != expected) revert InvalidProposer(expected, got);
    }

    /// @notice Smallest number of attestations that is more than 2/3 of `committeeSize`.
    function quorum(uint256 committeeSize) public pure returns (uint256) {
        return Attestations.quorum(committeeSize);
    }

    /// @notice Length of the ABI-encoded `propose` calldata with `attestationCount` signatures
    /// and a body of `bodyLength` bytes: selector, the static head (args 13 words, proposer
    /// signature 3, two offsets and the bitmap), the signature array (length + 3 words each)
    /// and the body (length + padded bytes). Must match `propose_calldata_len` in Rust.
    function proposeCalldataLength(uint256 attestationCount, uint256 bodyLength) public pure returns (uint256) {
        return 4 + (13 + 3 + 3) * 32 + 32 + attestationCount * 96 + 32 + ((bodyLength + 31) / 32) * 32;
    }

    /// @notice The digest a proposer or attester signs: bound to the kind, the L2 chain and this
    /// rollup. Must match `SigningDomain::digest` in `proto/src/signing.rs`.
    function digest(bytes32 tag, bytes32 payloadHash) public view returns (bytes32) {
        return keccak256(abi.encode(tag, L2_CHAIN_ID, address(this), payloadHash));
    }

    // ---------------------------------------------------------------------------------------
    // Fees
    // ---------------------------------------------------------------------------------------

    function packFeeHeader(uint256 manaUsed, uint256 excessMana, uint256 ethPerFeeAsset)
        public
        pure
        returns (uint256)
    {
        return FeeMath.pack(manaUsed, excessMana, ethPerFeeAsset);
    }

    function unpackFeeHeader(uint256 feeHeader)
        public
        pure
        returns (uint256 manaUsed, uint256 excessMana, uint256 ethPerFeeAsset)
    {
        return FeeMath.unpack(feeHeader);
    }

    /// @notice Excess mana of the child of a checkpoint with this fee header.
    function childExcessMana(uint256 parentFeeHeader) public view returns (uint256) {
        return FeeMath.childExcessMana(parentFeeHeader, MANA_TARGET);
    }

    /// @notice Min fee per mana (in fee asset) of the child of a checkpoint with this fee header.
    function computeManaMinFee(uint256 parentFeeHeader) public view returns (uint256) {
        return FeeMath.manaMinFee(parentFeeHeader, MANA_TARGET, MIN_FEE_PER_MANA, FEE_UPDATE_FRACTION);
    }

    /// @notice The fee header stored for a checkpoint using `manaUsed` with this parent.
    function computeChildFeeHeader(uint256 parentFeeHeader, uint256 manaUsed, int256 feeAssetPriceModifier)
        public
        view
        returns (uint256)
    {
        uint256 bound = MAX_FEE_ASSET_PRICE_MODIFIER_BPS;
        if (feeAssetPriceModifier > int256(bound) || feeAssetPriceModifier < -int256(bound)) {
            revert InvalidFeeAssetPriceModifier(feeAssetPriceModifier);
        }
        return FeeMath.pack(
            manaUsed,
            FeeMath.childExcessMana(parentFeeHeader, MANA_TARGET),
            FeeMath.childPrice(parentFeeHeader, feeAssetPriceModifier)
        );
    }

    /// @notice factor * e^(numerator / denominator), approximated by its Taylor series (EIP-4844).
    function fakeExponential(uint256 factor, uint256 numerator, uint256 denominator)
        public
        pure
        returns (uint256)
    {
        return FeeMath.fakeExponential(factor, numerator, denominator);
    }

    // ---------------------------------------------------------------------------------------
    // Committee
    // ---------------------------------------------------------------------------------------

    function addValidators(address[] calldata newValidators) external {
        if (msg.sender != owner) revert NotOwner();
        _addValidators(newValidators);
        _snapshotEpoch();
    }

    function _addValidators(address[] memory newValidators) internal {
        for (uint256 i; i < newValidators.length; ++i) {
            address validator = newValidators[i];
            if (validator == address(0) || registered[validator]) revert InvalidValidator(validator);
            registered[validator] = true;
            validators.push(validator);
        }
        emit ValidatorsAdded(newValidators.length);
    }

    /// @dev Snapshots the validator count (and, once per epoch, a new seed). Lookups use
    /// snapshots at least SEED_LAG_EPOCHS old, which no call can change any more.
    function _snapshotEpoch() internal {
        uint256 epoch = block.timestamp < GENESIS_TIME ? 0 : getEpochAt(block.timestamp);
        EpochSnapshots.record(snapshots, epoch, validators.length, block.prevrandao);
    }

    /// @dev The latest snapshot taken at or before `epoch - SEED_LAG_EPOCHS` (the first one for
    /// the earliest epochs).
    function _snapshotFor(uint256 epoch) internal view returns (EpochSnapshots.Snapshot memory) {
        return EpochSnapshots.latestAt(snapshots, epoch < SEED_LAG_EPOCHS ? 0 : epoch - SEED_LAG_EPOCHS);
    }

    function getEpochSeed(uint256 epoch) public view returns (uint256) {
        return _snapshotFor(epoch).seed;
    }

    /// @notice How many validators (the first ones registered) the committee of `epoch` is
    /// drawn from.
    function getEpochValidatorCount(uint256 epoch) external view returns (uint256) {
        return _snapshotFor(epoch).validatorCount;
    }

    /// @notice The committee of `epoch`: min(COMMITTEE_SIZE, count) distinct validators sampled
    /// uniformly from the first `count` registered ones, in sampling order.
    function getEpochCommittee(uint256 epoch) public view returns (address[] memory committee) {
        (committee,) = getEpochCommitteeAndSeed(epoch);
    }

    /// @notice The committee of `epoch` and the seed its proposers are drawn with, in one call:
    /// the proposer of slot s is committee[keccak256(abi.encode(epoch, s, seed)) % length].
    function getEpochCommitteeAndSeed(uint256 epoch) public view returns (address[] memory committee, uint256 seed) {
        EpochSnapshots.Snapshot memory snapshot = _snapshotFor(epoch);
        seed = snapshot.seed;
        uint256 count = snapshot.validatorCount;
        uint256 size = count < COMMITTEE_SIZE ? count : COMMITTEE_SIZE;
        committee = new address[](size);
        if (size == count) {
            // Everyone is in; order them by the seed too, so positions rotate between epochs.
            uint256 offset = uint256(keccak256(abi.encode(seed, epoch))) % (count == 0 ? 1 : count);
            for (uint256 i; i < size; ++i) committee[i] = validators[(offset + i) % count];
            return (committee, seed);
        }
        uint256[] memory indices =
            CommitteeSampling.sampleIndices(uint256(keccak256(abi.encode(seed, epoch))), count, size);
        for (uint256 i; i < size; ++i) committee[i] = validators[indices[i]];
    }

    /// @dev The proposer of `slot` (of `epoch`) in `committee`, drawn with the epoch's `seed`.
    function _proposerFrom(address[] memory committee, uint256 seed, uint256 epoch, uint256 slot)
        internal
        pure
        returns (address)
    {
        if (committee.length == 0) return address(0);
        return committee[uint256(keccak256(abi.encode(epoch, slot, seed))) % committee.length];
    }

    /// @notice The proposer of the slot containing `ts`; address(0) when anyone may propose.
    function getProposerAt(uint256 ts) public view returns (address) {
        return getProposerForSlot(getSlotAt(ts));
    }

    /// @notice The proposer of `slot`; address(0) when anyone may propose.
    function getProposerForSlot(uint256 slot) public view returns (address) {
        uint256 epoch = getEpochForSlot(slot);
        (address[] memory committee, uint256 seed) = getEpochCommitteeAndSeed(epoch);
        return _proposerFrom(committee, seed, epoch, slot);
    }

    function getValidators() external view returns (address[] memory) {
        return validators;
    }

    // ---------------------------------------------------------------------------------------
    // Views
    // ---------------------------------------------------------------------------------------

    /// @notice Whether `proposer` could propose a checkpoint on top of `archive` at time `ts`.
    /// Reverts with the reason it could not.
    function canProposeAtTime(uint256 ts, bytes32 archive, address proposer)
        external
        view
        returns (uint256 slot, uint256 nextCheckpointNumber)
    {
        uint256 tip = tips >> 128;
        slot = getSlotAt(ts);
        uint256 parentSlot = logs[tip].slot;
        if (tip != 0 && slot <= parentSlot) revert SlotAlreadyInChain(parentSlot, slot);
        if (archive != archives[tip]) revert InvalidArchive(archives[tip], archive);
        address expected = getProposerAt(ts);
        if (expected != address(0) && expected != proposer) revert InvalidProposer(expected, proposer);
        nextCheckpointNumber = tip + 1;
    }

    /// @notice Every deployment constant in one call (what a node checks its `[protocol]`
    /// section against at start).
    function getConfig() external view returns (Config memory config) {
        config = Config({
            genesisTime: GENESIS_TIME,
            slotDuration: SLOT_DURATION,
            l1SlotDuration: L1_SLOT_DURATION,
            epochDuration: EPOCH_DURATION,
            committeeSize: COMMITTEE_SIZE,
            manaTarget: MANA_TARGET,
            manaLimit: MANA_LIMIT,
            minFeePerMana: MIN_FEE_PER_MANA,
            feeUpdateFraction: FEE_UPDATE_FRACTION,
            initialEthPerFeeAsset: 0,
            l2ChainId: L2_CHAIN_ID,
            genesisArchive: archives[0],
            blockDurationMs: BLOCK_DURATION_MS,
            lastBlockReexecutionBudgetMs: LAST_BLOCK_REEXECUTION_BUDGET_MS,
            pipeliningMode: PIPELINING_MODE,
            maxCheckpointBodyBytes: MAX_CHECKPOINT_BODY_BYTES,
            rollupVersion: ROLLUP_VERSION
        });
        (,, config.initialEthPerFeeAsset) = unpackFeeHeader(logs[0].feeHeader);
    }

    function getTips() external view returns (uint256 checkpointed, uint256 proven) {
        checkpointed = tips >> 128;
        proven = uint128(tips);
    }

    function archiveAt(uint256 checkpointNumber) external view returns (bytes32) {
        return archives[checkpointNumber];
    }

    function getCheckpointLog(uint256 checkpointNumber) external view returns (CheckpointLog memory) {
        if (checkpointNumber > tips >> 128) revert CheckpointNotFound(checkpointNumber);
        return logs[checkpointNumber];
    }

    function getFeeHeader(uint256 checkpointNumber)
        external
        view
        returns (uint256 manaUsed, uint256 excessMana, uint256 ethPerFeeAsset)
    {
        return unpackFeeHeader(logs[checkpointNumber].feeHeader);
    }

    /// @notice The min fee per mana the next checkpoint (tip + 1) must carry.
    function getManaMinFee() external view returns (uint256) {
        return computeManaMinFee(logs[tips >> 128].feeHeader);
    }

    function getSlotAt(uint256 ts) public view returns (uint256) {
        if (ts < GENESIS_TIME) revert BeforeGenesis(ts);
        return (ts - GENESIS_TIME) / SLOT_DURATION;
    }

    function getEpochAt(uint256 ts) public view returns (uint256) {
        return getSlotAt(ts) / EPOCH_DURATION;
    }

    function getEpochForSlot(uint256 slot) public view returns (uint256) {
        return slot / EPOCH_DURATION;
    }

    function getSlotStart(uint256 slot) public view returns (uint256) {
        return GENESIS_TIME + slot * SLOT_DURATION;
    }
}
