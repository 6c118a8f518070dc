// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {TrainingRounds} from "../../contracts/TrainingRounds.sol";
import {ITrainingRounds} from "../../contracts/interfaces/ITrainingRounds.sol";
import {Test, Vm} from "./utils/Test.sol";

/**
 * @dev Drives one TrainingRounds through random admit / remove / open / submit / batch /
 * finalize / expire / warp sequences for the invariant test. The handler is the admin, the
 * registrar and the aggregator; nodes commit through `vm.prank` or by signing (`vm.sign`).
 *
 * Two independent records are kept:
 * - ghosts, built only from the contract's events (UpdateSubmitted, RoundOpened, RoundFinalized),
 *   which the invariants compare with the contract's storage;
 * - a model of who may commit when, which predicts each call's outcome; every disagreement is
 *   counted in `mismatches` (the invariants require zero).
 */
contract Handler is Test {
    uint256 internal constant N = 8;
    uint256 internal constant SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;
    uint64 internal constant GRACE = 60;
    bytes32 internal constant CONFIG = keccak256("config");

    TrainingRounds public immutable rounds;
    uint256[N] internal keys;
    address[N] public nodes;

    // --- model -----------------------------------------------------------------------------
    mapping(address => bool) internal active;
    mapping(address => uint256) internal joinedRound;

    // --- ghosts (from events only) -----------------------------------------------------------
    mapping(uint256 => bytes32) public ghostAcc;
    mapping(uint256 => uint256) public ghostCount;
    mapping(uint256 => mapping(address => bool)) public ghostCommitted;
    mapping(uint256 => ITrainingRounds.CommitmentEntry[]) internal ghostEntries;
    mapping(address => uint256) public ghostLastRound;
    mapping(address => uint256) internal seenLastCommitted;
    uint256 public doubleCommits;
    uint256 public lastCommittedDecreases;
    uint256 public earlyFinalizeViolations;
    uint256 public mismatches;
    string public firstMismatch;

    // --- coverage counters -------------------------------------------------------------------
    uint256 public commitsDirect;
    uint256 public commitsRelayed;
    uint256 public skippedEntries;
    uint256 public earlyFinalizations;
    uint256 public lateFinalizations;
    uint256 public roundsOpened;

    constructor() {
        rounds = new TrainingRounds(address(this), GRACE);
        rounds.grantRole(rounds.AGGREGATOR_ROLE(), address(this));
        rounds.setGenesisModel(keccak256("genesis"));
        for (uint256 i = 0; i < N; ++i) {
            keys[i] = uint256(keccak256(abi.encode("fedchain forge node", i))) % (SECP256K1_N - 1) + 1;
            nodes[i] = vm.addr(keys[i]);
        }
        // Five of the eight start as members (joined before round 1); the others join later, if ever.
        for (uint256 i = 0; i < 5; ++i) {
            rounds.admitNode(nodes[i], "", bytes32(0));
            active[nodes[i]] = true;
        }
        vm.recordLogs();
    }

    function entries(uint256 roundId) external view returns (ITrainingRounds.CommitmentEntry[] memory) {
        return ghostEntries[roundId];
    }

    // --- actions -------------------------------------------------------------------------------
    function admit(uint256 i) external {
        address node = nodes[i % N];
        (bool ok,) = address(rounds).call(abi.encodeCall(rounds.admitNode, (node, "", bytes32(i))));
        _expect(ok == !active[node], "admit");
        if (ok) {
            active[node] = true;
            joinedRound[node] = rounds.currentRoundId();
        }
        _collect();
    }

    function remove(uint256 i) external {
        address node = nodes[i % N];
        (bool ok,) = address(rounds).call(abi.encodeCall(rounds.removeNode, (node)));
        _expect(ok == active[node], "remove");
        if (ok) active[node] = false;
        _collect();
    }

    function open(uint256 seed, uint32 minUpdates, uint64 maxSamples, uint64 rate_, uint32 cutoff, uint32 duration)
        external
    {
        uint64 length = uint64(bound(duration, 1, 2000));
        uint64 rate;
        if (seed % 4 == 1) rate = type(uint64).max; // sampled, but (in practice) everyone selected
        else if (seed % 4 == 3) rate = uint64(bound(rate_, 1, type(uint64).max));
        ITrainingRounds.RoundParams memory p = ITrainingRounds.RoundParams({
            deadline: uint64(block.timestamp) + length,
            minUpdates: uint32(bound(minUpdates, 1, 4)),
            maxSamples: uint64(bound(maxSamples, 1, 1000)),
            selectionRate: rate,
            // mostly a cut-off inside the round, sometimes one longer than the round
            relayCutoff: uint32(seed % 8 == 0 ? bound(cutoff, 0, 2500) : bound(cutoff, 0, length / 2))
        });
        vm.prevrandao(keccak256(abi.encode(seed)));
        uint256 current = rounds.currentRoundId();
        bool expectOk = p.selectionRate != 0 || rounds.nodeCount() >= p.minUpdates;
        if (current != 0) {
            ITrainingRounds.Round memory prev = rounds.getRound(current);
            if (prev.status == ITrainingRounds.RoundStatus.Open && block.timestamp <= prev.deadline + GRACE) {
                expectOk = false;
            }
        }
        (bool ok,) =
            address(rounds).call(abi.encodeCall(rounds.openRound, (rounds.latestModelHash(), CONFIG, p)));
        _expect(ok == expectOk, "open");
        if (ok) ++roundsOpened;
        _collect();
    }

    function submit(uint256 i, bytes32 updateHash, uint64 samples) external {
        uint256 rid = rounds.currentRoundId();
        if (rid == 0) return;
        address node = nodes[i % N];
        if (uint8(updateHash[0]) < 8) updateHash = bytes32(0);
        ITrainingRounds.Round memory r = rounds.getRound(rid);
        samples = uint64(bound(samples, 0, r.maxSamples + 1));
        bool expectOk = r.status == ITrainingRounds.RoundStatus.Open && block.timestamp <= r.deadline
            && _mayCommit(rid, r, node, updateHash, samples);
        vm.prank(node);
        (bool ok,) = address(rounds).call(abi.encodeCall(rounds.submitUpdate, (rid, updateHash, samples)));
        _expect(ok == expectOk, "submit");
        if (ok) ++commitsDirect;
        _collect();
    }

    function batch(uint256 seed, uint256 count) external {
        uint256 rid = rounds.currentRoundId();
        if (rid == 0) return;
        count = bound(count, 0, 5);
        ITrainingRounds.Round memory r = rounds.getRound(rid);
        ITrainingRounds.SignedCommitment[] memory list = new ITrainingRounds.SignedCommitment[](count);
        address[] memory inBatch = new address[](count);
        uint256 expected;
        for (uint256 j = 0; j < count; ++j) {
            uint256 s = uint256(keccak256(abi.encode(seed, j)));
            bool genuine;
            (list[j], genuine, inBatch[j]) = _entry(rid, s, r.maxSamples);
            if (genuine && _mayCommit(rid, r, inBatch[j], list[j].updateHash, list[j].numSamples)) {
                bool dup;
                for (uint256 k = 0; k < j; ++k) {
                    if (inBatch[k] == inBatch[j]) dup = true;
                }
                if (!dup) ++expected;
                else inBatch[j] = address(0);
            } else {
                inBatch[j] = address(0);
            }
        }
        uint64 closesAt = r.relayCutoff >= r.deadline ? 0 : r.deadline - r.relayCutoff;
        bool expectOk = r.status == ITrainingRounds.RoundStatus.Open && block.timestamp <= closesAt;
        (bool ok, bytes memory ret) = address(rounds).call(abi.encodeCall(rounds.submitBatch, (rid, list)));
        _expect(ok == expectOk, "batch: reverted or not");
        if (ok) {
            uint256 committed = abi.decode(ret, (uint256));
            _expect(committed == expected, "batch: committed count");
            commitsRelayed += committed;
            skippedEntries += count - committed;
        }
        _collect();
    }

    function finalize(uint256 accepted) external {
        uint256 rid = rounds.currentRoundId();
        if (rid == 0) return;
        ITrainingRounds.Round memory r = rounds.getRound(rid);
        accepted = bound(accepted, 0, uint256(r.commitCount) + 1);
        bool expectOk = r.status == ITrainingRounds.RoundStatus.Open && accepted >= r.minUpdates
            && accepted <= r.commitCount
            && (block.timestamp > r.deadline || (r.selectionRate == 0 && r.commitCount == r.eligibleCount));
        (bool ok,) = address(rounds).call(
            abi.encodeCall(rounds.finalizeRound, (rid, keccak256(abi.encode("model", rid)), CONFIG, uint32(accepted)))
        );
        _expect(ok == expectOk, "finalize");
        _collect();
    }

    function expire() external {
        uint256 rid = rounds.currentRoundId();
        if (rid == 0) return;
        ITrainingRounds.Round memory r = rounds.getRound(rid);
        bool expectOk = r.status == ITrainingRounds.RoundStatus.Open && block.timestamp > r.deadline + GRACE;
        (bool ok,) = address(rounds).call(abi.encodeCall(rounds.expireRound, (rid)));
        _expect(ok == expectOk, "expire");
        _collect();
    }

    function warp(uint256 seconds_) external {
        vm.warp(block.timestamp + bound(seconds_, 1, 1500));
        vm.roll(block.number + 1);
    }

    // --- internal ------------------------------------------------------------------------------
    /// @dev The model: may `node` commit (`updateHash`, `samples`) to the open round `rid` now?
    function _mayCommit(
        uint256 rid,
        ITrainingRounds.Round memory r,
        address node,
        bytes32 updateHash,
        uint64 samples
    ) internal view returns (bool) {
        if (updateHash == bytes32(0) || samples == 0 || samples > r.maxSamples) return false;
        if (ghostCommitted[rid][node] || !active[node] || joinedRound[node] >= rid) return false;
        if (r.selectionRate != 0 && uint256(keccak256(abi.encode(r.seed, node))) >> 192 >= r.selectionRate) {
            return false;
        }
        return true;
    }

    /// @dev A random batch entry: genuine (signed by a node's key over its own fields) or not
    /// (tampered after signing, the compact form of the high-s twin, an s above n/2, or signed
    /// by a stranger). Returns the entry, whether it is genuine, and the signer.
    function _entry(uint256 rid, uint256 s, uint64 maxSamples)
        internal
        view
        returns (ITrainingRounds.SignedCommitment memory c, bool genuine, address signer)
    {
        uint256 who = s % (N + 1); // N: a stranger's key
        uint256 key = who == N ? 0xBAD5EED : keys[who];
        signer = vm.addr(key);
        c.updateHash = uint8(s >> 8) < 8 ? bytes32(0) : keccak256(abi.encode(s));
        c.numSamples = uint64(bound(s >> 64, 0, maxSamples + 1));
        (uint8 v, bytes32 r, bytes32 sig) = vm.sign(key, rounds.commitmentDigest(rid, c.updateHash, c.numSamples));
        c.r = r;
        c.vs = bytes32(uint256(sig) | (uint256(v - 27) << 255));
        genuine = who != N;
        uint256 mode = (s >> 128) % 8;
        if (mode == 0) {
            c.updateHash = keccak256(abi.encode(c.updateHash)); // signed something else
            genuine = false;
        } else if (mode == 1) {
            // the malleable twin, (r, n - s, v flipped), in compact form
            uint256 twin = SECP256K1_N - uint256(sig);
            c.vs = bytes32(twin | (uint256(v == 27 ? 1 : 0) << 255));
            genuine = false;
        } else if (mode == 2) {
            c.vs = bytes32((SECP256K1_N / 2 + 1 + (s >> 200)) | (uint256(v - 27) << 255)); // s above n/2
            genuine = false;
        }
    }

    function _expect(bool condition, string memory what) internal {
        if (!condition) {
            if (mismatches == 0) firstMismatch = what;
            ++mismatches;
        }
    }

    /// @dev Folds the contract's events since the last call into the ghosts.
    function _collect() internal {
        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i = 0; i < logs.length; ++i) {
            Vm.Log memory log = logs[i];
            if (log.emitter != address(rounds)) continue;
            bytes32 topic = log.topics[0];
            if (topic == ITrainingRounds.RoundOpened.selector) {
                uint256 rid = uint256(log.topics[1]);
                ghostAcc[rid] = keccak256(abi.encode(block.chainid, address(rounds), rid));
            } else if (topic == ITrainingRounds.UpdateSubmitted.selector) {
                uint256 rid = uint256(log.topics[1]);
                address node = address(uint160(uint256(log.topics[2])));
                (bytes32 updateHash, uint64 samples) = abi.decode(log.data, (bytes32, uint64));
                if (ghostCommitted[rid][node]) ++doubleCommits;
                ghostCommitted[rid][node] = true;
                ghostAcc[rid] = keccak256(abi.encode(ghostAcc[rid], node, updateHash, uint256(samples)));
                ++ghostCount[rid];
                ghostEntries[rid].push(ITrainingRounds.CommitmentEntry(node, updateHash, samples));
                ghostLastRound[node] = rid;
            } else if (topic == ITrainingRounds.RoundFinalized.selector) {
                ITrainingRounds.Round memory r = rounds.getRound(uint256(log.topics[1]));
                if (block.timestamp <= r.deadline) {
                    ++earlyFinalizations;
                    if (r.selectionRate != 0 || r.commitCount != r.eligibleCount) ++earlyFinalizeViolations;
                } else {
                    ++lateFinalizations;
                }
            }
        }
        for (uint256 i = 0; i < N; ++i) {
            uint256 last = rounds.lastCommittedRound(nodes[i]);
            if (last < seenLastCommitted[nodes[i]]) ++lastCommittedDecreases;
            seenLastCommitted[nodes[i]] = last;
        }
    }
}
