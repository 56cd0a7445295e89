// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {Rollup} from "../Rollup.sol";
import {Fixture} from "./Fixture.sol";

/// @notice Builds valid `propose` calls signed by the slot's proposer and a quorum of the
/// committee (validator private keys are 1..n, registered in that order).
abstract contract Proposer is Fixture {
    address internal constant SUBMITTER = address(0x5eb);

    struct Call {
        Rollup.ProposeArgs args;
        Rollup.Signature proposer;
        Rollup.Signature[] attestations;
        uint256 signers;
        bytes body;
    }

    function sign(Rollup rollup, bytes32 tag, bytes32 payloadHash, address signer)
        internal
        view
        returns (Rollup.Signature memory)
    {
        uint256 key = _keyOf(rollup, signer);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, rollup.digest(tag, payloadHash));
        return Rollup.Signature({v: v, r: r, s: s});
    }

    function _keyOf(Rollup rollup, address signer) internal view returns (uint256) {
        address[] memory all = rollup.getValidators();
        for (uint256 i; i < all.length; ++i) {
            if (all[i] == signer) return i + 1;
        }
        revert("not a validator");
    }

    function slotStart(uint256 slot) internal pure returns (uint256) {
        return GENESIS + slot * SLOT;
    }

    /// @dev A valid call for checkpoint tip + 1 at `slot`, with `bodySize` body bytes.
    function build(Rollup rollup, uint256 slot, uint64 mana, int256 modifier_, uint256 bodySize)
        internal
        view
        returns (Call memory c)
    {
        (uint256 tip,) = rollup.getTips();
        c.body = new bytes(bodySize);
        for (uint256 i; i < bodySize; ++i) c.body[i] = bytes1(uint8(i * 7 + slot));
        c.args.checkpointNumber = tip + 1;
        c.args.header = Rollup.CheckpointHeader({
            lastArchiveRoot: rollup.archiveAt(tip),
            blockHeadersHash: keccak256(abi.encode(slot)),
            bodyHash: keccak256(c.body),
            slot: uint64(slot),
            timestamp: uint64(slotStart(slot)),
            coinbase: address(0xc0b),
            feeRecipient: address(0xfee),
            feePerMana: uint128(rollup.getManaMinFee()),
            totalManaUsed: mana,
            accumulatedFees: 0
        });
        c.args.archive = keccak256(abi.encode(tip, slot, "archive"));
        c.args.feeAssetPriceModifier = modifier_;
        resign(rollup, c);
    }

    /// @dev Signs `c` as the slot's proposer and its first-quorum committee members.
    function resign(Rollup rollup, Call memory c) internal view {
        bytes32 payloadHash = keccak256(abi.encode(c.args.archive, c.args.feeAssetPriceModifier, keccak256(abi.encode(c.args.header))));
        uint256 slot = c.args.header.slot;
        address[] memory committee = rollup.getEpochCommittee(rollup.getEpochForSlot(slot));
        c.proposer = sign(rollup, rollup.CHECKPOINT_PROPOSAL_TAG(), payloadHash, rollup.getProposerForSlot(slot));
        uint256 needed = rollup.quorum(committee.length);
        c.attestations = new Rollup.Signature[](needed);
        c.signers = 0;
        for (uint256 i; i < needed; ++i) {
            c.attestations[i] = sign(rollup, rollup.CHECKPOINT_ATTESTATION_TAG(), payloadHash, committee[i]);
            c.signers |= 1 << i;
        }
    }

    function send(Rollup rollup, Call memory c, address from) internal {
        vm.prank(from, from);
        rollup.propose(c.args, c.proposer, c.attestations, c.signers, c.body);
    }
}

