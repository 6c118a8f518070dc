// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {NodeRegistry} from "./NodeRegistry.sol";
import {ITrainingRounds} from "./interfaces/ITrainingRounds.sol";

/**
 * @title TrainingRounds
 * @notice Training rounds of a fedchain federation, its node registry and the nodes'
 * commitments. See {ITrainingRounds} and {INodeRegistry}.
 *
 * Storage layout, chosen for the gas of a commitment (see docs/gas.md):
 *
 * - `_rounds[roundId]`: slot 0 packs everything a commitment reads or writes (deadline, status,
 *   commitment counter, close window, quorum, sample cap, relay cut-off, sampled and secure
 *   flags); slot 1 the rest of the scalars (the eligible count among them: only closing a round
 *   before its deadline reads it); then one slot per hash, the accumulator and (sampled rounds only) the seed; then
 *   (secure rounds only) one slot for the unmask phase's scalars and one for its accumulator.
 *   The base model is not stored: it is the model of round `baseRoundId` (or the genesis model
 *   when 0). A transparent round never reads or writes the secure slots.
 * - `_nodes[node]` (in {NodeRegistry}): slot 0 packs membership, `lastCommittedRound` (the
 *   double-commit guard), `lastExcludedRound` and `lastUnmaskRound` (the double-post guard), so
 *   a commitment or an unmasking post reads and writes one slot for its node.
 * - No per-(round, node) storage: the commitment and unmasking lists are in the events, checked
 *   against their accumulators.
 *
 * Invariant: a round is `Open` only while it is the current round (opening the next round
 * requires the current one to be closed), so the hot paths do not read `_currentRoundId`.
 */
