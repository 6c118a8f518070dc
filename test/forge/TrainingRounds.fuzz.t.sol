// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {TrainingRounds} from "../../contracts/TrainingRounds.sol";
import {ITrainingRounds} from "../../contracts/interfaces/ITrainingRounds.sol";
import {Test} from "./utils/Test.sol";

/// @dev Fuzz tests of the selection rule and of relayed signatures. Each run starts from setUp's
/// state: a contract with genesis set, this contract as admin/registrar/aggregator, no node.
contract TrainingRoundsFuzzTest is Test {
    uint256 internal constant SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;
    bytes32 internal constant GENESIS = keccak256("genesis");
    uint64 internal constant MAX_SAMPLES = 1_000_000;

    TrainingRounds internal rounds;

    function setUp() public {
        vm.warp(1_700_000_000);
        rounds = new TrainingRounds(address(this), 60);
        rounds.grantRole(rounds.AGGREGATOR_ROLE(), address(this));
        rounds.setGenesisModel(GENESIS);
    }

    function _open(uint64 rate) internal returns (uint256) {
        return rounds.openRound(
            GENESIS,
            keccak256("config"),
            ITrainingRounds.RoundParams({
                deadline: uint64(block.timestamp + 1000),
                minUpdates: 1,
                maxSamples: MAX_SAMPLES,
                selectionRate: rate,
                relayCutoff: 100,
                threshold: 0,
                unmaskWindow: 0,
                closeWindow: 0
            })
        );
    }

    /// @dev A sealed secure round (threshold 1) in which `node`, the only member, committed.
    function _sealedWith(address node) internal returns (uint256 rid) {
        rounds.admitNode(node, "", bytes32(0));
        rid = rounds.openRound(
            GENESIS,
            keccak256("config"),
            ITrainingRounds.RoundParams({
                deadline: uint64(block.timestamp + 1000),
                minUpdates: 1,
                maxSamples: MAX_SAMPLES,
                selectionRate: 0,
                relayCutoff: 100,
                threshold: 1,
                unmaskWindow: 500,
                closeWindow: 0
            })
        );
        vm.prank(node);
        rounds.submitUpdate(rid, keccak256("update"), 1);
        rounds.sealCommitments(rid, new address[](0), 1); // everyone committed: sealed early
    }

    function _signUnmask(uint256 key, uint256 rid, bytes32 unmaskHash)
        internal
        view
        returns (ITrainingRounds.SignedUnmask memory u)
    {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, rounds.unmaskDigest(rid, unmaskHash));
        u = ITrainingRounds.SignedUnmask(unmaskHash, r, bytes32(uint256(s) | (uint256(v - 27) << 255)));
    }

    function _unmaskBatch(uint256 rid, ITrainingRounds.SignedUnmask memory u) internal returns (uint256) {
        ITrainingRounds.SignedUnmask[] memory list = new ITrainingRounds.SignedUnmask[](1);
        list[0] = u;
        return rounds.submitUnmaskBatch(rid, list);
    }

    function _key(uint256 seed) internal pure returns (uint256) {
        return bound(seed, 1, SECP256K1_N - 1);
    }

    function _sign(uint256 key, uint256 rid, bytes32 updateHash, uint64 samples)
        internal
        view
        returns (ITrainingRounds.SignedCommitment memory c)
    {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, rounds.commitmentDigest(rid, updateHash, samples));
        c = ITrainingRounds.SignedCommitment(updateHash, samples, r, bytes32(uint256(s) | (uint256(v - 27) << 255)));
    }

    function _batch(uint256 rid, ITrainingRounds.SignedCommitment memory c) internal returns (uint256) {
        ITrainingRounds.SignedCommitment[] memory list = new ITrainingRounds.SignedCommitment[](1);
        list[0] = c;
        return rounds.submitBatch(rid, list);
    }

    /// isSelected is `uint256(keccak256(abi.encode(seed, node))) >> 192 < selectionRate` with
    /// `seed = keccak256(abi.encode(block.prevrandao, roundId))`.
    function testFuzz_selection_matches_the_documented_formula(bytes32 randao, uint64 rate, address node) public {
        rate = uint64(bound(rate, 1, type(uint64).max));
        vm.prevrandao(randao);
        uint256 rid = _open(rate);
        ITrainingRounds.Round memory r = rounds.getRound(rid);
        assertEq(r.seed, keccak256(abi.encode(randao, rid)), "seed");
        bool expected = uint256(keccak256(abi.encode(r.seed, node))) >> 192 < rate;
        assertTrue(rounds.isSelected(rid, node) == expected, "isSelected != formula");
        assertTrue(!rounds.isEligible(rid, node), "a non-member is never eligible");
    }

    /// A commitment signed with vm.sign by an admitted node is committed by a relayed batch.
    function testFuzz_a_signed_commitment_is_accepted(uint256 keySeed, bytes32 updateHash, uint64 samples) public {
        uint256 key = _key(keySeed);
        address node = vm.addr(key);
        if (updateHash == bytes32(0)) updateHash = keccak256("nonzero");
        samples = uint64(bound(samples, 1, MAX_SAMPLES));
        rounds.admitNode(node, "", bytes32(0));
        uint256 rid = _open(0);
        bytes32 acc = rounds.getRound(rid).accumulator;
        assertEq(_batch(rid, _sign(key, rid, updateHash, samples)), 1, "committed");
        assertEq(rounds.lastCommittedRound(node), rid, "lastCommittedRound");
        assertEq(
            rounds.getRound(rid).accumulator,
            keccak256(abi.encode(acc, node, updateHash, uint256(samples))),
            "accumulator"
        );
        // A second copy of the same signature is skipped, not committed twice.
        assertEq(_batch(rid, _sign(key, rid, updateHash, samples)), 0, "duplicate committed");
        assertEq(rounds.getRound(rid).commitCount, 1, "commitCount");
    }

    /// Changing any field of a signed commitment after signing makes the batch skip it.
    function testFuzz_a_tampered_commitment_is_skipped(
        uint256 keySeed,
        bytes32 updateHash,
        uint64 samples,
        uint256 field,
        uint256 flip
    ) public {
        uint256 key = _key(keySeed);
        address node = vm.addr(key);
        if (updateHash == bytes32(0)) updateHash = keccak256("nonzero");
        samples = uint64(bound(samples, 1, MAX_SAMPLES - 1));
        if (flip == 0) flip = 1;
        rounds.admitNode(node, "", bytes32(0));
        uint256 rid = _open(0);
        ITrainingRounds.SignedCommitment memory c = _sign(key, rid, updateHash, samples);
        field = field % 4;
        if (field == 0) {
            c.updateHash ^= bytes32(flip);
            if (c.updateHash == bytes32(0)) c.updateHash = bytes32(flip >> 1 | 1);
        } else if (field == 1) {
            c.numSamples = uint64(bound(uint256(c.numSamples) + 1 + (flip % MAX_SAMPLES), 1, MAX_SAMPLES));
            if (c.numSamples == samples) c.numSamples = samples + 1;
        } else if (field == 2) {
            c.r ^= bytes32(flip);
        } else {
            c.vs ^= bytes32(flip);
        }
        assertEq(_batch(rid, c), 0, "tampered commitment committed");
        assertEq(rounds.lastCommittedRound(node), 0, "node marked as committed");
        assertEq(rounds.getRound(rid).commitCount, 0, "commitCount");
        assertEq(rounds.getRound(rid).accumulator, rounds.initialAccumulator(rid), "accumulator moved");
    }

    /// The malleable twin (r, n - s, v flipped) of a valid signature never commits for the node.
    function testFuzz_the_high_s_twin_is_skipped(uint256 keySeed, bytes32 updateHash, uint64 samples) public {
        uint256 key = _key(keySeed);
        address node = vm.addr(key);
        if (updateHash == bytes32(0)) updateHash = keccak256("nonzero");
        samples = uint64(bound(samples, 1, MAX_SAMPLES));
        rounds.admitNode(node, "", bytes32(0));
        uint256 rid = _open(0);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, rounds.commitmentDigest(rid, updateHash, samples));
        assertTrue(uint256(s) <= SECP256K1_N / 2, "vm.sign gives low-s signatures");
        uint256 twin = SECP256K1_N - uint256(s);
        // ecrecover accepts the twin...
        assertEq(ecrecover(rounds.commitmentDigest(rid, updateHash, samples), v == 27 ? 28 : 27, r, bytes32(twin)),
            node, "the twin recovers the node");
        // ...the contract does not, whichever v bit is put in front of it.
        for (uint256 bit = 0; bit < 2; ++bit) {
            ITrainingRounds.SignedCommitment memory c =
                ITrainingRounds.SignedCommitment(updateHash, samples, r, bytes32(twin | (bit << 255)));
            assertEq(_batch(rid, c), 0, "high-s twin committed");
        }
        assertEq(rounds.lastCommittedRound(node), 0, "node marked as committed");
    }

    /// The digest the contract exposes is EIP-712's, over the documented domain and type.
    function testFuzz_commitment_digest_is_eip712(uint256 rid, bytes32 updateHash, uint64 samples) public view {
        bytes32 domain = keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("fedchain"),
                keccak256("2"),
                block.chainid,
                address(rounds)
            )
        );
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256("Commitment(uint256 roundId,bytes32 updateHash,uint64 numSamples)"), rid, updateHash, samples
            )
        );
        assertEq(
            rounds.commitmentDigest(rid, updateHash, samples),
            keccak256(abi.encodePacked("\x19\x01", domain, structHash)),
            "digest"
        );
    }

    /// The unmask digest is EIP-712's, over the same domain and the documented type.
    function testFuzz_unmask_digest_is_eip712(uint256 rid, bytes32 unmaskHash) public view {
        bytes32 domain = keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("fedchain"),
                keccak256("2"),
                block.chainid,
                address(rounds)
            )
        );
        bytes32 structHash = keccak256(abi.encode(keccak256("Unmask(uint256 roundId,bytes32 unmaskHash)"), rid, unmaskHash));
        assertEq(
            rounds.unmaskDigest(rid, unmaskHash), keccak256(abi.encodePacked("\x19\x01", domain, structHash)), "digest"
        );
    }

    /// An unmasking post signed with vm.sign by a survivor is posted by a relayed batch, once.
    function testFuzz_a_signed_unmask_is_posted(uint256 keySeed, bytes32 unmaskHash) public {
        uint256 key = _key(keySeed);
        address node = vm.addr(key);
        if (unmaskHash == bytes32(0)) unmaskHash = keccak256("nonzero");
        uint256 rid = _sealedWith(node);
        bytes32 acc = rounds.getUnmaskPhase(rid).unmaskAccumulator;
        assertEq(acc, rounds.initialUnmaskAccumulator(rid), "initial unmask accumulator");
        assertEq(
            acc,
            keccak256(abi.encode(block.chainid, address(rounds), rid, keccak256("fedchain/unmask"))),
            "initial unmask accumulator formula"
        );
        assertEq(_unmaskBatch(rid, _signUnmask(key, rid, unmaskHash)), 1, "posted");
        assertTrue(rounds.hasUnmasked(rid, node), "hasUnmasked");
        assertEq(
            rounds.getUnmaskPhase(rid).unmaskAccumulator, keccak256(abi.encode(acc, node, unmaskHash)), "accumulator"
        );
        assertEq(_unmaskBatch(rid, _signUnmask(key, rid, unmaskHash)), 0, "duplicate posted");
        assertEq(rounds.getUnmaskPhase(rid).unmaskCount, 1, "unmaskCount");
    }

    /// Changing any field of a signed unmasking post after signing makes the batch skip it.
    function testFuzz_a_tampered_unmask_is_skipped(uint256 keySeed, bytes32 unmaskHash, uint256 field, uint256 flip)
        public
    {
        uint256 key = _key(keySeed);
        address node = vm.addr(key);
        if (unmaskHash == bytes32(0)) unmaskHash = keccak256("nonzero");
        if (flip == 0) flip = 1;
        uint256 rid = _sealedWith(node);
        ITrainingRounds.SignedUnmask memory u = _signUnmask(key, rid, unmaskHash);
        field = field % 3;
        if (field == 0) {
            u.unmaskHash ^= bytes32(flip);
            if (u.unmaskHash == bytes32(0)) u.unmaskHash = bytes32(flip >> 1 | 1);
        } else if (field == 1) {
            u.r ^= bytes32(flip);
        } else {
            u.vs ^= bytes32(flip);
        }
        assertEq(_unmaskBatch(rid, u), 0, "tampered post accepted");
        assertTrue(!rounds.hasUnmasked(rid, node), "node marked as posted");
        assertEq(rounds.getUnmaskPhase(rid).unmaskAccumulator, rounds.initialUnmaskAccumulator(rid), "accumulator moved");
    }
}
