// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/**
 * @title ITrainingRounds
 * @notice The coordinator of record of a fedchain federation: training rounds, the nodes'
 * commitments to their updates, and the resulting chain of global models.
 *
 * Life of a round:
 *
 * 1. The aggregator ({AGGREGATOR_ROLE}) calls {openRound} with the hash of the model the round
 *    starts from, which must be the latest model ({latestModelHash}: the last finalized round's
 *    model, or the genesis model while no round has been finalized), the hash of the round's
 *    configuration, a deadline and a quorum. At most one round is open at a time; round ids are
 *    1, 2, 3, ... in opening order.
 * 2. Until the deadline (inclusive), each active node of the registry may call {submitUpdate} once
 *    with the hash of its update and the number of samples it trained on.
 * 3. The aggregator calls {finalizeRound} with the new model's hash, the hash of the round report
 *    and how many of the committed updates it accepted (at least the quorum). It may do so before
 *    the deadline (every node has committed) or after it.
 * 4. If the round is still open once `deadline + gracePeriod` has passed, anyone may call
 *    {expireRound}: the federation never stalls on an absent aggregator, and the next round
 *    starts again from the latest model.
 *
 * A finalized or expired round never changes again. Every state change emits an event.
 * No function iterates over nodes or rounds: every operation is O(1).
 */
interface ITrainingRounds {
    /// @notice The state of a round. `None` is the state of an id that was never opened.
    enum RoundStatus {
        None,
        Open,
        Finalized,
        Expired
    }

    /**
     * @notice A round, as returned by {getRound}.
     * @param baseModelHash The model the round starts from.
     * @param configHash Hash of the round's configuration document (strategy, hyper-parameters...).
     * @param globalModelHash The model the round produced; zero unless finalized.
     * @param reportHash Hash of the round report (accepted/rejected updates and why); zero unless finalized.
     * @param deadline Unix time (seconds) of the last block in which updates are accepted.
     * @param openedAt Block number in which the round was opened.
     * @param closedAt Block number in which the round was finalized or expired; 0 while open.
     * @param minUpdates Quorum: the least number of accepted updates to finalize.
     * @param commitCount How many nodes committed an update.
     * @param acceptedCount How many commitments the aggregator accepted; 0 unless finalized.
     * @param status The round's state.
     */
    struct Round {
        bytes32 baseModelHash;
        bytes32 configHash;
        bytes32 globalModelHash;
        bytes32 reportHash;
        uint64 deadline;
        uint64 openedAt;
        uint64 closedAt;
        uint32 minUpdates;
        uint32 commitCount;
        uint32 acceptedCount;
        RoundStatus status;
    }

    /// @notice {openRound} was called before {setGenesisModel}.
    error GenesisNotSet();

    /// @notice {setGenesisModel} was called a second time. The genesis model is written once.
    error GenesisAlreadySet();

    /// @notice The current round `roundId` is open and not yet expirable: finalize it or wait.
    error RoundStillOpen(uint256 roundId);

    /// @notice No round `roundId` was ever opened.
    error UnknownRound(uint256 roundId);

    /// @notice Round `roundId` is finalized or expired.
    error RoundNotOpen(uint256 roundId);

    /// @notice `deadline` is not in the future, or is beyond year 36812 (2^40 - 1 seconds).
    error InvalidDeadline(uint64 deadline);

    /// @notice `minUpdates` is zero.
    error InvalidMinUpdates(uint32 minUpdates);

    /// @notice {openRound} was given `given` as base model, but the latest model is `expected`.
    error BaseModelMismatch(bytes32 expected, bytes32 given);

    /// @notice `node` is not an active node of the registry.
    error NotActiveNode(address node);

    /// @notice `node` already committed an update in round `roundId`.
    error AlreadySubmitted(uint256 roundId, address node);

    /// @notice Round `roundId` stopped accepting updates at `deadline`.
    error DeadlinePassed(uint256 roundId, uint64 deadline);

    /// @notice A hash argument is zero.
    error ZeroHash();

    /// @notice {submitUpdate} was given `numSamples == 0`.
    error ZeroSamples();

    /// @notice {finalizeRound} was given fewer accepted updates than round `roundId`'s quorum.
    error QuorumNotReached(uint256 roundId, uint32 acceptedCount, uint32 minUpdates);

    /// @notice {finalizeRound} was given more accepted updates than round `roundId` has commitments.
    error AcceptedExceedsCommitments(uint256 roundId, uint32 acceptedCount, uint32 commitCount);

    /// @notice Round `roundId` can be expired only once the block timestamp is past `expiresAt`.
    error ExpiryNotReached(uint256 roundId, uint64 expiresAt);

    /// @notice The zero address was given for the registry or the admin.
    error ZeroAddress();

    /// @notice The constructor was given a grace period above {MAX_GRACE_PERIOD}.
    error InvalidGracePeriod(uint64 gracePeriod);

    /// @notice The genesis model was set to `modelHash`.
    event GenesisModelSet(bytes32 indexed modelHash);