contract TrainingRounds is ITrainingRounds, NodeRegistry, EIP712 {
    /// @inheritdoc ITrainingRounds
    bytes32 public constant AGGREGATOR_ROLE = keccak256("AGGREGATOR_ROLE");

    /// @inheritdoc ITrainingRounds
    uint64 public constant MAX_GRACE_PERIOD = 365 days;

    /// @inheritdoc ITrainingRounds
    bytes32 public constant COMMITMENT_TYPEHASH =
        keccak256("Commitment(uint256 roundId,bytes32 updateHash,uint64 numSamples)");

    /// @inheritdoc ITrainingRounds
    bytes32 public constant UNMASK_TYPEHASH = keccak256("Unmask(uint256 roundId,bytes32 unmaskHash)");

    /// @inheritdoc ITrainingRounds
    bytes32 public constant UNMASK_DOMAIN = keccak256("fedchain/unmask");

    /**
     * @dev A round in storage. Slot 0 (256 bits) is all a commitment needs; slot 1 packs the
     * rest. Timestamps and block numbers fit 40 bits until year 36812 (resp. block 1.1e12).
     * Slots 7 and 8 are written only for a secure round (`secure`, in slot 0, says which).
     */
    struct RoundRecord {
        // slot 0
        uint40 deadline;
        RoundStatus status;
        bool sampled;
        uint32 commitCount;
        uint32 closeWindow;
        uint32 minUpdates;
        uint64 maxSamples;
        uint32 relayCutoff;
        bool secure;
        // slot 1
        uint40 openedAt;
        uint40 closedAt;
        uint32 baseRoundId;
        uint32 acceptedCount;
        uint64 selectionRate;
        uint32 eligibleCount;
        // one slot each
        bytes32 configHash;
        bytes32 globalModelHash;
        bytes32 reportHash;
        bytes32 accumulator;
        bytes32 seed;
        // slot 7: secure rounds only (written at opening, then by the seal and each post)
        uint40 unmaskDeadline;
        uint40 sealedAt;
        uint32 threshold;
        uint32 survivorCount;
        uint32 unmaskCount;
        bool isSealed;
        // slot 8: secure rounds only, written non-zero at sealing
        bytes32 unmaskAccumulator;
    }

    /// @dev What a batch entry is checked against, read from the round once per batch.
    struct Limits {
        uint64 maxSamples;
        bool sampled;
    }

    /// @dev secp256k1's group order n, halved: signatures with a larger s are rejected (EIP-2).
    uint256 private constant _HALF_ORDER = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    uint64 private immutable _gracePeriod;

    bytes32 private _genesisModelHash;

    // One slot.
    uint32 private _currentRoundId;
    uint32 private _lastFinalizedRoundId;

    mapping(uint256 roundId => RoundRecord) private _rounds;

    /**
     * @param admin Receives `DEFAULT_ADMIN_ROLE` (it grants {AGGREGATOR_ROLE} and sets the genesis
     * model) and `REGISTRAR_ROLE`.
     * @param grace The grace period: seconds after a deadline before anyone may expire a round; at
     * most {MAX_GRACE_PERIOD}.
     */
    constructor(address admin, uint64 grace) NodeRegistry(admin) EIP712("fedchain", "2") {
        if (grace > MAX_GRACE_PERIOD) revert InvalidGracePeriod(grace);
        _gracePeriod = grace;
    }

    // --- admin ---------------------------------------------------------------------------------

    /// @inheritdoc ITrainingRounds
    function setGenesisModel(bytes32 modelHash) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (modelHash == bytes32(0)) revert ZeroHash();
        if (_genesisModelHash != bytes32(0)) revert GenesisAlreadySet();
        _genesisModelHash = modelHash;
        emit GenesisModelSet(modelHash);
    }

    // --- aggregator ----------------------------------------------------------------------------

    /// @inheritdoc ITrainingRounds
    function openRound(bytes32 baseModelHash, bytes32 configHash, RoundParams calldata params)
        external
        onlyRole(AGGREGATOR_ROLE)
        returns (uint256 roundId)
    {
        uint32 minUpdates = params.minUpdates;
        if (minUpdates == 0) revert InvalidMinUpdates(minUpdates);
        if (params.maxSamples == 0) revert InvalidMaxSamples(params.maxSamples);
        if (params.deadline <= block.timestamp || params.deadline > type(uint40).max) {
            revert InvalidDeadline(params.deadline);
        }
        if (configHash == bytes32(0)) revert ZeroHash();
        uint32 closeWindow = params.closeWindow;
        if (closeWindow != 0 && closeWindow <= params.relayCutoff) {
            revert InvalidCloseWindow(closeWindow, params.relayCutoff);
        }
        uint32 threshold = params.threshold;
        uint40 unmaskDeadline = _unmaskDeadline(params, threshold);
        // Active nodes all joined before this round: they are its eligible set.
        uint32 eligible = SafeCast.toUint32(nodeCount());
        if (params.selectionRate == 0) {
            if (eligible < minUpdates) revert QuorumUnreachable(eligible, minUpdates);
            if (threshold > eligible) revert InvalidThreshold(threshold, eligible);
        }

        uint32 id = _advance(baseModelHash);
        RoundRecord storage round = _rounds[id];
        bytes32 seed = _initRound(round, id, configHash, params, eligible);
        if (threshold != 0) {
            round.secure = true;
            round.unmaskDeadline = unmaskDeadline;
            round.threshold = threshold;
        }
        emit RoundOpened(id, baseModelHash, configHash, params, eligible, seed);
        return id;
    }

    /// @inheritdoc ITrainingRounds
    function finalizeRound(uint256 roundId, bytes32 newModelHash, bytes32 reportHash, uint32 acceptedCount)
        external
        onlyRole(AGGREGATOR_ROLE)
    {
        if (newModelHash == bytes32(0) || reportHash == bytes32(0)) revert ZeroHash();
        RoundRecord storage round = _openRound(roundId);
        uint32 minUpdates = round.minUpdates;
        bool secure = round.secure;
        if (acceptedCount < minUpdates) revert QuorumNotReached(roundId, acceptedCount, minUpdates);
        if (secure) {
            // Sealing required the commit phase to be closed, so CommitPhaseOpen cannot follow.
            _checkUnmasked(round, roundId, acceptedCount);
        } else {
            uint32 commitCount = round.commitCount;
            if (acceptedCount > commitCount) revert AcceptedExceedsCommitments(roundId, acceptedCount, commitCount);
            _checkCommitPhaseClosed(round, roundId);
        }

        round.closedAt = SafeCast.toUint40(block.number);
        round.acceptedCount = acceptedCount;
        round.status = RoundStatus.Finalized;
        round.globalModelHash = newModelHash;
        round.reportHash = reportHash;
        // An open round is the current round, whose id fits 32 bits.
        _lastFinalizedRoundId = uint32(roundId);

        emit RoundFinalized(roundId, newModelHash, reportHash, acceptedCount);
    }

    /// @inheritdoc ITrainingRounds
    function sealCommitments(uint256 roundId, address[] calldata excluded, uint32 commitCount)
        external
        onlyRole(AGGREGATOR_ROLE)
    {
        RoundRecord storage round = _openRound(roundId);
        if (!round.secure) revert NotSecureRound(roundId);
        if (round.isSealed) revert AlreadySealed(roundId);
        _checkCommitPhaseClosed(round, roundId);
        uint40 unmaskDeadline = round.unmaskDeadline;
        if (block.timestamp > unmaskDeadline) revert UnmaskPhaseOver(roundId, unmaskDeadline);
        // The list the caller checked is the list there is: with the commit phase closed the count
        // no longer changes, and commitments are only added (one per node), so equal counts are
        // equal lists.
        uint32 committed = round.commitCount;
        if (committed != commitCount) revert CommitmentsChanged(roundId, commitCount, committed);

        uint256 n = excluded.length;
        address previous = address(0);
        for (uint256 i = 0; i < n;) {
            address node = excluded[i];
            // Strictly ascending: no duplicates, without any storage to remember them.
            if (i != 0 && node <= previous) revert ExclusionsNotSorted(i);
            NodeRecord storage record = _nodes[node];
            // `lastCommittedRound` only grows and the round is the current one: equality is exact.
            if (record.lastCommittedRound != roundId) revert NotCommitted(roundId, node);
            // An open round is the current round, whose id fits 32 bits.
            record.lastExcludedRound = uint32(roundId);
            emit CommitmentExcluded(roundId, node);
            previous = node;
            unchecked {
                ++i;
            }
        }
        // Each excluded address is a distinct committer of this round, so n <= committed.
        uint32 survivors = committed - uint32(n);
        uint32 needed = round.threshold;
        uint32 minUpdates = round.minUpdates;
        if (minUpdates > needed) needed = minUpdates;
        if (survivors < needed) revert TooFewSurvivors(roundId, survivors, needed);

        round.isSealed = true;
        round.sealedAt = SafeCast.toUint40(block.number);
        round.survivorCount = survivors;
        // Non-zero from the start, so that the first post does not pay for a new slot.
        round.unmaskAccumulator = _initialUnmaskAccumulator(roundId);
        emit CommitmentsSealed(roundId, survivors, uint32(n), unmaskDeadline);
    }

    // --- anyone ----------------------------------------------------------------------------------

    /// @inheritdoc ITrainingRounds
    function expireRound(uint256 roundId) external {
        RoundRecord storage round = _openRound(roundId);
        uint64 expiresAt = _expiresAt(round);
        if (block.timestamp <= expiresAt) revert ExpiryNotReached(roundId, expiresAt);
        _expire(round, roundId);
    }

    /// @inheritdoc ITrainingRounds
    function submitBatch(uint256 roundId, SignedCommitment[] calldata commitments)
        external
        returns (uint256 committed)
    {
        RoundRecord storage round = _openRound(roundId);
        uint40 deadline = round.deadline;
        uint32 cutoff = round.relayCutoff;
        // A cut-off at least as long as the whole round means relaying is never open.
        uint64 closesAt = cutoff >= deadline ? 0 : deadline - cutoff;
        if (block.timestamp > closesAt) revert RelayClosed(roundId, closesAt);
        bytes32 acc = round.accumulator;
        Limits memory limits = Limits(round.maxSamples, round.sampled);
        uint256 n = commitments.length;
        for (uint256 i = 0; i < n;) {
            bool ok;
            (acc, ok) = _relay(roundId, commitments[i], acc, limits);
            unchecked {
                if (ok) ++committed;
                ++i;
            }
        }
        if (committed != 0) {
            round.accumulator = acc;
            uint32 before = round.commitCount;
            // At most one commitment per active node, and nodes are counted in 64 bits.
            uint32 count = before + SafeCast.toUint32(committed);
            round.commitCount = count;
            uint32 minUpdates = round.minUpdates;
            if (before < minUpdates && count >= minUpdates) _bringDeadlineForward(round, roundId);
        }
    }

    /// @inheritdoc ITrainingRounds
    function submitUnmaskBatch(uint256 roundId, SignedUnmask[] calldata posts) external returns (uint256 posted) {
        RoundRecord storage round = _sealedRound(roundId);
        uint40 unmaskDeadline = round.unmaskDeadline;
        uint32 cutoff = round.relayCutoff;
        uint64 closesAt = cutoff >= unmaskDeadline ? 0 : unmaskDeadline - cutoff;
        if (block.timestamp > closesAt) revert RelayClosed(roundId, closesAt);
        bytes32 acc = round.unmaskAccumulator;
        uint256 n = posts.length;
        for (uint256 i = 0; i < n;) {
            bool ok;
            (acc, ok) = _relayUnmask(roundId, posts[i], acc);
            unchecked {
                if (ok) ++posted;
                ++i;
            }
        }
        if (posted != 0) {
            round.unmaskAccumulator = acc;
            // At most one post per survivor, and survivors are counted in 32 bits.
            round.unmaskCount += uint32(posted);
        }
    }

    // --- nodes ---------------------------------------------------------------------------------

    /// @inheritdoc ITrainingRounds
    function submitUpdate(uint256 roundId, bytes32 updateHash, uint64 numSamples) external {
        RoundRecord storage round = _openRound(roundId);
        uint40 deadline = round.deadline;
        if (block.timestamp > deadline) revert DeadlinePassed(roundId, deadline);
        SkipReason reason = _check(roundId, msg.sender, updateHash, numSamples, round.maxSamples, round.sampled);
        if (reason != SkipReason.None) _revertFor(reason, roundId, msg.sender, numSamples, round.maxSamples);

        _nodes[msg.sender].lastCommittedRound = uint32(roundId);
        round.accumulator = _fold(round.accumulator, msg.sender, updateHash, numSamples);
        uint32 count = round.commitCount + 1;
        round.commitCount = count;

        emit UpdateSubmitted(roundId, msg.sender, updateHash, numSamples);
        if (count == round.minUpdates) _bringDeadlineForward(round, roundId);
    }

    /// @inheritdoc ITrainingRounds
    function submitUnmask(uint256 roundId, bytes32 unmaskHash) external {
        RoundRecord storage round = _sealedRound(roundId);
        uint40 unmaskDeadline = round.unmaskDeadline;
        if (block.timestamp > unmaskDeadline) revert UnmaskPhaseOver(roundId, unmaskDeadline);
        SkipReason reason = _checkUnmask(roundId, msg.sender, unmaskHash);
        if (reason != SkipReason.None) {
            if (reason == SkipReason.ZeroHash) revert ZeroHash();
            if (reason == SkipReason.AlreadySubmitted) revert AlreadyUnmasked(roundId, msg.sender);
            revert NotSurvivor(roundId, msg.sender);
        }

        _nodes[msg.sender].lastUnmaskRound = uint32(roundId);
        round.unmaskAccumulator = _foldUnmask(round.unmaskAccumulator, msg.sender, unmaskHash);
        ++round.unmaskCount;

        emit UnmaskSubmitted(roundId, msg.sender, unmaskHash);
    }

    // --- views ---------------------------------------------------------------------------------

    /// @inheritdoc ITrainingRounds
    function gracePeriod() external view returns (uint64) {
        return _gracePeriod;
    }

    /// @inheritdoc ITrainingRounds
    function genesisModelHash() external view returns (bytes32) {
        return _genesisModelHash;
    }

    /// @inheritdoc ITrainingRounds
    function latestModelHash() external view returns (bytes32) {
        return _modelOf(_lastFinalizedRoundId);
    }

    /// @inheritdoc ITrainingRounds
    function currentRoundId() external view returns (uint256) {
        return _currentRoundId;
    }

    /// @inheritdoc ITrainingRounds
    function lastFinalizedRoundId() external view returns (uint256) {
        return _lastFinalizedRoundId;
    }

    /// @inheritdoc ITrainingRounds
    function getRound(uint256 roundId) external view returns (Round memory result) {
        RoundRecord storage round = _rounds[roundId];
        if (round.status == RoundStatus.None) return result;
        result = Round({
            baseModelHash: _modelOf(round.baseRoundId),
            configHash: round.configHash,
            globalModelHash: round.globalModelHash,
            reportHash: round.reportHash,
            accumulator: round.accumulator,
            seed: round.seed,
            deadline: round.deadline,
            openedAt: round.openedAt,
            closedAt: round.closedAt,
            minUpdates: round.minUpdates,
            eligibleCount: round.eligibleCount,
            commitCount: round.commitCount,
            acceptedCount: round.acceptedCount,
            maxSamples: round.maxSamples,
            selectionRate: round.selectionRate,
            relayCutoff: round.relayCutoff,
            closeWindow: round.closeWindow,
            status: round.status
        });
    }

    /// @inheritdoc ITrainingRounds
    function lastCommittedRound(address node) external view returns (uint256) {
        return _nodes[node].lastCommittedRound;
    }

    /// @inheritdoc ITrainingRounds
    function hasCommitted(uint256 roundId, address node) external view returns (bool) {
        // Round ids, not balances or timestamps: slither's taint comes from `joinedAt` sharing the slot.
        // slither-disable-next-line incorrect-equality,timestamp
        return roundId != 0 && _nodes[node].lastCommittedRound == roundId;
    }

    /// @inheritdoc ITrainingRounds
    function isSelected(uint256 roundId, address node) public view returns (bool) {
        RoundRecord storage round = _rounds[roundId];
        if (round.status == RoundStatus.None) revert UnknownRound(roundId);
        return !round.sampled || _selected(round.seed, round.selectionRate, node);
    }

    /// @inheritdoc ITrainingRounds
    function isEligible(uint256 roundId, address node) external view returns (bool) {
        NodeRecord storage record = _nodes[node];
        return record.active && record.joinedRound < roundId && isSelected(roundId, node);
    }

    /// @inheritdoc ITrainingRounds
    function initialAccumulator(uint256 roundId) external view returns (bytes32) {
        return _initialAccumulator(roundId);
    }

    /// @inheritdoc ITrainingRounds
    function foldCommitment(bytes32 acc, address node, bytes32 updateHash, uint64 numSamples)
        external
        pure
        returns (bytes32)
    {
        return _fold(acc, node, updateHash, numSamples);
    }

    /// @inheritdoc ITrainingRounds
    function checkCommitments(uint256 roundId, CommitmentEntry[] calldata entries) external view returns (bool) {
        RoundRecord storage round = _rounds[roundId];
        if (round.status == RoundStatus.None) revert UnknownRound(roundId);
        if (entries.length != round.commitCount) return false;
        bytes32 acc = _initialAccumulator(roundId);
        for (uint256 i = 0; i < entries.length; ++i) {
            acc = _fold(acc, entries[i].node, entries[i].updateHash, entries[i].numSamples);
        }
        return acc == round.accumulator;
    }

    /// @inheritdoc ITrainingRounds
    function commitmentDigest(uint256 roundId, bytes32 updateHash, uint64 numSamples) external view returns (bytes32) {
        return _commitmentDigest(roundId, updateHash, numSamples);
    }

    /// @inheritdoc ITrainingRounds
    function getUnmaskPhase(uint256 roundId) external view returns (UnmaskPhase memory result) {
        RoundRecord storage round = _rounds[roundId];
        if (round.status == RoundStatus.None) revert UnknownRound(roundId);
        if (!round.secure) return result;
        result = UnmaskPhase({
            threshold: round.threshold,
            unmaskDeadline: round.unmaskDeadline,
            isSealed: round.isSealed,
            sealedAt: round.sealedAt,
            survivorCount: round.survivorCount,
            unmaskCount: round.unmaskCount,
            unmaskAccumulator: round.unmaskAccumulator
        });
    }

    /// @inheritdoc ITrainingRounds
    function isSurvivor(uint256 roundId, address node) external view returns (bool) {
        NodeRecord storage record = _nodes[node];
        if (roundId == 0 || record.lastCommittedRound != roundId || record.lastExcludedRound == roundId) {
            return false;
        }
        RoundRecord storage round = _rounds[roundId];
        return round.secure && round.isSealed;
    }

    /// @inheritdoc ITrainingRounds
    function hasUnmasked(uint256 roundId, address node) external view returns (bool) {
        // Round ids, not balances or timestamps: slither's taint comes from `joinedAt` sharing the slot.
        // slither-disable-next-line incorrect-equality,timestamp
        return roundId != 0 && _nodes[node].lastUnmaskRound == roundId;
    }

    /// @inheritdoc ITrainingRounds
    function initialUnmaskAccumulator(uint256 roundId) external view returns (bytes32) {
        return _initialUnmaskAccumulator(roundId);
    }

    /// @inheritdoc ITrainingRounds
    function foldUnmask(bytes32 acc, address node, bytes32 unmaskHash) external pure returns (bytes32) {
        return _foldUnmask(acc, node, unmaskHash);
    }

    /// @inheritdoc ITrainingRounds
    function unmaskDigest(uint256 roundId, bytes32 unmaskHash) external view returns (bytes32) {
        return _unmaskDigest(roundId, unmaskHash);
    }

    /// @inheritdoc NodeRegistry
    function supportsInterface(bytes4 interfaceId) public view override returns (bool) {
        return interfaceId == type(ITrainingRounds).interfaceId || super.supportsInterface(interfaceId);
    }

    // --- internal ------------------------------------------------------------------------------

    /// @inheritdoc NodeRegistry
    function _currentRound() internal view override returns (uint32) {
        return _currentRoundId;
    }

    /// @dev Closes a stale current round, checks `baseModelHash` against the latest model and
    /// makes the next id current. Returns it.
    function _advance(bytes32 baseModelHash) private returns (uint32 id) {
        uint32 current = _currentRoundId;
        if (current != 0) {
            RoundRecord storage previous = _rounds[current];
            if (previous.status == RoundStatus.Open) {
                if (block.timestamp <= _expiresAt(previous)) revert RoundStillOpen(current);
                _expire(previous, current);
            }
        }
        uint32 lastFinalized = _lastFinalizedRoundId;
        if (lastFinalized == 0 && _genesisModelHash == bytes32(0)) revert GenesisNotSet();
        bytes32 latest = _modelOf(lastFinalized);
        if (baseModelHash != latest) revert BaseModelMismatch(latest, baseModelHash);
        id = current + 1;
        _currentRoundId = id;
    }

    /// @dev Writes the new round `id`; returns its seed (zero unless sampled).
    function _initRound(
        RoundRecord storage round,
        uint32 id,
        bytes32 configHash,
        RoundParams calldata params,
        uint32 eligible
    ) private returns (bytes32 seed) {
        bool sampled = params.selectionRate != 0;
        round.deadline = uint40(params.deadline);
        round.status = RoundStatus.Open;
        round.sampled = sampled;
        round.eligibleCount = eligible;
        round.minUpdates = params.minUpdates;
        round.maxSamples = params.maxSamples;
        round.relayCutoff = params.relayCutoff;
        round.openedAt = SafeCast.toUint40(block.number);
        round.baseRoundId = _lastFinalizedRoundId;
        round.selectionRate = params.selectionRate;
        round.closeWindow = params.closeWindow;
        round.configHash = configHash;
        // Non-zero from the start, so that the first commitment does not pay for a new slot.
        round.accumulator = _initialAccumulator(id);
        if (sampled) {
            seed = keccak256(abi.encode(block.prevrandao, id));
            round.seed = seed;
        }
    }

    /// @dev The unmask deadline of a round opened with `params` (`threshold` is `params.threshold`):
    /// 0 for a transparent round, `deadline + unmaskWindow` for a secure one. Reverts with
    /// {InvalidUnmaskWindow} unless the window is 0 (transparent), resp. >= 1 and ends below 2^40
    /// (secure). The deadline is already checked to be below 2^40: the sum cannot overflow.
    function _unmaskDeadline(RoundParams calldata params, uint32 threshold) private pure returns (uint40) {
        uint32 window = params.unmaskWindow;
        if (threshold == 0) {
            if (window != 0) revert InvalidUnmaskWindow(window);
            return 0;
        }
        uint64 end = params.deadline + window;
        if (window == 0 || end > type(uint40).max) revert InvalidUnmaskWindow(window);
        return uint40(end);
    }

    /// @dev The round just reached `minUpdates` commitments: with a close window, its deadline
    /// becomes `min(deadline, now + closeWindow - 1)`, the last of the window's `closeWindow`
    /// seconds (this block's own second is the first). Everything it reads and writes is in slot 0.
    /// No overflow or underflow: `block.timestamp <= deadline < 2^40` and `1 <= closeWindow < 2^32`.
    function _bringDeadlineForward(RoundRecord storage round, uint256 roundId) private {
        uint32 window = round.closeWindow;
        if (window == 0) return;
        uint64 closesAt;
        unchecked {
            closesAt = uint64(block.timestamp) + window - 1;
        }
        if (closesAt < round.deadline) {
            round.deadline = uint40(closesAt);
            emit DeadlineBroughtForward(roundId, closesAt);
        }
    }

    /// @dev Reverts with {CommitPhaseOpen} while round `roundId` may still take commitments: before
    /// its deadline, unless it is unsampled and every eligible node committed.
    function _checkCommitPhaseClosed(RoundRecord storage round, uint256 roundId) private view {
        uint40 deadline = round.deadline;
        uint32 commitCount = round.commitCount;
        if (block.timestamp <= deadline && (round.sampled || commitCount != round.eligibleCount)) {
            revert CommitPhaseOpen(roundId, commitCount, round.eligibleCount, deadline);
        }
    }

    /// @dev The secure-round conditions of {finalizeRound}: sealed, at least `threshold` posts, and
    /// `acceptedCount <= survivorCount`.
    function _checkUnmasked(RoundRecord storage round, uint256 roundId, uint32 acceptedCount) private view {
        if (!round.isSealed) revert NotSealed(roundId);
        uint32 unmaskCount = round.unmaskCount;
        uint32 threshold = round.threshold;
        if (unmaskCount < threshold) revert TooFewUnmasks(roundId, unmaskCount, threshold);
        uint32 survivors = round.survivorCount;
        if (acceptedCount > survivors) revert AcceptedExceedsCommitments(roundId, acceptedCount, survivors);
    }

    /// @dev Round `roundId`, which must be open, secure and sealed ({UnknownRound}, {RoundNotOpen},
    /// {NotSecureRound}, {NotSealed}).
    function _sealedRound(uint256 roundId) private view returns (RoundRecord storage round) {
        round = _openRound(roundId);
        if (!round.secure) revert NotSecureRound(roundId);
        if (!round.isSealed) revert NotSealed(roundId);
    }

    /// @dev Why `node` cannot post `unmaskHash` to the sealed round `roundId` now, or `None`.
    /// Reads the node's one slot. `NotEligible`: not a survivor; `AlreadySubmitted`: already posted.
    function _checkUnmask(uint256 roundId, address node, bytes32 unmaskHash) private view returns (SkipReason) {
        if (unmaskHash == bytes32(0)) return SkipReason.ZeroHash;
        NodeRecord storage record = _nodes[node];
        // Round ids only grow and fit 32 bits. A node posts only after the seal, which excluded
        // nodes only before it, so a node that posted is a survivor.
        if (record.lastUnmaskRound == roundId) return SkipReason.AlreadySubmitted;
        if (record.lastCommittedRound != roundId || record.lastExcludedRound == roundId) {
            return SkipReason.NotEligible;
        }
        return SkipReason.None;
    }

    /// @dev Posts one signed unmasking hash of a batch, or emits why it is skipped. Returns the new
    /// accumulator and whether it was posted.
    function _relayUnmask(uint256 roundId, SignedUnmask calldata post, bytes32 acc) private returns (bytes32, bool) {
        bytes32 unmaskHash = post.unmaskHash;
        address node = _recover(_unmaskDigest(roundId, unmaskHash), post.r, post.vs);
        SkipReason reason = node == address(0) ? SkipReason.InvalidSignature : _checkUnmask(roundId, node, unmaskHash);
        if (reason != SkipReason.None) {
            emit UnmaskSkipped(roundId, node, reason);
            return (acc, false);
        }
        _nodes[node].lastUnmaskRound = uint32(roundId);
        emit UnmaskSubmitted(roundId, node, unmaskHash);
        return (_foldUnmask(acc, node, unmaskHash), true);
    }

    /// @dev Why `node` cannot commit (`updateHash`, `numSamples`) to the open round `roundId` now,
    /// or `None`. Reads the node's one slot, and the seed only for a sampled round.
    function _check(
        uint256 roundId,
        address node,
        bytes32 updateHash,
        uint64 numSamples,
        uint64 maxSamples,
        bool sampled
    ) private view returns (SkipReason) {
        if (updateHash == bytes32(0)) return SkipReason.ZeroHash;
        if (numSamples == 0) return SkipReason.ZeroSamples;
        if (numSamples > maxSamples) return SkipReason.TooManySamples;
        NodeRecord storage record = _nodes[node];
        // `lastCommittedRound` only grows, and round ids fit 32 bits.
        if (record.lastCommittedRound == roundId) return SkipReason.AlreadySubmitted;
        if (!record.active || record.joinedRound >= roundId) return SkipReason.NotEligible;
        if (sampled) {
            RoundRecord storage round = _rounds[roundId];
            if (!_selected(round.seed, round.selectionRate, node)) return SkipReason.NotEligible;
        }
        return SkipReason.None;
    }

    /// @dev Commits one signed commitment of a batch, or emits why it is skipped. Returns the new
    /// accumulator and whether it was committed. Each calldata field is read once.
    function _relay(uint256 roundId, SignedCommitment calldata c, bytes32 acc, Limits memory limits)
        private
        returns (bytes32, bool)
    {
        bytes32 updateHash = c.updateHash;
        uint64 numSamples = c.numSamples;
        address node = _recover(_commitmentDigest(roundId, updateHash, numSamples), c.r, c.vs);
        SkipReason reason = node == address(0)
            ? SkipReason.InvalidSignature
            : _check(roundId, node, updateHash, numSamples, limits.maxSamples, limits.sampled);
        if (reason != SkipReason.None) {
            emit CommitmentSkipped(roundId, node, reason);
            return (acc, false);
        }
        _nodes[node].lastCommittedRound = uint32(roundId);
        emit UpdateSubmitted(roundId, node, updateHash, numSamples);
        return (_fold(acc, node, updateHash, numSamples), true);
    }

    /// @dev The named error for a {SkipReason} of the direct path.
    function _revertFor(SkipReason reason, uint256 roundId, address node, uint64 numSamples, uint64 maxSamples)
        private
        pure
    {
        if (reason == SkipReason.ZeroHash) revert ZeroHash();
        if (reason == SkipReason.ZeroSamples) revert ZeroSamples();
        if (reason == SkipReason.TooManySamples) revert TooManySamples(roundId, numSamples, maxSamples);
        if (reason == SkipReason.AlreadySubmitted) revert AlreadySubmitted(roundId, node);
        revert NotEligible(roundId, node);
    }

    function _selected(bytes32 seed, uint64 rate, address node) private pure returns (bool) {
        return uint256(keccak256(abi.encode(seed, node))) >> 192 < rate;
    }

    function _initialAccumulator(uint256 roundId) private view returns (bytes32) {
        return keccak256(abi.encode(block.chainid, address(this), roundId));
    }

    function _initialUnmaskAccumulator(uint256 roundId) private view returns (bytes32) {
        return keccak256(abi.encode(block.chainid, address(this), roundId, UNMASK_DOMAIN));
    }

    /// @dev The signer of `digest` from an EIP-2098 compact signature, or the zero address if it
    /// is invalid. Same checks as OpenZeppelin's `ECDSA.tryRecover` (s in the lower half order,
    /// so signatures are not malleable), without its error plumbing.
    function _recover(bytes32 digest, bytes32 r, bytes32 vs) private pure returns (address) {
        unchecked {
            bytes32 s = vs & bytes32(0x7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff);
            if (uint256(s) > _HALF_ORDER) return address(0);
            uint8 v = uint8((uint256(vs) >> 255) + 27);
            return ecrecover(digest, v, r, s);
        }
    }

    function _fold(bytes32 acc, address node, bytes32 updateHash, uint64 numSamples) private pure returns (bytes32 out) {
        // keccak256(abi.encode(acc, node, updateHash, numSamples)), hashed in place above the free
        // memory pointer so that a batch does not grow memory per entry.
        assembly ("memory-safe") {
            let p := mload(0x40)
            mstore(p, acc)
            mstore(add(p, 0x20), node)
            mstore(add(p, 0x40), updateHash)
            mstore(add(p, 0x60), numSamples)
            out := keccak256(p, 0x80)
        }
    }

    function _foldUnmask(bytes32 acc, address node, bytes32 unmaskHash) private pure returns (bytes32 out) {
        // keccak256(abi.encode(acc, node, unmaskHash)), hashed in place like _fold.
        assembly ("memory-safe") {
            let p := mload(0x40)
            mstore(p, acc)
            mstore(add(p, 0x20), node)
            mstore(add(p, 0x40), unmaskHash)
            out := keccak256(p, 0x60)
        }
    }

    function _unmaskDigest(uint256 roundId, bytes32 unmaskHash) private view returns (bytes32) {
        bytes32 typehash = UNMASK_TYPEHASH;
        bytes32 structHash;
        // keccak256(abi.encode(UNMASK_TYPEHASH, roundId, unmaskHash)), in place.
        assembly ("memory-safe") {
            let p := mload(0x40)
            mstore(p, typehash)
            mstore(add(p, 0x20), roundId)
            mstore(add(p, 0x40), unmaskHash)
            structHash := keccak256(p, 0x60)
        }
        return _hashTypedDataV4(structHash);
    }

    function _commitmentDigest(uint256 roundId, bytes32 updateHash, uint64 numSamples) private view returns (bytes32) {
        bytes32 typehash = COMMITMENT_TYPEHASH;
        bytes32 structHash;
        // keccak256(abi.encode(COMMITMENT_TYPEHASH, roundId, updateHash, numSamples)), in place.
        assembly ("memory-safe") {
            let p := mload(0x40)
            mstore(p, typehash)
            mstore(add(p, 0x20), roundId)
            mstore(add(p, 0x40), updateHash)
            mstore(add(p, 0x60), numSamples)
            structHash := keccak256(p, 0x80)
        }
        return _hashTypedDataV4(structHash);
    }

    /// @dev Round `roundId`, which must be open (reverts {UnknownRound} or {RoundNotOpen}).
    function _openRound(uint256 roundId) private view returns (RoundRecord storage round) {
        round = _rounds[roundId];
        RoundStatus status = round.status;
        if (status != RoundStatus.Open) {
            if (status == RoundStatus.None) revert UnknownRound(roundId);
            revert RoundNotOpen(roundId);
        }
    }

    /// @dev Closes the open round `round` (id `roundId`) without a result.
    function _expire(RoundRecord storage round, uint256 roundId) private {
        round.closedAt = SafeCast.toUint40(block.number);
        round.status = RoundStatus.Expired;
        emit RoundExpired(roundId, msg.sender);
    }

    /// @dev The model produced by round `roundId`, or the genesis model for 0.
    function _modelOf(uint256 roundId) private view returns (bytes32) {
        return roundId == 0 ? _genesisModelHash : _rounds[roundId].globalModelHash;
    }

    /// @dev The last timestamp at which `round` cannot yet be expired: its deadline (a secure
    /// round: its unmask deadline) plus the grace period. No overflow: both deadlines are below
    /// 2^40 and `_gracePeriod <= MAX_GRACE_PERIOD`.
    function _expiresAt(RoundRecord storage round) private view returns (uint64) {
        uint40 end = round.deadline;
        bool secure = round.secure;
        if (secure) end = round.unmaskDeadline;
        return end + _gracePeriod;
    }
}
