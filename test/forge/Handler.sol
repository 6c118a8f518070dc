// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {TrainingRounds} from "../../contracts/TrainingRounds.sol";
import {ITrainingRounds} from "../../contracts/interfaces/ITrainingRounds.sol";
import {Test, Vm} from "./utils/Test.sol";

/**
 * @dev Drives one TrainingRounds through random admit / remove / open / submit / batch / seal /
 * unmask / unmaskBatch / finalize / expire / warp sequences for the invariant test. The handler
 * is the admin, the registrar and the aggregator; nodes commit and post unmasking hashes through
 * `vm.prank` or by signing (`vm.sign`). About half the rounds opened are secure.
 *
 * Two independent records are kept:
 * - ghosts, built only from the contract's events (UpdateSubmitted, RoundOpened, RoundFinalized,
 *   CommitmentExcluded, CommitmentsSealed, UnmaskSubmitted), which the invariants compare with
 *   the contract's storage;
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

    // --- ghosts of secure rounds (from events only) ----------------------------------------------
    mapping(uint256 => mapping(address => bool)) public ghostExcluded;
    mapping(uint256 => uint256) public ghostExcludedCount;
    mapping(uint256 => bool) public ghostSealed;
    mapping(uint256 => uint256) public ghostSurvivorCount;
    mapping(uint256 => mapping(address => bool)) public ghostUnmasked;
    mapping(uint256 => bytes32) public ghostUnmaskAcc;
    mapping(uint256 => uint256) public ghostUnmaskCount;
    /// A post before the seal, by a non-survivor, or a second post by the same node.
    uint256 public unmaskViolations;

    // --- ghosts of the close window (from events only) -------------------------------------------
    mapping(uint256 => uint64) public ghostOpenDeadline;
    mapping(uint256 => uint32) public ghostCloseWindow;
    mapping(uint256 => uint32) public ghostMinUpdates;
    /// Block time of the commitment that took the count to minUpdates; 0 before.
    mapping(uint256 => uint64) public ghostQuorumAt;
    /// The deadline a DeadlineBroughtForward event announced; 0 if none.
    mapping(uint256 => uint64) public ghostBroughtForward;
    uint256 public broughtForwardTwice;
    uint256 public deadlinesBroughtForward;
    /// An exclusion of a non-committer or a repeated one, a second seal, or a seal whose counts
    /// disagree with the events.
    uint256 public sealViolations;
    /// A secure round finalized unsealed, below its threshold, or accepting more than its survivors.
    uint256 public secureFinalizeViolations;

    // --- coverage counters -------------------------------------------------------------------
    uint256 public commitsDirect;
    uint256 public commitsRelayed;
    uint256 public skippedEntries;
    uint256 public earlyFinalizations;
    uint256 public lateFinalizations;
    uint256 public roundsOpened;
    uint256 public secureRoundsOpened;
    uint256 public seals;
    uint256 public exclusions;
    uint256 public unmasksDirect;
    uint256 public unmasksRelayed;
    uint256 public skippedUnmasks;
    uint256 public secureFinalizations;

    /// @dev `nodes`, ascending by address (what sealCommitments wants).
    address[N] internal sortedNodes;

    constructor() {
        rounds = new TrainingRounds(address(this), GRACE);
        rounds.grantRole(rounds.AGGREGATOR_ROLE(), address(this));
        rounds.setGenesisModel(keccak256("genesis"));
        for (uint256 i = 0; i < N; ++i) {
            keys[i] = uint256(keccak256(abi.encode("fedchain forge node", i))) % (SECP256K1_N - 1) + 1;
            nodes[i] = vm.addr(keys[i]);
        }
        sortedNodes = nodes;
        for (uint256 i = 1; i < N; ++i) {
            for (uint256 j = i; j > 0 && sortedNodes[j - 1] > sortedNodes[j]; --j) {
                (sortedNodes[j - 1], sortedNodes[j]) = (sortedNodes[j], sortedNodes[j - 1]);
            }
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
        if (!ok) _dropLogs();
        _collect();
    }

    function remove(uint256 i) external {
        address node = nodes[i % N];
        (bool ok,) = address(rounds).call(abi.encodeCall(rounds.removeNode, (node)));
        _expect(ok == active[node], "remove");
        if (ok) active[node] = false;
        if (!ok) _dropLogs();
        _collect();
    }

    function open(
        uint256 seed,
        uint32 minUpdates,
        uint64 maxSamples,
        uint64 rate_,
        uint32 cutoff,
        uint32 duration,
        uint32 threshold,
        uint32 window
    ) external {
        ITrainingRounds.RoundParams memory p = _params(seed, minUpdates, maxSamples, rate_, cutoff, duration);
        // About half the rounds are secure; 1 in 16 has an unmask window that does not fit its mode.
        bool secure = (seed >> 8) % 2 == 1;
        bool badWindow = (seed >> 16) % 16 == 0;
        // Mostly a threshold a few commitments reach within a sequence; 1 in 8 up to 6 (above the 5
        // founding members, so an unsampled round may refuse it).
        p.threshold = secure ? uint32(bound(threshold, 1, (seed >> 20) % 8 == 0 ? 6 : 3)) : 0;
        p.unmaskWindow = secure == badWindow ? 0 : uint32(bound(window, 1, 2000));
        // A secure round must gather max(threshold, quorum) commitments, seal and collect threshold
        // posts within one sequence: keep its quorum small too.
        if (secure) p.minUpdates = uint32(bound(minUpdates, 1, 2));
        vm.prevrandao(keccak256(abi.encode(seed)));
        uint256 current = rounds.currentRoundId();
        uint256 count = rounds.nodeCount();
        bool badClose = _setCloseWindow(p, seed);
        bool expectOk = !badWindow && !badClose
            && (p.selectionRate != 0 || (count >= p.minUpdates && count >= p.threshold));
        if (current != 0) {
            ITrainingRounds.Round memory prev = rounds.getRound(current);
            if (prev.status == ITrainingRounds.RoundStatus.Open && block.timestamp <= _expiresAt(current, prev)) {
                expectOk = false;
            }
        }
        (bool ok,) =
            address(rounds).call(abi.encodeCall(rounds.openRound, (rounds.latestModelHash(), CONFIG, p)));
        _expect(ok == expectOk, "open");
        if (ok) {
            ++roundsOpened;
            if (secure) ++secureRoundsOpened;
        }
        if (!ok) _dropLogs();
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
        if (!ok) _dropLogs();
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
        if (!ok) _dropLogs();
        _collect();
    }

    /// @dev Seals the current round, excluding a random subset of the nodes (none in a quarter of
    /// the calls, else each with probability 1/4; mostly committers only), sometimes out of order
    /// or with a repeated address.
    function seal(uint256 seed) external {
        uint256 rid = rounds.currentRoundId();
        if (rid == 0) return;
        ITrainingRounds.Round memory r = rounds.getRound(rid);
        ITrainingRounds.UnmaskPhase memory ph = rounds.getUnmaskPhase(rid);
        // Half the time the aggregator first waits for the deadline, as it would.
        if ((seed >> 30) % 2 == 0 && block.timestamp <= r.deadline) {
            vm.warp(uint256(r.deadline) + 1);
            vm.roll(block.number + 1);
        }
        bool onlyCommitters = (seed >> 3) % 4 != 0;
        bool none = (seed >> 5) % 4 == 0;
        address[] memory list = new address[](N + 1);
        uint256 n;
        bool allCommitted = true;
        for (uint256 k = 0; k < N && !none; ++k) {
            address a = sortedNodes[k];
            if ((seed >> (8 + k)) & (seed >> (16 + k)) & 1 == 0) continue;
            if (onlyCommitters && !ghostCommitted[rid][a]) continue;
            list[n++] = a;
            if (!ghostCommitted[rid][a]) allCommitted = false;
        }
        bool ascending = true;
        uint256 mode = seed % 8;
        if (mode == 0 && n >= 2) {
            (list[0], list[1]) = (list[1], list[0]);
            ascending = false;
        } else if (mode == 1 && n >= 1) {
            list[n] = list[n - 1];
            ++n;
            ascending = false;
        }
        assembly ("memory-safe") {
            mstore(list, n)
        }
        uint256 needed = ph.threshold > r.minUpdates ? ph.threshold : r.minUpdates;
        bool expectOk = r.status == ITrainingRounds.RoundStatus.Open && ph.threshold != 0 && !ph.isSealed
            && _commitPhaseClosed(r) && block.timestamp <= ph.unmaskDeadline && ascending && allCommitted
            && r.commitCount >= n + needed;
        _trySeal(rid, list, seed, expectOk);
    }

    /// @dev The seal call of {seal}, naming the round's commit count, except in one call in eight,
    /// which names another (a list that changed after the aggregator read it): CommitmentsChanged.
    function _trySeal(uint256 rid, address[] memory list, uint256 seed, bool expectOk) private {
        uint32 commitCount = rounds.getRound(rid).commitCount;
        uint32 count = commitCount;
        if ((seed >> 40) % 8 == 7) count = (seed >> 43) % 2 == 0 ? count + 1 : (count == 0 ? 1 : count - 1);
        (bool ok,) = address(rounds).call(abi.encodeCall(rounds.sealCommitments, (rid, list, count)));
        _expect(ok == (expectOk && count == commitCount), "seal");
        if (ok) ++seals;
        if (!ok) _dropLogs();
        _collect();
    }

    function unmask(uint256 i, bytes32 unmaskHash) external {
        uint256 rid = rounds.currentRoundId();
        if (rid == 0) return;
        address node = nodes[i % N];
        // Mostly the next node (from i on) that has a post to make; else any node.
        for (uint256 k = 0; k < N && (i >> 8) % 4 != 0; ++k) {
            address candidate = nodes[(i % N + k) % N];
            if (ghostCommitted[rid][candidate] && !ghostExcluded[rid][candidate] && !ghostUnmasked[rid][candidate]) {
                node = candidate;
                break;
            }
        }
        if (uint8(unmaskHash[0]) < 8) unmaskHash = bytes32(0);
        ITrainingRounds.Round memory r = rounds.getRound(rid);
        ITrainingRounds.UnmaskPhase memory ph = rounds.getUnmaskPhase(rid);
        bool expectOk = r.status == ITrainingRounds.RoundStatus.Open && ph.isSealed
            && block.timestamp <= ph.unmaskDeadline && _mayUnmask(rid, node, unmaskHash);
        vm.prank(node);
        (bool ok,) = address(rounds).call(abi.encodeCall(rounds.submitUnmask, (rid, unmaskHash)));
        _expect(ok == expectOk, "unmask");
        if (ok) ++unmasksDirect;
        if (!ok) _dropLogs();
        _collect();
    }

    function unmaskBatch(uint256 seed, uint256 count) external {
        uint256 rid = rounds.currentRoundId();
        if (rid == 0) return;
        count = bound(count, 0, 5);
        ITrainingRounds.Round memory r = rounds.getRound(rid);
        ITrainingRounds.UnmaskPhase memory ph = rounds.getUnmaskPhase(rid);
        ITrainingRounds.SignedUnmask[] memory list = new ITrainingRounds.SignedUnmask[](count);
        address[] memory inBatch = new address[](count);
        uint256 expected;
        for (uint256 j = 0; j < count; ++j) {
            bool genuine;
            (list[j], genuine, inBatch[j]) = _unmaskEntry(rid, uint256(keccak256(abi.encode(seed, j))), inBatch);
            bool dup;
            for (uint256 k = 0; k < j; ++k) {
                if (inBatch[k] == inBatch[j]) dup = true;
            }
            if (genuine && !dup && _mayUnmask(rid, inBatch[j], list[j].unmaskHash)) ++expected;
            else inBatch[j] = address(0);
        }
        uint64 closesAt = r.relayCutoff >= ph.unmaskDeadline ? 0 : ph.unmaskDeadline - r.relayCutoff;
        bool expectOk = r.status == ITrainingRounds.RoundStatus.Open && ph.isSealed && block.timestamp <= closesAt;
        (bool ok, bytes memory ret) = address(rounds).call(abi.encodeCall(rounds.submitUnmaskBatch, (rid, list)));
        _expect(ok == expectOk, "unmaskBatch: reverted or not");
        if (ok) {
            uint256 posted = abi.decode(ret, (uint256));
            _expect(posted == expected, "unmaskBatch: posted count");
            unmasksRelayed += posted;
            skippedUnmasks += count - posted;
        }
        if (!ok) _dropLogs();
        _collect();
    }

    /// @dev The aggregator relays one batch holding a genuine commitment signed by every node, in a
    /// random rotation: every node that may commit does (members not yet committed, selected), the
    /// others are skipped. Lets a sequence reach full rounds (early close, early seal).
    function relayAll(uint256 seed) external {
        uint256 rid = rounds.currentRoundId();
        if (rid == 0) return;
        ITrainingRounds.Round memory r = rounds.getRound(rid);
        ITrainingRounds.SignedCommitment[] memory list = new ITrainingRounds.SignedCommitment[](N);
        uint256 expected;
        for (uint256 j = 0; j < N; ++j) {
            uint256 who = (seed % N + j) % N;
            ITrainingRounds.SignedCommitment memory c = list[j];
            c.updateHash = keccak256(abi.encode("relayAll", seed, j)) | bytes32(uint256(1));
            c.numSamples = uint64(bound(seed >> 8, 1, r.maxSamples));
            (uint8 v, bytes32 sr, bytes32 ss) = vm.sign(keys[who], rounds.commitmentDigest(rid, c.updateHash, c.numSamples));
            c.r = sr;
            c.vs = bytes32(uint256(ss) | (uint256(v - 27) << 255));
            if (_mayCommit(rid, r, nodes[who], c.updateHash, c.numSamples)) ++expected;
        }
        uint64 closesAt = r.relayCutoff >= r.deadline ? 0 : r.deadline - r.relayCutoff;
        bool expectOk = r.status == ITrainingRounds.RoundStatus.Open && block.timestamp <= closesAt;
        (bool ok, bytes memory ret) = address(rounds).call(abi.encodeCall(rounds.submitBatch, (rid, list)));
        _expect(ok == expectOk, "relayAll: reverted or not");
        if (ok) {
            uint256 committed = abi.decode(ret, (uint256));
            _expect(committed == expected, "relayAll: committed count");
            commitsRelayed += committed;
            skippedEntries += N - committed;
        }
        if (!ok) _dropLogs();
        _collect();
    }

    function finalize(uint256 accepted) external {
        uint256 rid = rounds.currentRoundId();
        if (rid == 0) return;
        ITrainingRounds.Round memory r = rounds.getRound(rid);
        ITrainingRounds.UnmaskPhase memory ph = rounds.getUnmaskPhase(rid);
        accepted = bound(accepted, 0, uint256(r.commitCount) + 1);
        // A secure round also needs the seal, `threshold` posts, and at most its survivors accepted.
        bool secureOk = ph.threshold == 0
            || (ph.isSealed && ph.unmaskCount >= ph.threshold && accepted <= ph.survivorCount);
        bool expectOk = r.status == ITrainingRounds.RoundStatus.Open && accepted >= r.minUpdates
            && accepted <= r.commitCount && _commitPhaseClosed(r) && secureOk;
        (bool ok,) = address(rounds).call(
            abi.encodeCall(rounds.finalizeRound, (rid, keccak256(abi.encode("model", rid)), CONFIG, uint32(accepted)))
        );
        _expect(ok == expectOk, "finalize");
        if (!ok) _dropLogs();
        _collect();
    }

    function expire() external {
        uint256 rid = rounds.currentRoundId();
        if (rid == 0) return;
        ITrainingRounds.Round memory r = rounds.getRound(rid);
        bool expectOk = r.status == ITrainingRounds.RoundStatus.Open && block.timestamp > _expiresAt(rid, r);
        (bool ok,) = address(rounds).call(abi.encodeCall(rounds.expireRound, (rid)));
        _expect(ok == expectOk, "expire");
        if (!ok) _dropLogs();
        _collect();
    }

    function warp(uint256 seconds_) external {
        vm.warp(block.timestamp + bound(seconds_, 1, 1500));
        vm.roll(block.number + 1);
    }

    // --- internal ------------------------------------------------------------------------------
    /// @dev Half the rounds get a close window (some longer than the round: then the deadline
    /// stays); 1 in 8 one that does not exceed the relay cut-off, which openRound refuses (returns true).
    function _setCloseWindow(ITrainingRounds.RoundParams memory p, uint256 seed) internal pure returns (bool bad) {
        uint256 closeMode = (seed >> 24) % 8;
        bad = closeMode == 3 && p.relayCutoff != 0;
        if (closeMode >= 4) p.closeWindow = uint32(p.relayCutoff + 1 + (seed >> 32) % 2002);
        else if (bad) p.closeWindow = uint32(1 + (seed >> 32) % p.relayCutoff);
    }

    /// @dev A transparent RoundParams (the caller sets the secure fields).
    function _params(uint256 seed, uint32 minUpdates, uint64 maxSamples, uint64 rate_, uint32 cutoff, uint32 duration)
        internal
        view
        returns (ITrainingRounds.RoundParams memory p)
    {
        uint64 length = uint64(bound(duration, 1, 2000));
        uint64 rate;
        if (seed % 4 == 1) rate = type(uint64).max; // sampled, but (in practice) everyone selected
        else if (seed % 4 == 3) rate = uint64(bound(rate_, 1, type(uint64).max));
        p.deadline = uint64(block.timestamp) + length;
        p.minUpdates = uint32(bound(minUpdates, 1, 4));
        p.maxSamples = uint64(bound(maxSamples, 1, 1000));
        p.selectionRate = rate;
        // mostly a cut-off inside the round, sometimes one longer than the round
        p.relayCutoff = uint32(seed % 8 == 0 ? bound(cutoff, 0, 2500) : bound(cutoff, 0, length / 2));
    }

    /// @dev The model: the last second at which round `rid` cannot be expired yet.
    function _expiresAt(uint256 rid, ITrainingRounds.Round memory r) internal view returns (uint256) {
        ITrainingRounds.UnmaskPhase memory ph = rounds.getUnmaskPhase(rid);
        return uint256(ph.threshold != 0 ? ph.unmaskDeadline : r.deadline) + GRACE;
    }

    /// @dev The model: no more commitments can come (the rule of finalizeRound and sealCommitments).
    function _commitPhaseClosed(ITrainingRounds.Round memory r) internal view returns (bool) {
        return block.timestamp > r.deadline || (r.selectionRate == 0 && r.commitCount == r.eligibleCount);
    }

    function _contains(address[] memory list, address a) internal pure returns (bool) {
        for (uint256 i = 0; i < list.length; ++i) {
            if (list[i] == a) return true;
        }
        return false;
    }

    /// @dev The model: may `node` post `unmaskHash` to the (sealed) round `rid`?
    function _mayUnmask(uint256 rid, address node, bytes32 unmaskHash) internal view returns (bool) {
        return unmaskHash != bytes32(0) && ghostCommitted[rid][node] && !ghostExcluded[rid][node]
            && !ghostUnmasked[rid][node];
    }

    /// @dev A random unmasking post: genuine or not, as in {_entry}. Its signer is mostly the next
    /// node (from a random one on) that has a post to make and is not in `taken` yet.
    function _unmaskEntry(uint256 rid, uint256 s, address[] memory taken)
        internal
        view
        returns (ITrainingRounds.SignedUnmask memory u, bool genuine, address signer)
    {
        uint256 who = s % (N + 1); // N: a stranger's key
        for (uint256 k = 0; k < N && who < N && (s >> 64) % 4 != 0; ++k) {
            address candidate = nodes[(who + k) % N];
            if (_mayUnmask(rid, candidate, bytes32(uint256(1))) && !_contains(taken, candidate)) {
                who = (who + k) % N;
                break;
            }
        }
        uint256 key = who == N ? 0xBAD5EED : keys[who];
        signer = vm.addr(key);
        u.unmaskHash = uint8(s >> 8) < 8 ? bytes32(0) : keccak256(abi.encode("unmask", s));
        (uint8 v, bytes32 r, bytes32 sig) = vm.sign(key, rounds.unmaskDigest(rid, u.unmaskHash));
        u.r = r;
        u.vs = bytes32(uint256(sig) | (uint256(v - 27) << 255));
        genuine = who != N;
        uint256 mode = (s >> 128) % 8;
        if (mode == 0) {
            u.unmaskHash = keccak256(abi.encode(u.unmaskHash)); // signed something else
            genuine = false;
        } else if (mode == 1) {
            uint256 twin = SECP256K1_N - uint256(sig);
            u.vs = bytes32(twin | (uint256(v == 27 ? 1 : 0) << 255));
            genuine = false;
        } else if (mode == 2) {
            u.vs = bytes32((SECP256K1_N / 2 + 1 + (s >> 200)) | (uint256(v - 27) << 255)); // s above n/2
            genuine = false;
        }
    }

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

    /// @dev Discards the logs of a call that reverted: forge records them anyway, and a revert can
    /// follow events (sealCommitments emits CommitmentExcluded before a later entry fails).
    function _dropLogs() internal {
        vm.getRecordedLogs();
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
                (,, ITrainingRounds.RoundParams memory p,,) =
                    abi.decode(log.data, (bytes32, bytes32, ITrainingRounds.RoundParams, uint32, bytes32));
                ghostOpenDeadline[rid] = p.deadline;
                ghostCloseWindow[rid] = p.closeWindow;
                ghostMinUpdates[rid] = p.minUpdates;
            } else if (topic == ITrainingRounds.UpdateSubmitted.selector) {
                uint256 rid = uint256(log.topics[1]);
                address node = address(uint160(uint256(log.topics[2])));
                (bytes32 updateHash, uint64 samples) = abi.decode(log.data, (bytes32, uint64));
                if (ghostCommitted[rid][node]) ++doubleCommits;
                ghostCommitted[rid][node] = true;
                ghostAcc[rid] = keccak256(abi.encode(ghostAcc[rid], node, updateHash, uint256(samples)));
                ++ghostCount[rid];
                if (ghostCount[rid] == ghostMinUpdates[rid]) ghostQuorumAt[rid] = uint64(block.timestamp);
                ghostEntries[rid].push(ITrainingRounds.CommitmentEntry(node, updateHash, samples));
                ghostLastRound[node] = rid;
            } else if (topic == ITrainingRounds.DeadlineBroughtForward.selector) {
                uint256 rid = uint256(log.topics[1]);
                if (ghostBroughtForward[rid] != 0) ++broughtForwardTwice;
                ghostBroughtForward[rid] = abi.decode(log.data, (uint64));
                ++deadlinesBroughtForward;
            } else if (topic == ITrainingRounds.RoundFinalized.selector) {
                uint256 rid = uint256(log.topics[1]);
                ITrainingRounds.Round memory r = rounds.getRound(rid);
                if (block.timestamp <= r.deadline) {
                    ++earlyFinalizations;
                    if (r.selectionRate != 0 || r.commitCount != r.eligibleCount) ++earlyFinalizeViolations;
                } else {
                    ++lateFinalizations;
                }
                ITrainingRounds.UnmaskPhase memory ph = rounds.getUnmaskPhase(rid);
                if (ph.threshold != 0) {
                    ++secureFinalizations;
                    if (!ghostSealed[rid] || ghostUnmaskCount[rid] < ph.threshold
                            || r.acceptedCount > ghostSurvivorCount[rid]) ++secureFinalizeViolations;
                }
            } else if (topic == ITrainingRounds.CommitmentExcluded.selector) {
                uint256 rid = uint256(log.topics[1]);
                address node = address(uint160(uint256(log.topics[2])));
                if (ghostSealed[rid] || !ghostCommitted[rid][node] || ghostExcluded[rid][node]) ++sealViolations;
                ghostExcluded[rid][node] = true;
                ++ghostExcludedCount[rid];
                ++exclusions;
            } else if (topic == ITrainingRounds.CommitmentsSealed.selector) {
                uint256 rid = uint256(log.topics[1]);
                (uint32 survivors, uint32 excludedCount,) = abi.decode(log.data, (uint32, uint32, uint64));
                if (ghostSealed[rid] || excludedCount != ghostExcludedCount[rid]
                        || uint256(survivors) + excludedCount != ghostCount[rid]) ++sealViolations;
                ghostSealed[rid] = true;
                ghostSurvivorCount[rid] = survivors;
                ghostUnmaskAcc[rid] =
                    keccak256(abi.encode(block.chainid, address(rounds), rid, keccak256("fedchain/unmask")));
            } else if (topic == ITrainingRounds.UnmaskSubmitted.selector) {
                uint256 rid = uint256(log.topics[1]);
                address node = address(uint160(uint256(log.topics[2])));
                bytes32 unmaskHash = abi.decode(log.data, (bytes32));
                if (!ghostSealed[rid] || !ghostCommitted[rid][node] || ghostExcluded[rid][node]
                        || ghostUnmasked[rid][node]) ++unmaskViolations;
                ghostUnmasked[rid][node] = true;
                ghostUnmaskAcc[rid] = keccak256(abi.encode(ghostUnmaskAcc[rid], node, unmaskHash));
                ++ghostUnmaskCount[rid];
            }
        }
        for (uint256 i = 0; i < N; ++i) {
            uint256 last = rounds.lastCommittedRound(nodes[i]);
            if (last < seenLastCommitted[nodes[i]]) ++lastCommittedDecreases;
            seenLastCommitted[nodes[i]] = last;
        }
    }
}