contract ProposeTest is Proposer {
    Rollup internal rollup;

    function setUp() public {
        rollup = deploy(7, 7);
    }

    /// @notice Each mutation of a valid call is refused with its own error, by `propose` and, for
    /// every check but the caller's and the signatures, by `validateHeader` alike.
    function testFuzz_ProposeChecksAndValidateHeaderAgree(uint8 mutation, uint256 value, uint8 slotOffset) public {
        uint256 slot = 3 + slotOffset % 50;
        vm.warp(slotStart(slot));
        Call memory c = build(rollup, slot, uint64(value % 2_000_000), 0, 64);
        uint256 which = mutation % 14;
        bytes memory expected;
        bool header = true;
        if (which == 1) {
            c.args.checkpointNumber += 1 + value % 5;
            expected = abi.encodeWithSelector(Rollup.InvalidCheckpointNumber.selector, 1, c.args.checkpointNumber);
        } else if (which == 2) {
            c.args.header.lastArchiveRoot = bytes32(value | 1);
            expected = abi.encodeWithSelector(Rollup.InvalidArchive.selector, rollup.archiveAt(0), bytes32(value | 1));
        } else if (which == 3) {
            c.args.header.slot += uint64(1 + value % 100);
            expected = abi.encodeWithSelector(Rollup.InvalidSlot.selector, slot, c.args.header.slot);
        } else if (which == 4) {
            c.args.header.timestamp += uint64(1 + value % 100);
            expected = abi.encodeWithSelector(Rollup.InvalidTimestamp.selector, slotStart(slot), c.args.header.timestamp);
        } else if (which == 5) {
            c.args.header.coinbase = address(0);
            expected = abi.encodeWithSelector(Rollup.InvalidCoinbase.selector);
        } else if (which == 6) {
            c.args.header.totalManaUsed = uint64(2_000_001 + value % 1e9);
            expected = abi.encodeWithSelector(Rollup.ManaLimitExceeded.selector, 2_000_000, c.args.header.totalManaUsed);
        } else if (which == 7) {
            c.args.header.feePerMana += uint128(1 + value % 1000);
            expected = abi.encodeWithSelector(Rollup.InvalidManaMinFee.selector, rollup.getManaMinFee(), c.args.header.feePerMana);
        } else if (which == 8) {
            int256 m = int256(101 + value % 1e6);
            c.args.feeAssetPriceModifier = value % 2 == 0 ? m : -m;
            expected = abi.encodeWithSelector(Rollup.InvalidFeeAssetPriceModifier.selector, c.args.feeAssetPriceModifier);
        } else if (which == 9) {
            c.body[value % c.body.length] ^= 0x01;
            expected = abi.encodeWithSelector(Rollup.InvalidBodyHash.selector, c.args.header.bodyHash, keccak256(c.body));
        } else if (which == 10) {
            uint256 size = 120 * 1024 + 1 + value % 64;
            c.body = new bytes(size);
            c.args.header.bodyHash = keccak256(c.body);
            expected = abi.encodeWithSelector(Rollup.BodyTooLarge.selector, size, 120 * 1024);
        } else if (which == 11) {
            // A changed s recovers another address (or none): the contract must name it.
            header = false;
            c.proposer.s = bytes32(uint256(c.proposer.s) ^ 1);
            bytes32 payloadHash =
                keccak256(abi.encode(c.args.archive, c.args.feeAssetPriceModifier, keccak256(abi.encode(c.args.header))));
            address got = ecrecover(
                rollup.digest(rollup.CHECKPOINT_PROPOSAL_TAG(), payloadHash), c.proposer.v, c.proposer.r, c.proposer.s
            );
            expected = got == address(0)
                ? abi.encodeWithSelector(Rollup.InvalidSignature.selector)
                : abi.encodeWithSelector(Rollup.InvalidProposer.selector, rollup.getProposerForSlot(slot), got);
        } else if (which == 12) {
            header = false;
            c.signers &= ~uint256(1);
            Rollup.Signature[] memory fewer = new Rollup.Signature[](c.attestations.length - 1);
            for (uint256 i; i < fewer.length; ++i) fewer[i] = c.attestations[i + 1];
            c.attestations = fewer;
            expected = abi.encodeWithSelector(Rollup.InsufficientAttestations.selector, 5, 4);
        } else if (which == 13) {
            header = false;
            expected = abi.encodeWithSelector(Rollup.NotDirectCall.selector, address(this), SUBMITTER);
        }
        if (which >= 1 && which <= 7 || which == 8 || which == 9 || which == 10) resign(rollup, c);

        if (header && which != 0) {
            vm.expectRevert(expected);
            rollup.validateHeader(c.args, c.body, block.timestamp);
        } else {
            rollup.validateHeader(c.args, c.body, block.timestamp);
        }
        if (which == 0) {
            send(rollup, c, SUBMITTER);
            (uint256 tip,) = rollup.getTips();
            assertEq(tip, 1, "landed");
            return;
        }
        vm.expectRevert(expected);
        if (which == 13) {
            vm.prank(address(this), SUBMITTER);
            rollup.propose(c.args, c.proposer, c.attestations, c.signers, c.body);
        } else {
            send(rollup, c, SUBMITTER);
        }
    }

    /// @notice An account with code (a contract, or an EIP-7702 delegation designator) is
    /// refused even when it is also the tx origin.
    function test_AnAccountWithCodeCannotPropose() public {
        uint256 slot = 3;
        vm.warp(slotStart(slot));
        Call memory c = build(rollup, slot, 100, 0, 32);
        address delegated = address(0xde1e);
        vm.etch(delegated, abi.encodePacked(hex"ef0100", address(0x1234)));
        vm.expectRevert(abi.encodeWithSelector(Rollup.NotDirectCall.selector, delegated, delegated));
        send(rollup, c, delegated);
        send(rollup, c, SUBMITTER);
    }
}

