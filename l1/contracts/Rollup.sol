// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

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
/// Fee header (one word): bits 0..63 mana used, 64..127 excess mana, 128..191 fee-asset price
/// (ETH per fee asset, 1e12 = 1.0). The min fee per mana of checkpoint K is a pure function of
/// K-1's fee header: a simulation of K before K-1 lands must override K-1's fee header word.
///
/// Committee and proposer: the committee of epoch e is sampled from the first `count` validators
/// with `seed`, both taken from the latest snapshot at or before epoch e - 2 (SEED_LAG_EPOCHS), so
/// it is fixed from the start of epoch e - 1 on and no proposal of epoch e - 1 or later can bias
/// it. A snapshot is taken by the first `propose` (or validator registration) of each epoch; its
/// seed chains the previous seed with `block.prevrandao`. The proposer of slot s is
/// committee[keccak256(abi.encode(epoch, s, seed)) % committee.length]. An empty committee
/// means anyone may propose without attestations (bootstrap only).
///
/// Sampling is a partial Fisher-Yates shuffle of the indices [0, count): draw i swaps position i
/// with a uniform position in [i, count). Only the swapped positions are remembered, in a small
/// in-memory hash table (at most 2 * committee size entries), so the cost depends on the committee
/// size, not on the number of validators, and every committee of that size is equally likely.
///
/// Data availability: `propose` must be a direct call from an externally owned account, so the
/// body is always the input of the tx that emitted `CheckpointProposed` (full nodes decode it
/// from there). The body is capped at MAX_CHECKPOINT_BODY_BYTES so one L1 tx carries it.
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

    struct EpochSnapshot {
        uint64 epoch;
        uint64 validatorCount;
        uint128 seed;
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
    uint256 public constant PRICE_PRECISION = 1e12;
    uint256 public constant MIN_ETH_PER_FEE_ASSET = 1e6;
    uint256 public constant MAX_ETH_PER_FEE_ASSET = 1e18;
    /// @notice The fee exponent (excess / fraction) is capped here so the fee stays finite and
    /// `propose` can never overflow: e^32 ~ 7.9e13.
    uint256 public constant MAX_FEE_EXPONENT = 32;
    /// Checkpoints are built during the slot before their target.
    uint256 public constant MODE_PIPELINED = 1;
    /// Checkpoints are built, attested and published inside their target slot.
    uint256 public constant MODE_NON_PIPELINED = 2;
    /// No body cap may exceed what public mempools accept for a whole tx (128 KiB).
    uint256 public constant MAX_BODY_CAP = 131072;
    uint256 internal constant SECP256K1_HALF_ORDER =
        0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;

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
    EpochSnapshot[] internal snapshots;
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
        if (config.maxCheckpointBodyBytes == 0 || config.maxCheckpointBodyBytes > MAX_BODY_CAP) {
            revert InvalidConfig("maxCheckpointBodyBytes");
        }
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
        logs[0] = CheckpointLog({headerHash: bytes32(0), slot: 0, feeHeader: packFeeHeader(0, 0, config.initialEthPerFeeAsset)});
        _addValidators(initialValidators);
        snapshots.push(
            EpochSnapshot({
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
        address[] memory committee = getEpochCommittee(getEpochAt(block.timestamp));
        _verifyProposer(committee, args.header.slot, payloadHash, proposerSignature);
        _verifyAttestations(committee, payloadHash, attestations, signers);
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
        uint256 slot,
        bytes32 payloadHash,
        Signature calldata signature
    ) internal view {
        if (committee.length == 0) return;
        address expected = _proposerFrom(committee, getEpochForSlot(slot), slot);
        address got = _recover(digest(CHECKPOINT_PROPOSAL_TAG, payloadHash), signature);
        if (got != expected) revert InvalidProposer(expected, got);
    }

    function _verifyAttestations(
        address[] memory committee,
        bytes32 payloadHash,
        Signature[] calldata attestations,
        uint256 signers
    ) internal view {
        uint256 size = committee.length;
        if (size == 0) return;
        if (size < 256 && signers >> size != 0) revert InvalidSignerBitmap(size);
        bytes32 attestationDigest = digest(CHECKPOINT_ATTESTATION_TAG, payloadHash);
        uint256 next;
        for (uint256 i; i < size; ++i) {
            if ((signers >> i) & 1 == 0) continue;
            if (next == attestations.length) revert AttestationCountMismatch(next + 1, attestations.length);
            address got = _recover(attestationDigest, attestations[next]);
            if (got != committee[i]) revert InvalidAttestation(i, committee[i], got);
            ++next;
        }
        if (next != attestations.length) revert AttestationCountMismatch(next, attestations.length);
        uint256 needed = quorum(size);
        if (next < needed) revert InsufficientAttestations(needed, next);
    }

    /// @notice Smallest number of attestations that is more than 2/3 of `committeeSize`.
    function quorum(uint256 committeeSize) public pure returns (uint256) {
        return (committeeSize * 2) / 3 + 1;
    }

    /// @notice The digest a proposer or attester signs: bound to the kind, the L2 chain and this
    /// rollup. Must match `SigningDomain::digest` in `proto/src/signing.rs`.
    function digest(bytes32 tag, bytes32 payloadHash) public view returns (bytes32) {
        return keccak256(abi.encode(tag, L2_CHAIN_ID, address(this), payloadHash));
    }

    function _recover(bytes32 hash, Signature calldata signature) internal pure returns (address) {
        if (uint256(signature.s) > SECP256K1_HALF_ORDER) revert InvalidSignature();
        if (signature.v != 27 && signature.v != 28) revert InvalidSignature();
        address signer = ecrecover(hash, signature.v, signature.r, signature.s);
        if (signer == address(0)) revert InvalidSignature();
        return signer;
    }

    // ---------------------------------------------------------------------------------------
    // Fees
    // ---------------------------------------------------------------------------------------

    function packFeeHeader(uint256 manaUsed, uint256 excessMana, uint256 ethPerFeeAsset)
        public
        pure
        returns (uint256)
    {
        return uint64(manaUsed) | (uint256(uint64(excessMana)) << 64) | (uint256(uint64(ethPerFeeAsset)) << 128);
    }

    function unpackFeeHeader(uint256 feeHeader)
        public
        pure
        returns (uint256 manaUsed, uint256 excessMana, uint256 ethPerFeeAsset)
    {
        manaUsed = uint64(feeHeader);
        excessMana = uint64(feeHeader >> 64);
        ethPerFeeAsset = uint64(feeHeader >> 128);
    }

    /// @notice Excess mana of the child of a checkpoint with this fee header:
    /// max(0, parent excess + parent mana used - target), saturating at 2^64 - 1.
    function childExcessMana(uint256 parentFeeHeader) public view returns (uint256) {
        (uint256 manaUsed, uint256 excess,) = unpackFeeHeader(parentFeeHeader);
        uint256 total = excess + manaUsed;
        if (total <= MANA_TARGET) return 0;
        uint256 child = total - MANA_TARGET;
        return child > type(uint64).max ? type(uint64).max : child;
    }

    /// @notice Min fee per mana of the child of a checkpoint with this fee header, in fee asset:
    /// fake_exponential(MIN_FEE_PER_MANA, excess, FEE_UPDATE_FRACTION) * PRICE_PRECISION / price,
    /// the exponent capped at MAX_FEE_EXPONENT, the result saturating at 2^128 - 1.
    function computeManaMinFee(uint256 parentFeeHeader) public view returns (uint256) {
        uint256 excess = childExcessMana(parentFeeHeader);
        uint256 cap = MAX_FEE_EXPONENT * FEE_UPDATE_FRACTION;
        if (excess > cap) excess = cap;
        (,, uint256 ethPerFeeAsset) = unpackFeeHeader(parentFeeHeader);
        uint256 feeInEth = fakeExponential(MIN_FEE_PER_MANA, excess, FEE_UPDATE_FRACTION);
        uint256 fee = (feeInEth * PRICE_PRECISION) / ethPerFeeAsset;
        return fee > type(uint128).max ? type(uint128).max : fee;
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
        (,, uint256 parentPrice) = unpackFeeHeader(parentFeeHeader);
        uint256 price = (parentPrice * uint256(int256(10_000) + feeAssetPriceModifier)) / 10_000;
        if (price < MIN_ETH_PER_FEE_ASSET) price = MIN_ETH_PER_FEE_ASSET;
        if (price > MAX_ETH_PER_FEE_ASSET) price = MAX_ETH_PER_FEE_ASSET;
        return packFeeHeader(manaUsed, childExcessMana(parentFeeHeader), price);
    }

    /// @notice factor * e^(numerator / denominator), approximated by its Taylor series (EIP-4844).
    function fakeExponential(uint256 factor, uint256 numerator, uint256 denominator)
        public
        pure
        returns (uint256)
    {
        uint256 output;
        uint256 accumulator = factor * denominator;
        for (uint256 i = 1; accumulator > 0; ++i) {
            output += accumulator;
            accumulator = (accumulator * numerator) / (denominator * i);
        }
        return output / denominator;
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

    /// @dev Records (epoch, validator count, seed) once per epoch; later calls in the same epoch
    /// only refresh the count. Lookups use snapshots at least SEED_LAG_EPOCHS old, which no call
    /// can change any more.
    function _snapshotEpoch() internal {
        uint256 epoch = block.timestamp < GENESIS_TIME ? 0 : getEpochAt(block.timestamp);
        EpochSnapshot storage last = snapshots[snapshots.length - 1];
        if (last.epoch == epoch) {
            last.validatorCount = uint64(validators.length);
            return;
        }
        uint128 seed = uint128(uint256(keccak256(abi.encode(last.seed, block.prevrandao, epoch))));
        snapshots.push(EpochSnapshot({epoch: uint64(epoch), validatorCount: uint64(validators.length), seed: seed}));
    }

    /// @dev The latest snapshot taken at or before `epoch - SEED_LAG_EPOCHS` (the first one for
    /// the earliest epochs). Binary search: O(log n).
    function _snapshotFor(uint256 epoch) internal view returns (EpochSnapshot memory) {
        uint256 lagged = epoch < SEED_LAG_EPOCHS ? 0 : epoch - SEED_LAG_EPOCHS;
        uint256 low;
        uint256 high = snapshots.length;
        while (high - low > 1) {
            uint256 mid = (low + high) / 2;
            if (snapshots[mid].epoch <= lagged) low = mid;
            else high = mid;
        }
        return snapshots[low];
    }

    function getEpochSeed(uint256 epoch) public view returns (uint256) {
        return _snapshotFor(epoch).seed;
    }

    /// @notice The committee of `epoch`: min(COMMITTEE_SIZE, count) distinct validators sampled
    /// uniformly from the first `count` registered ones, in sampling order.
    function getEpochCommittee(uint256 epoch) public view returns (address[] memory committee) {
        (committee,) = getEpochCommitteeAndSeed(epoch);
    }

    /// @notice The committee of `epoch` and the seed its proposers are drawn with, in one call:
    /// the proposer of slot s is committee[keccak256(abi.encode(epoch, s, seed)) % length].
    function getEpochCommitteeAndSeed(uint256 epoch) public view returns (address[] memory committee, uint256 seed) {
        EpochSnapshot memory snapshot = _snapshotFor(epoch);
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
        uint256[] memory indices = _sampleIndices(uint256(keccak256(abi.encode(seed, epoch))), count, size);
        for (uint256 i; i < size; ++i) committee[i] = validators[indices[i]];
    }

    /// @dev `size` distinct indices of [0, count), uniformly, by a partial Fisher-Yates shuffle:
    /// step i swaps position i with position j uniform in [i, count) and takes what lands at i.
    /// Positions never swapped hold their own index; swapped ones live in an open-addressing
    /// table of 2^k >= 2 * size slots (a key is stored as position + 1, so 0 means empty), at
    /// most half full. Positions are uniform draws (or 0..size), so the low bits are their hash.
    function _sampleIndices(uint256 seed, uint256 count, uint256 size) internal pure returns (uint256[] memory out) {
        out = new uint256[](size);
        uint256 capacity = 1;
        while (capacity < 2 * size) capacity <<= 1;
        uint256[] memory keys = new uint256[](capacity);
        uint256[] memory values = new uint256[](capacity);
        uint256 mask = capacity - 1;
        for (uint256 i; i < size; ++i) {
            uint256 j = i + uint256(keccak256(abi.encode(seed, i))) % (count - i);
            (uint256 slotJ, uint256 atJ) = _lookup(keys, values, mask, j);
            (, uint256 atI) = _lookup(keys, values, mask, i);
            out[i] = atJ;
            // Position j now holds what position i held; position i is never read again. Both
            // lookups ran before this write, so slotJ is still j's slot (or its empty one).
            keys[slotJ] = j + 1;
            values[slotJ] = atI;
        }
    }

    /// @dev The table slot of `position` (its own or the empty one it would go to) and the index
    /// it holds.
    function _lookup(uint256[] memory keys, uint256[] memory values, uint256 mask, uint256 position)
        internal
        pure
        returns (uint256 slot, uint256 index)
    {
        slot = position & mask;
        while (true) {
            uint256 key = keys[slot];
            if (key == 0) return (slot, position);
            if (key == position + 1) return (slot, values[slot]);
            slot = (slot + 1) & mask;
        }
    }

    function _proposerFrom(address[] memory committee, uint256 epoch, uint256 slot) internal view returns (address) {
        if (committee.length == 0) return address(0);
        uint256 index = uint256(keccak256(abi.encode(epoch, slot, getEpochSeed(epoch)))) % committee.length;
        return committee[index];
    }

    /// @notice The proposer of the slot containing `ts`; address(0) when anyone may propose.
    function getProposerAt(uint256 ts) public view returns (address) {
        return getProposerForSlot(getSlotAt(ts));
    }

    /// @notice The proposer of `slot`; address(0) when anyone may propose.
    function getProposerForSlot(uint256 slot) public view returns (address) {
        uint256 epoch = getEpochForSlot(slot);
        return _proposerFrom(getEpochCommittee(epoch), epoch, slot);
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
