// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {INodeRegistry} from "./interfaces/INodeRegistry.sol";
import {ITrainingRounds} from "./interfaces/ITrainingRounds.sol";

/**
 * @title TrainingRounds
 * @notice Training rounds of a fedchain federation and the nodes' commitments. See {ITrainingRounds}.
 *
 * Storage layout, chosen for the gas of {submitUpdate} (see docs/gas.md):
 *
 * - `_rounds[roundId]`: the first slot packs every scalar of a round (deadline, block numbers,
 *   base round, quorum, counters, status), so {submitUpdate} reads and writes one round slot; the
 *   hashes take one slot each. The base model is not stored: it is the model of round
 *   `baseRoundId` (or the genesis model when 0), which never changes once that round is finalized.
 * - `_updateHashes[roundId][node]`: one full slot per commitment.
 * - `_samples[node][(roundId - 1) / 4]`: the declared sample counts of one node, four rounds per
 *   slot (64-bit lanes), so three commitments in four write to a slot that is already non-zero.
 *
 * Invariant: a round is `Open` only while it is the current round (opening the next round
 * requires the current one to be closed), so the hot paths do not read `_currentRoundId`.
 */
contract TrainingRounds is ITrainingRounds, AccessControl {
    /// @inheritdoc ITrainingRounds
    bytes32 public constant AGGREGATOR_ROLE = keccak256("AGGREGATOR_ROLE");

    /// @inheritdoc ITrainingRounds
    uint64 public constant MAX_GRACE_PERIOD = 365 days;

    /**
     * @dev A round in storage. Slot 0 is exactly 256 bits. Narrower than {Round}: timestamps and
     * block numbers fit 40 bits until year 36812 (resp. block 1.1e12), round ids 32 bits.
     */
    struct RoundRecord {
        uint40 deadline;
        uint40 openedAt;
        uint40 closedAt;
        uint32 baseRoundId;
        uint32 minUpdates;
        uint32 commitCount;
        uint32 acceptedCount;
        RoundStatus status;
        bytes32 configHash;
        bytes32 globalModelHash;
        bytes32 reportHash;
    }

    INodeRegistry private immutable _registry;
    uint64 private immutable _gracePeriod;

    bytes32 private _genesisModelHash;

    // One slot.
    uint32 private _currentRoundId;
    uint32 private _lastFinalizedRoundId;

    mapping(uint256 roundId => RoundRecord) private _rounds;
    mapping(uint256 roundId => mapping(address node => bytes32 updateHash)) private _updateHashes;
    mapping(address node => mapping(uint256 group => uint256 lanes)) private _samples;

    /**
     * @dev The parameters are the ABI's `(registry, admin, gracePeriod)`, named so that they do not
     * shadow the {registry} and {gracePeriod} getters.
     * @param nodeRegistry The {INodeRegistry} whose active nodes may submit updates.
     * @param admin Receives `DEFAULT_ADMIN_ROLE` (it grants {AGGREGATOR_ROLE} and sets the genesis model).
     * @param grace The grace period: seconds after a deadline before anyone may expire a round; at
     * most {MAX_GRACE_PERIOD}.
     */
    constructor(address nodeRegistry, address admin, uint64 grace) {
        if (nodeRegistry == address(0) || admin == address(0)) revert ZeroAddress();
        if (grace > MAX_GRACE_PERIOD) revert InvalidGracePeriod(grace);
        _registry = INodeRegistry(nodeRegistry);
        _gracePeriod = grace;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
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
    function openRound(bytes32 baseModelHash, bytes32 configHash, uint64 deadline, uint32 minUpdates)
        external
        onlyRole(AGGREGATOR_ROLE)
        returns (uint256 roundId)
    {
        if (minUpdates == 0) revert InvalidMinUpdates(minUpdates);
        if (deadline <= block.timestamp || deadline > type(uint40).max) revert InvalidDeadline(deadline);
        if (configHash == bytes32(0)) revert ZeroHash();

        uint32 current = _currentRoundId;
        uint32 lastFinalized = _lastFinalizedRoundId;
        if (current != 0) {
            RoundRecord storage previous = _rounds[current];
            if (previous.status == RoundStatus.Open) {
                if (block.timestamp <= _expiresAt(previous.deadline)) revert RoundStillOpen(current);
                _expire(previous, current);
            }
        }

        if (lastFinalized == 0 && _genesisModelHash == bytes32(0)) revert GenesisNotSet();
        bytes32 latest = _modelOf(lastFinalized);
        if (baseModelHash != latest) revert BaseModelMismatch(latest, baseModelHash);

        uint32 id = current + 1;
        _currentRoundId = id;
        RoundRecord storage round = _rounds[id];
        round.deadline = uint40(deadline);
        round.openedAt = SafeCast.toUint40(block.number);
        round.baseRoundId = lastFinalized;
        round.minUpdates = minUpdates;
        round.status = RoundStatus.Open;
        round.configHash = configHash;

        emit RoundOpened(id, baseModelHash, configHash, deadline, minUpdates);
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
        if (acceptedCount < minUpdates) revert QuorumNotReached(roundId, acceptedCount, minUpdates);
        uint32 commitCount = round.commitCount;
        if (acceptedCount > commitCount) revert AcceptedExceedsCommitments(roundId, acceptedCount, commitCount);

        round.closedAt = SafeCast.toUint40(block.number);
        round.acceptedCount = acceptedCount;
        round.status = RoundStatus.Finalized;
        round.globalModelHash = newModelHash;
        round.reportHash = reportHash;
        // An open round is the current round, whose id fits 32 bits.
        _lastFinalizedRoundId = uint32(roundId);

        emit RoundFinalized(roundId, newModelHash, reportHash, acceptedCount);
    }

    // --- anyone ----------------------------------------------------------------------------------

    /// @inheritdoc ITrainingRounds
    function expireRound(uint256 roundId) external {
        RoundRecord storage round = _openRound(roundId);
        uint64 expiresAt = _expiresAt(round.deadline);
        if (block.timestamp <= expiresAt) revert ExpiryNotReached(roundId, expiresAt);
        _expire(round, roundId);
    }

    // --- nodes ---------------------------------------------------------------------------------

    /// @inheritdoc ITrainingRounds
    function submitUpdate(uint256 roundId, bytes32 updateHash, uint64 numSamples) external {
        if (updateHash == bytes32(0)) revert ZeroHash();
        if (numSamples == 0) revert ZeroSamples();
        RoundRecord storage round = _openRound(roundId);
        uint40 deadline = round.deadline;
        if (block.timestamp > deadline) revert DeadlinePassed(roundId, deadline);
        if (!_registry.isActiveNode(msg.sender)) revert NotActiveNode(msg.sender);

        mapping(address node => bytes32) storage hashes = _updateHashes[roundId];
        if (hashes[msg.sender] != bytes32(0)) revert AlreadySubmitted(roundId, msg.sender);
        hashes[msg.sender] = updateHash;
        // The node's lane for this round is still zero: it never committed in this round.
        (uint256 group, uint256 shift) = _lane(roundId);
        _samples[msg.sender][group] |= uint256(numSamples) << shift;
        ++round.commitCount;

        emit UpdateSubmitted(roundId, msg.sender, updateHash, numSamples);
    }

    // --- views ---------------------------------------------------------------------------------

    /// @inheritdoc ITrainingRounds
    function registry() external view returns (address) {
        return address(_registry);
    }

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
            deadline: round.deadline,
            openedAt: round.openedAt,
            closedAt: round.closedAt,
            minUpdates: round.minUpdates,
            commitCount: round.commitCount,
            acceptedCount: round.acceptedCount,
            status: round.status
        });
    }

    /// @inheritdoc ITrainingRounds
    function getCommitment(uint256 roundId, address node) external view returns (bytes32 updateHash, uint64 numSamples) {
        updateHash = _updateHashes[roundId][node];
        if (updateHash != bytes32(0)) {
            (uint256 group, uint256 shift) = _lane(roundId);
            numSamples = uint64(_samples[node][group] >> shift);
        }
    }

    /// @inheritdoc AccessControl
    function supportsInterface(bytes4 interfaceId) public view override returns (bool) {
        return interfaceId == type(ITrainingRounds).interfaceId || super.supportsInterface(interfaceId);
    }

    // --- internal ------------------------------------------------------------------------------

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

    /// @dev The last timestamp at which a round with `deadline` cannot yet be expired. No overflow:
    /// `deadline < 2^40` and `_gracePeriod <= MAX_GRACE_PERIOD`.
    function _expiresAt(uint40 deadline) private view returns (uint64) {
        return deadline + _gracePeriod;
    }

    /// @dev Where round `roundId` (>= 1) keeps a node's sample count: slot `group`, bits [shift, shift + 64).
    function _lane(uint256 roundId) private pure returns (uint256 group, uint256 shift) {
        unchecked {
            uint256 index = roundId - 1;
            return (index >> 2, (index & 3) << 6);
        }
    }
}
