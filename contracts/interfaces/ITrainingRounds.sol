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
 *    its {RoundParams}: deadline, quorum, sample cap, optional selection rate, relay cut-off, and
 *    for a secure round the unmasking threshold and window. The contract snapshots how many nodes
 *    are eligible, and for a sampled round takes a seed. At most one round is open at a time;
 *    round ids are 1, 2, 3, ... in opening order.
 * 2. Until the deadline (inclusive), each eligible node commits once, with the hash of its update
 *    and its sample count (at most the round's `maxSamples`): directly with {submitUpdate}, or
 *    as an EIP-712 `Commitment` that anyone (normally the aggregator) relays in a {submitBatch}.
 *    Relays stop `relayCutoff` seconds before the deadline, so a node that a relayer left out
 *    can still commit itself. If the round has a `closeWindow`, the commitment that brings the
 *    count to `minUpdates` brings the deadline forward so that commitments stay open for
 *    `closeWindow` seconds of block time, its own block's second the first of them
 *    ({DeadlineBroughtForward}): a round with enough commitments does not wait the whole
 *    deadline for nodes that dropped out, and the rest still have the window. A commitment is folded into the round's accumulator
 *    `acc = keccak256(abi.encode(acc, node, updateHash, numSamples))`; the list itself is in the
 *    {UpdateSubmitted} events, and {checkCommitments} tells whether a claimed list is the one.
 *    In a secure round (`threshold != 0`) the committed update is masked (double masking,
 *    Bonawitz et al. 2017); steps 2a and 2b follow before the round may be finalized.
 * 2a. Secure rounds: once the commit phase is closed (the same rule as for {finalizeRound}), the
 *    aggregator calls {sealCommitments} once, with the committers whose masked blob it does not
 *    hold or found malformed (ascending by address). The survivors (every other committer) are
 *    then final on-chain, so every node sees the same set ({isSurvivor}). An excluded node holds
 *    the aggregator's signed upload receipt and can contest the exclusion off-chain.
 * 2b. Secure rounds: until `unmaskDeadline = deadline + unmaskWindow` (inclusive), each survivor
 *    posts once the hash of its unmasking blob: directly with {submitUnmask}, or as an EIP-712
 *    `Unmask` relayed in a {submitUnmaskBatch} (relays stop `relayCutoff` seconds before
 *    `unmaskDeadline`). Each post is folded into the round's unmask accumulator
 *    `acc = keccak256(abi.encode(acc, node, unmaskHash))`; the list is in the {UnmaskSubmitted}
 *    events.
 * 3. The aggregator calls {finalizeRound} with the new model's hash, the hash of the round
 *    report and how many commitments it accepted (at least the quorum). Before the deadline
 *    that is allowed only if every eligible node has committed (and never for a sampled round,
 *    whose size the contract cannot count): an aggregator cannot shut out a slow node. A secure
 *    round must also be sealed and hold at least `threshold` unmasking posts, and the accepted
 *    updates are at most its survivors.
 * 4. If the round is still open once `deadline + gracePeriod` (a secure round:
 *    `unmaskDeadline + gracePeriod`) has passed, anyone may call {expireRound}: the federation
 *    never stalls on an absent aggregator, and the next round starts again from the latest model.
 *
 * A finalized or expired round never changes again. Every state change emits an event.
 * No function iterates over nodes or rounds; {submitBatch}, {sealCommitments},
 * {submitUnmaskBatch} and {checkCommitments} loop over their own calldata only.
 */
interface ITrainingRounds {
    /// @notice The state of a round. `None` is the state of an id that was never opened.
    enum RoundStatus {
        None,
        Open,
        Finalized,
        Expired
    }

    /// @notice Why {submitBatch} skipped a signed commitment (see {CommitmentSkipped}), or
    /// {submitUnmaskBatch} a signed unmasking post (see {UnmaskSkipped}: `NotEligible` there means
    /// "not a survivor", `AlreadySubmitted` "already posted").
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
     * @param relayCutoff Seconds before the deadline after which {submitBatch} is refused (and, in
     *        a secure round, seconds before `unmaskDeadline` after which {submitUnmaskBatch} is).
     * @param threshold 0: a transparent round. Otherwise a secure round, and the least number of
     *        unmasking posts (t of the t-of-n secret sharing) needed to finalize it; for an
     *        unsampled round at most the eligible count.
     * @param unmaskWindow Secure rounds: seconds after the deadline until which unmasking posts are
     *        accepted (`unmaskDeadline = deadline + unmaskWindow`, >= 1, below 2^40). Transparent
     *        rounds: 0. Computed from the deadline given here: bringing the deadline forward (see
     *        `closeWindow`) does not shorten the unmask phase.
     * @param closeWindow 0: commitments are accepted until `deadline`. Otherwise the commitment
     *        that brings the count to `minUpdates` sets the deadline to
     *        `min(deadline, block.timestamp + closeWindow - 1)` ({DeadlineBroughtForward}):
     *        the window's `closeWindow` seconds are that block's second and the ones after it.
     *        Must exceed `relayCutoff`, so relays and the direct path both stay open after it.
     */
    struct RoundParams {
        uint64 deadline;
        uint32 minUpdates;
        uint64 maxSamples;
        uint64 selectionRate;
        uint32 relayCutoff;
        uint32 threshold;
        uint32 unmaskWindow;
        uint32 closeWindow;
    }

    /**
     * @notice A round, as returned by {getRound}.
     * @param baseModelHash The model the round starts from.
     * @param configHash Hash of the round's configuration document (strategy, hyper-parameters...).
     * @param globalModelHash The model the round produced; zero unless finalized.
     * @param reportHash Hash of the round report (accepted/rejected updates and why); zero unless finalized.
     * @param accumulator The fold of every commitment so far (see {foldCommitment}).
     * @param seed The selection seed (`keccak256(abi.encode(block.prevrandao, roundId))` at opening); zero if not sampled.
     * @param deadline Unix time (seconds) of the last block in which commitments are accepted
     *        (earlier than the deadline given at opening once {DeadlineBroughtForward} was emitted).
     * @param openedAt Block number in which the round was opened.
     * @param closedAt Block number in which the round was finalized or expired; 0 while open.
     * @param minUpdates Quorum: the least number of accepted updates to finalize.
     * @param eligibleCount Active nodes when the round opened (for a sampled round, before sampling).
     * @param commitCount How many nodes committed an update.
     * @param acceptedCount How many commitments the aggregator accepted; 0 unless finalized.
     * @param maxSamples The largest sample count a commitment may declare.
     * @param selectionRate See {RoundParams}; 0 when every eligible node takes part.
     * @param relayCutoff See {RoundParams}.
     * @param closeWindow See {RoundParams}.
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
        uint32 closeWindow;
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

    /**
     * @notice An unmasking post signed by its node, for {submitUnmaskBatch}. The node signs the
     * EIP-712 struct `Unmask(uint256 roundId,bytes32 unmaskHash)` in this contract's domain
     * (the same as {SignedCommitment}'s).
     * @param unmaskHash The commitment hash of the node's unmasking blob.
     * @param r The signature's `r`.
     * @param vs The signature's `s` with `v - 27` in its top bit (EIP-2098 compact form).
     */
    struct SignedUnmask {
        bytes32 unmaskHash;
        bytes32 r;
        bytes32 vs;
    }

    /**
     * @notice The unmask phase of a secure round, as returned by {getUnmaskPhase}. Every field is
     * zero for a transparent round (`threshold == 0` tells them apart).
     * @param threshold The least number of unmasking posts to finalize (see {RoundParams}).
     * @param unmaskDeadline Unix time (seconds) of the last block in which unmasking posts are accepted.
     * @param isSealed Whether {sealCommitments} fixed the survivors.
     * @param sealedAt Block number of the {sealCommitments} transaction; 0 until sealed.
     * @param survivorCount Committers not excluded at sealing; 0 until sealed.
     * @param unmaskCount How many survivors posted their unmasking hash.
     * @param unmaskAccumulator The fold of every unmasking post so far (see {foldUnmask}),
     *        {initialUnmaskAccumulator} at sealing; zero until sealed.
     */
    struct UnmaskPhase {
        uint32 threshold;
        uint64 unmaskDeadline;
        bool isSealed;
        uint64 sealedAt;
        uint32 survivorCount;
        uint32 unmaskCount;
        bytes32 unmaskAccumulator;
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

    /// @notice {finalizeRound} was given more accepted updates than round `roundId` has commitments
    /// (in a secure round: survivors, and the last argument is `survivorCount`).
    error AcceptedExceedsCommitments(uint256 roundId, uint32 acceptedCount, uint32 commitCount);

    /// @notice {finalizeRound} or {sealCommitments} before `deadline` while only `commitCount` of
    /// `eligibleCount` nodes committed (or in a sampled round, whose eligible count is unknown).
    error CommitPhaseOpen(uint256 roundId, uint32 commitCount, uint32 eligibleCount, uint64 deadline);

    /// @notice Round `roundId` can be expired only once the block timestamp is past `expiresAt`.
    error ExpiryNotReached(uint256 roundId, uint64 expiresAt);

    /// @notice {openRound} was given a non-zero `closeWindow` that does not exceed `relayCutoff`:
    /// bringing the deadline forward would close the relay at once.
    error InvalidCloseWindow(uint32 closeWindow, uint32 relayCutoff);

    /// @notice The constructor was given a grace period above {MAX_GRACE_PERIOD}.
    error InvalidGracePeriod(uint64 gracePeriod);

    /// @notice {openRound} of an unsampled secure round asked for `threshold` unmasking posts, but
    /// only `eligibleCount` nodes may commit.
    error InvalidThreshold(uint32 threshold, uint32 eligibleCount);

    /// @notice {openRound} was given `unmaskWindow`: not 0 for a transparent round; 0, or beyond
    /// 2^40 - 1 seconds once added to the deadline, for a secure round.
    error InvalidUnmaskWindow(uint32 unmaskWindow);

    /// @notice Round `roundId` is transparent (`threshold == 0`): it has no unmask phase.
    error NotSecureRound(uint256 roundId);

    /// @notice {sealCommitments} was called a second time for round `roundId`.
    error AlreadySealed(uint256 roundId);

    /// @notice Round `roundId`'s commitments are not sealed yet ({sealCommitments}).
    error NotSealed(uint256 roundId);

    /// @notice Round `roundId` stopped accepting seals and unmasking posts at `unmaskDeadline`.
    error UnmaskPhaseOver(uint256 roundId, uint64 unmaskDeadline);

    /// @notice {sealCommitments}: the excluded address at `index` is not above the one before it
    /// (the list must be strictly ascending, hence free of duplicates).
    error ExclusionsNotSorted(uint256 index);

    /// @notice {sealCommitments} named `expected` commitments, but round `roundId` holds `commitCount`:
    /// a commitment landed after the caller read the list it checked. Read the list again.
    error CommitmentsChanged(uint256 roundId, uint32 expected, uint32 commitCount);

    /// @notice {sealCommitments} was asked to exclude `node`, which did not commit in round `roundId`.
    error NotCommitted(uint256 roundId, address node);

    /// @notice {sealCommitments} would leave round `roundId` only `survivors` committers, fewer than
    /// `needed` (the larger of its threshold and its quorum).
    error TooFewSurvivors(uint256 roundId, uint32 survivors, uint32 needed);

    /// @notice `node` is not a survivor of round `roundId`: it did not commit, or it was excluded.
    error NotSurvivor(uint256 roundId, address node);

    /// @notice `node` already posted its unmasking hash in round `roundId`.
    error AlreadyUnmasked(uint256 roundId, address node);

    /// @notice {finalizeRound} of secure round `roundId` with only `unmaskCount` of the `threshold`
    /// unmasking posts it needs.
    error TooFewUnmasks(uint256 roundId, uint32 unmaskCount, uint32 threshold);

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

    /// @notice Round `roundId` reached its quorum of commitments, and its `closeWindow` brought its
    /// deadline forward to `deadline`: commitments are accepted until then.
    event DeadlineBroughtForward(uint256 indexed roundId, uint64 deadline);

    /// @notice {submitBatch} skipped a commitment signed by `node` (zero if unrecoverable) for `reason`.
    event CommitmentSkipped(uint256 indexed roundId, address indexed node, SkipReason reason);

    /// @notice Round `roundId` was finalized: `globalModelHash` is the new latest model.
    event RoundFinalized(uint256 indexed roundId, bytes32 globalModelHash, bytes32 reportHash, uint32 acceptedCount);

    /// @notice Round `roundId` expired without being finalized; `expiredBy` sent the transaction.
    event RoundExpired(uint256 indexed roundId, address indexed expiredBy);

    /// @notice {sealCommitments} excluded `node`'s commitment from secure round `roundId`: it is not
    /// a survivor and may not post an unmasking hash.
    event CommitmentExcluded(uint256 indexed roundId, address indexed node);

    /// @notice The survivors of secure round `roundId` were fixed: `survivorCount` committers, after
    /// excluding `excludedCount`; unmasking posts are accepted until `unmaskDeadline`.
    event CommitmentsSealed(uint256 indexed roundId, uint32 survivorCount, uint32 excludedCount, uint64 unmaskDeadline);

    /// @notice Survivor `node` posted the hash `unmaskHash` of its unmasking blob in round `roundId`.
    event UnmaskSubmitted(uint256 indexed roundId, address indexed node, bytes32 unmaskHash);

    /// @notice {submitUnmaskBatch} skipped a post signed by `node` (zero if unrecoverable) for `reason`.
    event UnmaskSkipped(uint256 indexed roundId, address indexed node, SkipReason reason);

    /// @notice The role allowed to open and finalize rounds: `keccak256("AGGREGATOR_ROLE")`.
    function AGGREGATOR_ROLE() external view returns (bytes32);

    /// @notice The largest grace period the constructor accepts: 365 days.
    function MAX_GRACE_PERIOD() external view returns (uint64);

    /// @notice The EIP-712 type hash of {SignedCommitment}'s message:
    /// `keccak256("Commitment(uint256 roundId,bytes32 updateHash,uint64 numSamples)")`.
    function COMMITMENT_TYPEHASH() external view returns (bytes32);

    /// @notice The EIP-712 type hash of {SignedUnmask}'s message:
    /// `keccak256("Unmask(uint256 roundId,bytes32 unmaskHash)")`.
    function UNMASK_TYPEHASH() external view returns (bytes32);

    /// @notice Separates the unmask accumulator from the commitment accumulator:
    /// `keccak256("fedchain/unmask")` (see {initialUnmaskAccumulator}).
    function UNMASK_DOMAIN() external view returns (bytes32);

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
     * - transparent rounds (`threshold == 0`): `unmaskWindow == 0`; secure rounds:
     *   `unmaskWindow >= 1` and `deadline + unmaskWindow < 2^40` ({InvalidUnmaskWindow});
     * - `closeWindow == 0` or `closeWindow > relayCutoff` ({InvalidCloseWindow});
     * - unsampled rounds: at least `minUpdates` active nodes ({QuorumUnreachable}), and for a
     *   secure round at least `threshold` ({InvalidThreshold});
     * - the current round, if any, is finalized or expired; if it is still open but
     *   its expiry time has passed (see {expireRound}), it is expired first (emitting {RoundExpired}
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
     * `1 <= numSamples <= maxSamples`. Emits {UpdateSubmitted}, and {DeadlineBroughtForward} if
     * this commitment is the round's `minUpdates`-th and its `closeWindow` ends before the deadline.
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
     * others emit {UpdateSubmitted} exactly as a direct commitment does; if the batch takes the
     * count to `minUpdates` or past it, the `closeWindow` runs from this block, as for {submitUpdate}.
     * @return committed How many entries were committed.
     */
    function submitBatch(uint256 roundId, SignedCommitment[] calldata commitments) external returns (uint256 committed);

    /**
     * @notice Fixes the survivors of secure round `roundId`: every committer except `excluded`,
     * the committers whose masked update blob the aggregator does not hold or found malformed.
     * @dev Requirements: caller has {AGGREGATOR_ROLE}; round `roundId` is open ({UnknownRound},
     * {RoundNotOpen}) and secure ({NotSecureRound}); not sealed yet ({AlreadySealed}); the commit
     * phase is closed, by the same rule as {finalizeRound} ({CommitPhaseOpen});
     * `block.timestamp <= unmaskDeadline` ({UnmaskPhaseOver}); `excluded` is strictly ascending
     * ({ExclusionsNotSorted}) and each of its addresses committed in this round ({NotCommitted});
     * at least `max(threshold, minUpdates)` survivors remain ({TooFewSurvivors}).
     * `commitCount` is the number of commitments in the list the caller checked; the round must
     * hold exactly that many ({CommitmentsChanged}). Commitments are only ever added, one per node,
     * so an equal count is the same list: the caller may seal as soon as its clock says the
     * deadline passed, and a commitment that landed after it read the list cannot slip into the
     * survivors unchecked.
     * Emits {CommitmentExcluded} for each excluded node, then {CommitmentsSealed}.
     */
    function sealCommitments(uint256 roundId, address[] calldata excluded, uint32 commitCount) external;

    /**
     * @notice Posts the caller's unmasking hash to secure round `roundId`. The caller pays the gas.
     * @dev Requirements: round `roundId` is open, secure ({NotSecureRound}) and sealed
     * ({NotSealed}); `block.timestamp <= unmaskDeadline` ({UnmaskPhaseOver}); `unmaskHash` is not
     * zero; the caller is a survivor ({NotSurvivor}) and has not posted in this round
     * ({AlreadyUnmasked}). Emits {UnmaskSubmitted}.
     * @param unmaskHash The commitment hash of the node's unmasking blob (its shares for the
     * survivors' self-masks and the dropped nodes' pairwise masks).
     */
    function submitUnmask(uint256 roundId, bytes32 unmaskHash) external;

    /**
     * @notice Posts survivors' signed unmasking hashes to secure round `roundId` in one
     * transaction. Anyone may relay.
     * @dev Requirements: round `roundId` is open, secure ({NotSecureRound}) and sealed
     * ({NotSealed}), and `block.timestamp <= unmaskDeadline - relayCutoff` ({RelayClosed}), so a
     * node that a relayer left out can still post itself. Each entry whose signer could not post
     * directly (see {submitUnmask}) is skipped with {UnmaskSkipped} instead of reverting. The
     * others emit {UnmaskSubmitted} exactly as a direct post does.
     * @return posted How many entries were posted.
     */
    function submitUnmaskBatch(uint256 roundId, SignedUnmask[] calldata posts) external returns (uint256 posted);

    /**
     * @notice Closes round `roundId` with its result, which becomes the latest model.
     * @dev Requirements: caller has {AGGREGATOR_ROLE}; round `roundId` is open;
     * `minUpdates <= acceptedCount <= commitCount`; neither hash is zero; and either the
     * deadline has passed, or the round is not sampled and `commitCount == eligibleCount`
     * ({CommitPhaseOpen}). A secure round must also be sealed ({NotSealed}), hold at least
     * `threshold` unmasking posts ({TooFewUnmasks}), and `acceptedCount <= survivorCount`
     * ({AcceptedExceedsCommitments}). Allowed until the round is expired. Emits {RoundFinalized}.
     */
    function finalizeRound(uint256 roundId, bytes32 newModelHash, bytes32 reportHash, uint32 acceptedCount) external;

    /**
     * @notice Closes round `roundId` without a result. Anyone may call it.
     * @dev Requirements: round `roundId` is open and `block.timestamp > deadline + gracePeriod`
     * (a secure round: `block.timestamp > unmaskDeadline + gracePeriod`). Emits {RoundExpired}.
     */
    function expireRound(uint256 roundId) external;

    /// @notice Seconds after a round's deadline (a secure round's `unmaskDeadline`) during which
    /// only the aggregator can close it.
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

    /// @notice The unmask phase of round `roundId`; every field is zero for a transparent round.
    /// Reverts with {UnknownRound} for an id that was never opened.
    function getUnmaskPhase(uint256 roundId) external view returns (UnmaskPhase memory);

    /// @notice Whether `node` is a survivor of round `roundId`: the round is secure and sealed,
    /// `node` committed in it and was not excluded. Like {hasCommitted}, only answerable while
    /// `roundId` is the node's last committed round (the events keep the full history).
    function isSurvivor(uint256 roundId, address node) external view returns (bool);

    /// @notice Whether `node` posted its unmasking hash in round `roundId` (only answerable for the
    /// last round in which it posted, and later).
    function hasUnmasked(uint256 roundId, address node) external view returns (bool);

    /// @notice The unmask accumulator a secure round starts from at sealing:
    /// `keccak256(abi.encode(block.chainid, address(this), roundId, UNMASK_DOMAIN))`.
    function initialUnmaskAccumulator(uint256 roundId) external view returns (bytes32);

    /// @notice One step of the unmask accumulator: `keccak256(abi.encode(acc, node, unmaskHash))`.
    function foldUnmask(bytes32 acc, address node, bytes32 unmaskHash) external pure returns (bytes32);

    /// @notice The EIP-712 digest a node signs to post `unmaskHash` in round `roundId`.
    function unmaskDigest(uint256 roundId, bytes32 unmaskHash) external view returns (bytes32);
}
