// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {TrainingRounds} from "../../contracts/TrainingRounds.sol";
import {ITrainingRounds} from "../../contracts/interfaces/ITrainingRounds.sol";
import {Handler} from "./Handler.sol";
import {Test} from "./utils/Test.sol";

/// @dev Invariants of TrainingRounds under random sequences of every state-changing operation
/// (see {Handler}). forge runs one campaign (runs x depth calls) per `invariant_` function, so all
/// six are checked by one function, after every call of every sequence; each failure message
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
}
