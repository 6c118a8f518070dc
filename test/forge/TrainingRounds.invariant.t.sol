// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {TrainingRounds} from "../../contracts/TrainingRounds.sol";
import {ITrainingRounds} from "../../contracts/interfaces/ITrainingRounds.sol";
import {Handler} from "./Handler.sol";
import {Test} from "./utils/Test.sol";

/// @dev Invariants of TrainingRounds under random sequences of every state-changing operation
/// (see {Handler}). forge runs one campaign (runs x depth calls) per `invariant_` function, so all
/// eight are checked by one function, after every call of every sequence; each failure message
/// names the invariant.
contract TrainingRoundsInvariantTest is Test {
    Handler internal handler;
    TrainingRounds internal rounds;

    function setUp() public {
        handler = new Handler();
        rounds = handler.rounds();
        targetContract(address(handler));
    }

    /// The stored accumulator of every round is the fold of its UpdateSubmitted events, and
    /// checkCommitments accepts exactly that list.
    function invariant_protocol() public view {
        _accumulatorIsTheFoldOfTheEvents();
        _commitCountMatchesEventsAndEligibleSnapshot();
        _noNodeCommitsTwiceInARound();
        _earlyFinalizationOnlyWhenEveryoneCommitted();
        _lastCommittedRoundOnlyGrows();
        _everyOutcomeMatchesTheModel();
        _unmaskPhaseMatchesTheEvents();
        _onlySurvivorsPostAndOnlyOnce();
        _deadlineFollowsTheCloseWindow();
    }

    /// A round's deadline is the one it opened with, or, once minUpdates commitments are in and it
    /// has a close window, min(that, quorum block time + closeWindow - 1), announced by exactly one
    /// DeadlineBroughtForward event.
    function _deadlineFollowsTheCloseWindow() internal view {
        uint256 current = rounds.currentRoundId();
        for (uint256 rid = 1; rid <= current; ++rid) {
            uint64 opened = handler.ghostOpenDeadline(rid);
            uint64 quorumAt = handler.ghostQuorumAt(rid);
            uint32 window = handler.ghostCloseWindow(rid);
            uint64 expected = opened;
            if (window != 0 && quorumAt != 0 && quorumAt + window - 1 < opened) expected = quorumAt + window - 1;
            assertEq(rounds.getRound(rid).deadline, expected, "deadline != the close-window model");
            assertEq(handler.ghostBroughtForward(rid), expected < opened ? expected : 0, "DeadlineBroughtForward");
        }
        assertEq(handler.broughtForwardTwice(), 0, "a deadline was brought forward twice");
    }

    function _accumulatorIsTheFoldOfTheEvents() internal view {
        uint256 current = rounds.currentRoundId();
        for (uint256 rid = 1; rid <= current; ++rid) {
            assertEq(rounds.getRound(rid).accumulator, handler.ghostAcc(rid), "accumulator != fold of events");
            assertTrue(rounds.checkCommitments(rid, handler.entries(rid)), "checkCommitments refuses the event list");
        }
    }

    /// commitCount counts the events, and never exceeds the eligible snapshot of an unsampled round.
    function _commitCountMatchesEventsAndEligibleSnapshot() internal view {
        uint256 current = rounds.currentRoundId();
        for (uint256 rid = 1; rid <= current; ++rid) {
            ITrainingRounds.Round memory r = rounds.getRound(rid);
            assertEq(r.commitCount, handler.ghostCount(rid), "commitCount != events");
            if (r.selectionRate == 0) assertTrue(r.commitCount <= r.eligibleCount, "commitCount > eligibleCount");
        }
    }

    function _noNodeCommitsTwiceInARound() internal view {
        assertEq(handler.doubleCommits(), 0, "a node committed twice in a round");
    }

    /// A round finalized at or before its deadline was unsampled and had every eligible node's commitment.
    function _earlyFinalizationOnlyWhenEveryoneCommitted() internal view {
        assertEq(handler.earlyFinalizeViolations(), 0, "finalized early without every eligible node");
    }

    /// lastCommittedRound never decreases, and is the round of the node's latest UpdateSubmitted.
    function _lastCommittedRoundOnlyGrows() internal view {
        assertEq(handler.lastCommittedDecreases(), 0, "lastCommittedRound decreased");
        for (uint256 i = 0; i < 8; ++i) {
            address node = handler.nodes(i);
            assertEq(rounds.lastCommittedRound(node), handler.ghostLastRound(node), "lastCommittedRound != events");
        }
    }

    /// Every call succeeded or reverted exactly as the model of the protocol predicts.
    function _everyOutcomeMatchesTheModel() internal view {
        assertEq(handler.mismatches(), 0, handler.firstMismatch());
    }

    /// For every round, from one read of it: unmaskCount <= survivorCount <= commitCount; a
    /// transparent round's unmask phase stays zero; a sealed round's survivors are its committers
    /// minus its CommitmentExcluded events; the stored unmask accumulator and count are the fold
    /// and the count of its UnmaskSubmitted events; and a finalized secure round was sealed, had
    /// at least `threshold` posts and accepted at most its survivors.
    function _unmaskPhaseMatchesTheEvents() internal view {
        assertEq(handler.secureFinalizeViolations(), 0, "secure round finalized without the seal or the threshold");
        uint256 current = rounds.currentRoundId();
        for (uint256 rid = 1; rid <= current; ++rid) {
            ITrainingRounds.Round memory r = rounds.getRound(rid);
            ITrainingRounds.UnmaskPhase memory ph = rounds.getUnmaskPhase(rid);
            assertTrue(ph.unmaskCount <= ph.survivorCount, "unmaskCount > survivorCount");
            assertTrue(ph.survivorCount <= r.commitCount, "survivorCount > commitCount");
            if (ph.threshold == 0) {
                assertTrue(!ph.isSealed && ph.unmaskDeadline == 0 && ph.unmaskCount == 0, "transparent round unmasked");
            }
            assertTrue(ph.isSealed == handler.ghostSealed(rid), "sealed != events");
            if (ph.isSealed) {
                assertEq(ph.survivorCount, r.commitCount - handler.ghostExcludedCount(rid), "survivors != events");
            } else {
                assertEq(ph.survivorCount + ph.unmaskCount + ph.sealedAt, 0, "counts before the seal");
            }
            assertEq(ph.unmaskAccumulator, handler.ghostUnmaskAcc(rid), "unmask accumulator != fold of events");
            assertEq(ph.unmaskCount, handler.ghostUnmaskCount(rid), "unmaskCount != events");
            if (r.status == ITrainingRounds.RoundStatus.Finalized && ph.threshold != 0) {
                assertTrue(ph.isSealed, "finalized secure round not sealed");
                assertTrue(ph.unmaskCount >= ph.threshold, "finalized secure round below its threshold");
                assertTrue(r.acceptedCount <= ph.survivorCount, "accepted more than the survivors");
            }
        }
    }

    /// Exclusions name committers once, before the one seal; posts come from survivors, once each,
    /// after the seal; isSurvivor and hasUnmasked agree with the events for the current round.
    function _onlySurvivorsPostAndOnlyOnce() internal view {
        assertEq(handler.sealViolations(), 0, "an exclusion or a seal disagrees with the commitments");
        assertEq(handler.unmaskViolations(), 0, "a post before the seal, by a non-survivor, or twice");
        uint256 rid = rounds.currentRoundId();
        if (rid == 0) return;
        for (uint256 i = 0; i < 8; ++i) {
            address node = handler.nodes(i);
            bool survivor =
                handler.ghostSealed(rid) && handler.ghostCommitted(rid, node) && !handler.ghostExcluded(rid, node);
            assertTrue(rounds.isSurvivor(rid, node) == survivor, "isSurvivor != events");
            assertTrue(rounds.hasUnmasked(rid, node) == handler.ghostUnmasked(rid, node), "hasUnmasked != events");
        }
    }

    /// The handler's close-window path works at all: the quorum's commitment brings the deadline
    /// forward, the ghosts see it, and a commitment after the new deadline is refused.
    function test_the_handler_brings_a_deadline_forward_through_its_model() public {
        // seed: closeMode 4 (a close window of relayCutoff + 1 = 1 s), bits 16-19 not all zero (a valid
        // unmask window, 0 for a transparent round), transparent, unsampled, cut-off 0.
        uint256 seed = 4 << 24 | 1 << 16;
        // The handler's bound() maps x to min + x % (max - min + 1): quorum 2, sample cap 1000, a 1001 s round.
        handler.open(seed, 1, 999, 0, 0, 1000, 0, 0);
        assertEq(rounds.getRound(1).minUpdates, 2, "quorum");
        uint256 rid = rounds.currentRoundId();
        assertEq(rounds.getRound(rid).closeWindow, 1, "close window");
        uint64 opened = rounds.getRound(rid).deadline;
        handler.submit(0, keccak256("u0") | bytes32(uint256(0xff) << 248), 10);
        assertEq(rounds.getRound(rid).deadline, opened, "one commitment: below the quorum of 2");
        handler.submit(1, keccak256("u1") | bytes32(uint256(0xff) << 248), 10);
        // a 1 s window: the quorum's own second, no more
        assertEq(rounds.getRound(rid).deadline, block.timestamp, "the quorum brought the deadline forward");
        assertEq(handler.ghostBroughtForward(rid), block.timestamp, "the event announced it");
        vm.warp(block.timestamp + 1);
        handler.submit(2, keccak256("u2") | bytes32(uint256(0xff) << 248), 10);
        assertEq(rounds.getRound(rid).commitCount, 2, "a commitment after the new deadline is refused");
        invariant_protocol();
    }

    /// The handler's secure paths work at all: one scripted secure round, through the handler's own
    /// actions and model (all five founding nodes commit, one is excluded, posts, finalization).
    function test_the_handler_runs_a_secure_round_through_its_model() public {
        // seed: bit 8 set (secure), bits 16-19 not all zero (a valid window), seed % 4 == 0 (unsampled).
        uint256 seed = 1 << 8 | 1 << 16;
        // bound() maps the arguments: minUpdates 1, threshold 3, a 1001 s round, a 501 s unmask window.
        handler.open(seed, 0, 1000, 0, 0, 1000, 2, 500);
        uint256 rid = rounds.currentRoundId();
        assertEq(rid, 1, "opened");
        assertEq(rounds.getUnmaskPhase(rid).threshold, 3, "threshold");
        for (uint256 i = 0; i < 5; ++i) {
            handler.submit(i, keccak256(abi.encode("update", i)) | bytes32(uint256(0xff) << 248), 10);
        }
        assertEq(rounds.getRound(rid).commitCount, 5, "every founding node committed");
        // Exclude the committers whose bits are set among the sorted nodes: find one committer.
        uint256 bits;
        for (uint256 k = 0; k < 8 && bits == 0; ++k) {
            if (handler.ghostCommitted(rid, _sorted(k))) bits = 1 << k;
        }
        // mode 2 (sorted), committers only, exclusions on: node k excluded iff bits 8 + k and 16 + k.
        handler.seal(2 | 1 << 3 | 1 << 5 | bits << 8 | bits << 16);
        assertTrue(rounds.getUnmaskPhase(rid).isSealed, "sealed");
        assertEq(rounds.getUnmaskPhase(rid).survivorCount, 4, "survivors");
        for (uint256 i = 0; i < 8; ++i) {
            handler.unmask(i, keccak256(abi.encode("unmask", i)) | bytes32(uint256(0xff) << 248));
        }
        assertEq(rounds.getUnmaskPhase(rid).unmaskCount, 4, "every survivor posted");
        handler.finalize(4);
        assertTrue(rounds.getRound(rid).status == ITrainingRounds.RoundStatus.Finalized, "finalized");
        assertEq(handler.mismatches(), 0, handler.firstMismatch());
        invariant_protocol();
        assertEq(handler.secureFinalizations(), 1, "secure finalization seen");
        assertEq(handler.exclusions(), 1, "exclusion seen");
    }

    function _sorted(uint256 k) internal view returns (address out) {
        // k-th smallest of the handler's nodes
        address[8] memory a;
        for (uint256 i = 0; i < 8; ++i) {
            a[i] = handler.nodes(i);
        }
        for (uint256 i = 1; i < 8; ++i) {
            for (uint256 j = i; j > 0 && a[j - 1] > a[j]; --j) {
                (a[j - 1], a[j]) = (a[j], a[j - 1]);
            }
        }
        out = a[k];
    }
}
