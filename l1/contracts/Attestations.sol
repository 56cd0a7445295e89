// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {Rollup} from "./Rollup.sol";

/// @title The signature checks of `propose`
/// @notice Internal functions only (inlined into the Rollup); they revert with the Rollup's
/// errors.
library Attestations {
    uint256 internal constant SECP256K1_HALF_ORDER =
        0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;

    /// @notice Smallest number of attestations that is more than 2/3 of `committeeSize`.
    function quorum(uint256 committeeSize) internal pure returns (uint256) {
        return (committeeSize * 2) / 3 + 1;
    }

    /// @dev The signer of `hash`; only low-s signatures with v in {27, 28} that recover.
    function recover(bytes32 hash, Rollup.Signature calldata signature) internal pure returns (address signer) {
        if (uint256(signature.s) > SECP256K1_HALF_ORDER) revert Rollup.InvalidSignature();
        if (signature.v != 27 && signature.v != 28) revert Rollup.InvalidSignature();
        signer = ecrecover(hash, signature.v, signature.r, signature.s);
        if (signer == address(0)) revert Rollup.InvalidSignature();
    }

    /// @dev Bit i of `signers` set iff committee[i] signed `attestationDigest`; the signatures
    /// come in committee order, one per set bit, and there are at least a quorum of them. An
    /// empty committee needs none.
    function verify(
        address[] memory committee,
        bytes32 attestationDigest,
        Rollup.Signature[] calldata attestations,
        uint256 signers
    ) internal pure {
        uint256 size = committee.length;
        if (size == 0) return;
        if (size < 256 && signers >> size != 0) revert Rollup.InvalidSignerBitmap(size);
        uint256 next;
        for (uint256 i; i < size; ++i) {
            if ((signers >> i) & 1 == 0) continue;
            if (next == attestations.length) revert Rollup.AttestationCountMismatch(next + 1, attestations.length);
            address got = recover(attestationDigest, attestations[next]);
            if (got != committee[i]) revert Rollup.InvalidAttestation(i, committee[i], got);
            ++next;
        }
        if (next != attestations.length) revert Rollup.AttestationCountMismatch(next, attestations.length);
        uint256 needed = quorum(size);
        if (next < needed) revert Rollup.InsufficientAttestations(needed, next);
    }
}
