// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/**
 * @title ITrainingRounds
 * @notice The coordinator of record of a fedchain federation (protocol version 2): training
 * rounds, the nodes' commitments to their updates, and the resulting chain of global models.
 *
 * Life of a round:
 *
 * 1. The aggregator ({AGGREGATOR_ROLE}) calls {openRound} with the hash of the model the round
 *    starts from (the latest model, {latestModelHash}), the hash of the round's configuration and
 *    its {RoundParams}: deadline, quorum, sample cap, optional selection rate, relay cut-off.
 *    The contract snapshots how many nodes are eligible, and for a sampled round takes a seed.
 *    At most one round is open at a time; round ids are 1, 2, 3, ... in opening order.
 * 2. Until the deadline (inclusive), each eligible node commits once, with the hash of its update
 *    and its sample count (at most the round's `maxSamples`): directly with {submitUpdate}, or
 *    as an EIP-712 `Commitment` that anyone (normally the aggregator) relays in a {submitBatch}.
 *    Relays stop `relayCutoff` seconds before the deadline, so a node that a relayer left out
 *    can still commit itself. A commitment is folded into the round's accumulator
 *    `acc = keccak256(abi.encode(acc, node, updateHash, numSamples))`; the list itself is in the
 *    {UpdateSubmitted} events, and {checkCommitments} tells whether a claimed list is the one.
 * 3. The aggregator calls {finalizeRound} with the new model's hash, the hash of the round
 *    report and how many commitments it accepted (at least the quorum). Before the deadline
 *    that is allowed only if every eligible node has committed (and never for a sampled round,
 *    whose size the contract cannot count): an aggregator cannot shut out a slow node.
 * 4. If the round is still open once `deadline + gracePeriod` has passed, anyone may call
 *    {expireRound}: the federation never stalls on an absent aggregator, and the next round
 *    starts again from the latest model.
 *
 * A finalized or expired round never changes again. Every state change emits an event.
 * No function iterates over nodes or rounds; {submitBatch} and {checkCommitments} loop over
 * their own calldata only.
 */
interface ITrainingRounds {
    /// @notice The state of a round. `None` is the state of an id that was never opened.
    enum RoundStatus {
        None,
        Open,
        Finalized,
        Expired
    }

    /// @notice Why {submitBatch} skipped a signed commitment (see {CommitmentSkipped}).
    enum SkipReason {
        None,
        InvalidSignature,
        NotEligible,
        AlreadySubmitted,
        ZeroHash,
        ZeroSamples,
        TooManySamples
    }

    /**
     * @notice The parameters of a round, given to {openRound}.
     * @param deadline Unix time (seconds) of the last block in which commitments are accepted.
     * @param minUpdates Quorum: the least number of accepted updates to finalize (>= 1).
     * @param maxSamples The largest sample count (FedAvg weight) a commitment may declare (>= 1).
     * @param selectionRate 0: every eligible node takes part. Otherwise a node takes part iff
     *        `uint256(keccak256(abi.encode(seed, node))) >> 192 < selectionRate`, i.e. with
     *        probability `selectionRate / 2^64` (see {isSelected}).
     * @param relayCutoff Seconds before the deadline after which {submitBatch} is refused.
     */
    struct RoundParams {
        uint64 deadline;
        uint32 minUpdates;
        uint64 maxSamples;
        uint64 selectionRate;
        uint32 relayCutoff;
    }

    /**
     * @notice A round, as returned by {getRound}.
     * @param baseModelHash The model the round starts from.
     * @param configHash Hash of the round's configuration document (strategy, hyper-parameters...).
     * @param globalModelHash The model the round produced; zero unless finalized.
     * @param reportHash Hash of the round report (accepted/rejected updates and why); zero unless finalized.
     * @param accumulator The fold of every commitment so far (see {foldCommitment}).
     * @param seed The selection seed (`keccak256(abi.encode(block.prevrandao, roundId))` at opening); zero if not sampled.
     * @param deadline Unix time (seconds) of the last block in which commitments are accepted.
     * @param openedAt Block number in which the round was opened.
     * @param closedAt Block number in which the round was finalized or expired; 0 while open.
     * @param minUpdates Quorum: the least number of accepted updates to finalize.
     * @param eligibleCount Active nodes when the round opened (for a sampled round, before sampling).
     * @param commitCount How many nodes committed an update.
     * @param acceptedCount How many commitments the aggregator accepted; 0 unless finalized.
     * @param maxSamples The largest sample count a commitment may declare.
     * @param selectionRate See {RoundParams}; 0 when every eligible node takes part.
     * @param relayCutoff See {RoundParams}.
     * @param status The round's state.
     */
    struct Round {
        bytes32 baseModelHash;
        bytes32 configHash;
        bytes32 globalModelHash;
        bytes32 reportHash;
        bytes32 accumulator;
        bytes32 seed;
        uint64 deadline;
        uint64 openedAt;
        uint64 closedAt;
        uint32 minUpdates;
        uint32 eligibleCount;
        uint32 commitCount;
        uint32 acceptedCount;
        uint64 maxSamples;
        uint64 selectionRate;
        uint32 relayCutoff;
        RoundStatus status;
    }

    /**
     * @notice A commitment signed by its node, for {submitBatch}. The node signs the EIP-712
     * struct `Commitment(uint256 roundId,bytes32 updateHash,uint64 numSamples)` in this
     * contract's domain ({eip712Domain}: name "fedchain", version "2", chain id, this address).
     * @param r The signature's `r`.
     * @param vs The signature's `s` with `v - 27` in its top bit (EIP-2098 compact form).
     */
    struct SignedCommitment {
        bytes32 updateHash;
        uint64 numSamples;
        bytes32 r;
        bytes32 vs;
    }

    /// @notice One entry of a round's commitment list, for {checkCommitments}.
    struct CommitmentEntry {
        address node;
        bytes32 updateHash;
        uint64 numSamples;
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

    /// @notice `maxSamples` is zero.
    error InvalidMaxSamples(uint64 maxSamples);

    /// @notice An unsampled round cannot reach its quorum: only `eligibleCount` nodes may commit.
    error QuorumUnreachable(uint32 eligibleCount, uint32 minUpdates);

    /// @notice {openRound} was given `given` as base model, but the latest model is `expected`.
    error BaseModelMismatch(bytes32 expected, bytes32 given);

    /// @notice `node` may not commit in round `roundId`: it is not active, joined after the round
    /// opened, or was not selected.
    error NotEligible(uint256 roundId, address node);

    /// @notice `node` already committed an update in round `roundId`.
    error AlreadySubmitted(uint256 roundId, address node);

    /// @notice Round `roundId` stopped accepting commitments at `deadline`.
    error DeadlinePassed(uint256 roundId, uint64 deadline);

    /// @notice Round `roundId` stopped accepting relayed batches at `closedAt` (deadline - relayCutoff).
    error RelayClosed(uint256 roundId, uint64 closedAt);

    /// @notice A hash argument is zero.
    error ZeroHash();

    /// @notice A commitment declared `numSamples == 0`.
    error ZeroSamples();

    /// @notice A commitment declared `numSamples`, above round `roundId`'s cap `maxSamples`.
    error TooManySamples(uint256 roundId, uint64 numSamples, uint64 maxSamples);

    /// @notice {finalizeRound} was given fewer accepted updates than round `roundId`'s quorum.
    error QuorumNotReached(uint256 roundId, uint32 acceptedCount, uint32 minUpdates);

    /// @notice {finalizeRound} was given more accepted updates than round `roundId` has commitments.
    error AcceptedExceedsCommitments(uint256 roundId, uint32 acceptedCount, uint32 commitCount);

    /// @notice {finalizeRound} before `deadline` while only `commitCount` of `eligibleCount` nodes
    /// committed (or in a sampled round, whose eligible count is unknown).
    error CommitPhaseOpen(uint256 roundId, uint32 commitCount, uint32 eligibleCount, uint64 deadline);

    /// @notice Round `roundId` can be expired only once the block timestamp is past `expiresAt`.
    error ExpiryNotReached(uint256 roundId, uint64 expiresAt);

    /// @notice The constructor was given a grace period above {MAX_GRACE_PERIOD}.
    error InvalidGracePeriod(uint64 gracePeriod);

    /// @notice The genesis model was set to `modelHash`.
    event GenesisModelSet(bytes32 indexed modelHash);

    /// @notice Round `roundId` was opened with `params`; `eligibleCount` nodes may commit (before sampling).
    event RoundOpened(
        uint256 indexed roundId,
        bytes32 baseModelHash,
        bytes32 configHash,
        RoundParams params,
        uint32 eligibleCount,
        bytes32 seed
    );

    /// @notice `node` committed to the update `updateHash`, trained on `numSamples` samples, in round `roundId`.
    event UpdateSubmitted(uint256 indexed roundId, address indexed node, bytes32 updateHash, uint64 numSamples);

    /// @notice {submitBatch} skipped a commitment signed by `node` (zero if unrecoverable) for `reason`.
    event CommitmentSkipped(uint256 indexed roundId, address indexed node, SkipReason reason);

    /// @notice Round `roundId` was finalized: `globalModelHash` is the new latest model.
    event RoundFinalized(uint256 indexed roundId, bytes32 globalModelHash, bytes32 reportHash, uint32 acceptedCount);

    /// @notice Round `roundId` expired without being finalized; `expiredBy` sent the transaction.
    event RoundExpired(uint256 indexed roundId, address indexed expiredBy);

    /// @notice The role allowed to open and finalize rounds: `keccak256("AGGREGATOR_ROLE")`.
    function AGGREGATOR_ROLE() external view returns (bytes32);

    /// @notice The largest grace period the constructor accepts: 365 days.
    function MAX_GRACE_PERIOD() external view returns (uint64);

    /// @notice The EIP-712 type hash of {SignedCommitment}'s message:
    /// `keccak256("Commitment(uint256 roundId,bytes32 updateHash,uint64 numSamples)")`.
    function COMMITMENT_TYPEHASH() external view returns (bytes32);

    /**
     * @notice Sets the model the first round starts from.
     * @dev Requirements: caller has `DEFAULT_ADMIN_ROLE`; `modelHash` is not zero; the genesis
     * model was never set. Emits {GenesisModelSet}.
     */
    function setGenesisModel(bytes32 modelHash) external;

    /**
     * @notice Opens the next round.
     * @dev Requirements:
     * - caller has {AGGREGATOR_ROLE};
     * - `minUpdates >= 1`, `maxSamples >= 1`, `block.timestamp < deadline < 2^40`;
     * - unsampled rounds: at least `minUpdates` active nodes ({QuorumUnreachable});
     * - the current round, if any, is finalized or expired; if it is still open but
     *   `block.timestamp > deadline + gracePeriod`, it is expired first (emitting {RoundExpired}
     *   with `expiredBy == msg.sender`), otherwise the call reverts with {RoundStillOpen};
     * - the genesis model is set, and `baseModelHash` equals {latestModelHash};
     * - `configHash` is not zero.
     * Emits {RoundOpened}.
     * @return roundId The new round's id: the previous {currentRoundId} plus one.
     */
    function openRound(bytes32 baseModelHash, bytes32 configHash, RoundParams calldata params)
        external
        returns (uint256 roundId);

    /**
     * @notice Commits the caller's update to round `roundId`. The caller pays the gas.
     * @dev Requirements: round `roundId` is open; `block.timestamp <= deadline`; the caller is
     * eligible ({isEligible}); it has not committed in this round; `updateHash` is not zero;
     * `1 <= numSamples <= maxSamples`. Emits {UpdateSubmitted}.
     * @param updateHash The commitment to the update blob (a SHA-256 Merkle root, see the protocol).
     * @param numSamples The number of local samples the update was trained on (its FedAvg weight).
     */
    function submitUpdate(uint256 roundId, bytes32 updateHash, uint64 numSamples) external;

    /**
     * @notice Commits nodes' signed commitments to round `roundId` in one transaction. Anyone may
     * relay; the nodes need no ETH.
     * @dev Requirements: round `roundId` is open and `block.timestamp <= deadline - relayCutoff`
     * ({RelayClosed}). Each entry whose signer could not commit directly (see {submitUpdate}) is
     * skipped with {CommitmentSkipped} instead of reverting, so no node can sink a batch. The
     * others emit {UpdateSubmitted} exactly as a direct commitment does.
     * @return committed How many entries were committed.
     */
    function submitBatch(uint256 roundId, SignedCommitment[] calldata commitments) external returns (uint256 committed);

    /**
     * @notice Closes round `roundId` with its result, which becomes the latest model.
     * @dev Requirements: caller has {AGGREGATOR_ROLE}; round `roundId` is open;
     * `minUpdates <= acceptedCount <= commitCount`; neither hash is zero; and either the
     * deadline has passed, or the round is not sampled and `commitCount == eligibleCount`
     * ({CommitPhaseOpen}). Allowed until the round is expired. Emits {RoundFinalized}.
     */
    function finalizeRound(uint256 roundId, bytes32 newModelHash, bytes32 reportHash, uint32 acceptedCount) external;

    /**
     * @notice Closes round `roundId` without a result. Anyone may call it.
     * @dev Requirements: round `roundId` is open and `block.timestamp > deadline + gracePeriod`.
     * Emits {RoundExpired}.
     */
    function expireRound(uint256 roundId) external;

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

    /// @notice The last round in which `node` committed; 0 if never.
    function lastCommittedRound(address node) external view returns (uint256);

    /// @notice Whether `node` committed in round `roundId` (only answerable for its last committed round and later).
    function hasCommitted(uint256 roundId, address node) external view returns (bool);

    /// @notice Whether `node` passes round `roundId`'s selection (always true for an unsampled round).
    function isSelected(uint256 roundId, address node) external view returns (bool);

    /// @notice Whether `node` may commit in round `roundId` now: it is active, was admitted before
    /// the round opened, and is selected. (Says nothing about deadlines or an earlier commitment.)
    function isEligible(uint256 roundId, address node) external view returns (bool);

    /// @notice The accumulator a round starts from: `keccak256(abi.encode(block.chainid, address(this), roundId))`.
    function initialAccumulator(uint256 roundId) external view returns (bytes32);

    /// @notice One step of the accumulator: `keccak256(abi.encode(acc, node, updateHash, numSamples))`.
    function foldCommitment(bytes32 acc, address node, bytes32 updateHash, uint64 numSamples)
        external
        pure
        returns (bytes32);

    /**
     * @notice Whether `entries`, in commit order, is exactly round `roundId`'s commitment list so
     * far: as many entries as `commitCount`, and their fold equals the stored accumulator.
     */
    function checkCommitments(uint256 roundId, CommitmentEntry[] calldata entries) external view returns (bool);

    /// @notice The EIP-712 digest a node signs to commit `updateHash` with `numSamples` in round `roundId`.
    function commitmentDigest(uint256 roundId, bytes32 updateHash, uint64 numSamples) external view returns (bytes32);
}