/// @notice Drives `propose` with random valid and invalid checkpoints over many slots.
contract ProposeHandler is Proposer {
    Rollup public immutable rollup;
    uint256 public landed;
    bytes32 public lastArchive;
    uint256 public lastSlot;
    uint256 internal slot = 2;

    constructor(Rollup rollup_) {
        rollup = rollup_;
        lastArchive = rollup_.archiveAt(0);
    }

    function propose(uint64 mana, int256 modifier_, uint8 corrupt, uint8 skip) external {
        slot += 1 + skip % 3;
        vm.warp(slotStart(slot));
        modifier_ = modifier_ % 150;
        Call memory c = build(rollup, slot, mana % 2_500_000, modifier_, 16 + corrupt % 32);
        if (corrupt % 5 == 0) c.args.header.feePerMana += 1;
        bool valid = corrupt % 5 != 0 && mana % 2_500_000 <= 2_000_000 && modifier_ <= 100 && modifier_ >= -100;
        vm.prank(SUBMITTER, SUBMITTER);
        (bool ok,) = address(rollup).call(
            abi.encodeCall(Rollup.propose, (c.args, c.proposer, c.attestations, c.signers, c.body))
        );
        if (ok != valid) revert("propose outcome differs from the model");
        if (ok) {
            ++landed;
            lastArchive = c.args.archive;
            lastSlot = slot;
        }
    }
}

contract ProposeInvariantTest is Fixture {
    Rollup internal rollup;
    ProposeHandler internal handler;

    function setUp() public {
        rollup = deploy(7, 7);
        handler = new ProposeHandler(rollup);
    }

    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(handler);
    }

    /// @notice The tip counts exactly the accepted proposals, and points at the last archive.
    function invariant_TipFollowsAcceptedProposals() public view {
        (uint256 tip,) = rollup.getTips();
        assertEq(tip, handler.landed(), "tip");
        assertTrue(rollup.archiveAt(tip) == handler.lastArchive(), "tip archive");
        if (tip > 0) assertEq(rollup.getCheckpointLog(tip).slot, handler.lastSlot(), "tip slot");
    }

    /// @notice The stored fee-asset price never leaves its bounds.
    function invariant_PriceStaysInBounds() public view {
        (uint256 tip,) = rollup.getTips();
        (,, uint256 price) = rollup.getFeeHeader(tip);
        assertTrue(price >= rollup.MIN_ETH_PER_FEE_ASSET() && price <= rollup.MAX_ETH_PER_FEE_ASSET(), "price");
    }
}