    /// @notice Round `roundId` was opened.
    event RoundOpened(
        uint256 indexed roundId,
        bytes32 baseModelHash,
        bytes32 configHash,
        uint64 deadline,
        uint32 minUpdates
    );

    /// @notice `node` committed to the update `updateHash`, trained on `numSamples` samples, in round `roundId`.
    event UpdateSubmitted(uint256 indexed roundId, address indexed node, bytes32 updateHash, uint64 numSamples);

    /// @notice Round `roundId` was finalized: `globalModelHash` is the new latest model.
    event RoundFinalized(uint256 indexed roundId, bytes32 globalModelHash, bytes32 reportHash, uint32 acceptedCount);

    /// @notice Round `roundId` expired without being finalized; `expiredBy` sent the transaction.
    event RoundExpired(uint256 indexed roundId, address indexed expiredBy);

    /// @notice The role allowed to open and finalize rounds: `keccak256("AGGREGATOR_ROLE")`.
    function AGGREGATOR_ROLE() external view returns (bytes32);

    /// @notice The largest grace period the constructor accepts: 365 days.
    function MAX_GRACE_PERIOD() external view returns (uint64);

    /**
     * @notice Sets the model the first round starts from.
     * @dev Requirements: caller has `DEFAULT_ADMIN_ROLE`; `modelHash` is not zero; the genesis
     * model was never set (so it is fixed before the first round can be opened). Emits
     * {GenesisModelSet}.
     */
    function setGenesisModel(bytes32 modelHash) external;

    /**
     * @notice Opens the next round.
     * @dev Requirements:
     * - caller has {AGGREGATOR_ROLE};
     * - `minUpdates >= 1`, `block.timestamp < deadline < 2^40`;
     * - the current round, if any, is finalized or expired; if it is still open but
     *   `block.timestamp > deadline + gracePeriod`, it is expired first (emitting {RoundExpired}
     *   with `expiredBy == msg.sender`), otherwise the call reverts with {RoundStillOpen};
     * - the genesis model is set, and `baseModelHash` equals {latestModelHash};
     * - `configHash` is not zero.
     * Emits {RoundOpened}.
     * @return roundId The new round's id: the previous {currentRoundId} plus one.
     */
    function openRound(
        bytes32 baseModelHash,
        bytes32 configHash,
        uint64 deadline,
        uint32 minUpdates
    ) external returns (uint256 roundId);

    /**
     * @notice Commits the caller's update to round `roundId`.
     * @dev Requirements: round `roundId` is open (hence it is the current round);
     * `block.timestamp <= deadline`; the caller is an active node of {registry}; the caller has not
     * committed in this round; `updateHash` is not zero; `numSamples` is not zero.
     * Emits {UpdateSubmitted}.
     * @param updateHash The commitment to the update blob (a SHA-256 Merkle root, see the protocol).
     * @param numSamples The number of local samples the update was trained on (its FedAvg weight).
     */
    function submitUpdate(uint256 roundId, bytes32 updateHash, uint64 numSamples) external;

    /**
     * @notice Closes round `roundId` with its result, which becomes the latest model.
     * @dev Requirements: caller has {AGGREGATOR_ROLE}; round `roundId` is open;
     * `minUpdates <= acceptedCount <= commitCount`; neither hash is zero. Allowed before the
     * deadline (early finish) and after it, until the round is expired. Emits {RoundFinalized}.
     */
    function finalizeRound(uint256 roundId, bytes32 newModelHash, bytes32 reportHash, uint32 acceptedCount) external;

    /**
     * @notice Closes round `roundId` without a result. Anyone may call it.
     * @dev Requirements: round `roundId` is open and `block.timestamp > deadline + gracePeriod`.
     * Emits {RoundExpired}.
     */
    function expireRound(uint256 roundId) external;

    /// @notice The node registry whose active nodes may submit updates (fixed at deployment).
    function registry() external view returns (address);

    /// @notice Seconds after a round's deadline during which only the aggregator can close it.
    function gracePeriod() external view returns (uint64);

    /// @notice The model the first round starts from; zero until {setGenesisModel}.
    function genesisModelHash() external view returns (bytes32);

    /// @notice The model the next round must start from: the last finalized round's model, or the genesis model.
    function latestModelHash() external view returns (bytes32);

    /// @notice The id of the last opened round; 0 if none.
    function currentRoundId() external view returns (uint256);

    /// @notice The id of the last finalized round; 0 if none.
    function lastFinalizedRoundId() external view returns (uint256);

    /// @notice Round `roundId`; every field is zero (status `None`) if it was never opened.
    function getRound(uint256 roundId) external view returns (Round memory);

    /**
     * @notice The commitment of `node` in round `roundId`, for any past or current round.
     * @return updateHash The committed hash; zero if `node` did not commit in that round.
     * @return numSamples The number of samples it declared; zero if it did not commit.
     */
    function getCommitment(uint256 roundId, address node) external view returns (bytes32 updateHash, uint64 numSamples);
}
