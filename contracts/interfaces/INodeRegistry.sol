// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/**
 * @title INodeRegistry
 * @notice The set of participants (nodes) of a fedchain federation.
 *
 * A federation is a permissioned consortium: holders of `REGISTRAR_ROLE` admit and remove nodes.
 * The admin (`DEFAULT_ADMIN_ROLE`) may also open self-registration, in which case anyone can join
 * with {register}. Each node records a public key (an X25519 key for secure aggregation) and the
 * hash of an off-chain metadata document.
 *
 * Since version 2 the registry is part of the `TrainingRounds` contract (one address): a node's
 * membership and its last committed round share one storage slot, which is what makes a
 * commitment cost one slot write (docs/gas.md).
 *
 * Rounds see membership as it was when they opened: a node admitted while round `r` is open is
 * eligible from round `r + 1` on ({Node.joinedRound}), and a key set while round `r` is open is
 * the node's key from round `r + 1` on ({Node.keyRound}); earlier keys are in the events.
 *
 * Removal only clears the `active` flag: the record (public key, metadata, `joinedAt`) stays
 * readable for audits. A removed node may be admitted again; re-admission overwrites the record.
 *
 * Every operation is O(1): no function iterates over nodes, so no gas cost grows with the size
 * of the federation.
 */
interface INodeRegistry {
    /**
     * @notice A node's record, as returned by {getNode}.
     * @param active Whether the node may currently take part in rounds.
     * @param joinedAt Unix time (seconds) of the node's latest admission; 0 if never admitted.
     * @param joinedRound The current round id at the node's latest admission: it is eligible in rounds after it.
     * @param keyRound The current round id when the public key was last set: the key applies to rounds after it.
     * @param metadataHash Hash of an off-chain metadata document (free-form; may be zero).
     * @param publicKey The node's public key for secure aggregation (may be empty).
     */
    struct Node {
        bool active;
        uint64 joinedAt;
        uint32 joinedRound;
        uint32 keyRound;
        bytes32 metadataHash;
        bytes publicKey;
    }

    /// @notice `node` is already an active member.
    error NodeAlreadyActive(address node);

    /// @notice `node` is not an active member.
    error NodeNotActive(address node);

    /// @notice {register} was called while self-registration is closed.
    error RegistrationClosed();

    /// @notice The zero address was given where an account is required.
    error ZeroAddress();

    /**
     * @notice `node` was admitted, by a registrar or (`admittedBy == node`) by self-registration.
     * @dev Also emitted when a removed node is admitted again.
     */
    event NodeAdmitted(address indexed node, address indexed admittedBy, bytes32 metadataHash, bytes publicKey);

    /// @notice `node` was removed by the registrar `removedBy`.
    event NodeRemoved(address indexed node, address indexed removedBy);

    /// @notice The active node `node` replaced its public key and metadata hash.
    event NodeUpdated(address indexed node, bytes32 metadataHash, bytes publicKey);

    /// @notice Self-registration was opened (`open == true`) or closed.
    event RegistrationModeChanged(bool open);

    /// @notice The role allowed to {admitNode} and {removeNode}: `keccak256("REGISTRAR_ROLE")`.
    function REGISTRAR_ROLE() external view returns (bytes32);

    /**
     * @notice Admits `node` into the federation.
     * @dev Requirements: caller has `REGISTRAR_ROLE`; `node` is not the zero address and is not
     * active. Sets `joinedAt` to the current block's timestamp and `joinedRound` and `keyRound`
     * to the current round id. Emits {NodeAdmitted}.
     * @param node The node's account (the address it will commit from, or sign commitments with).
     * @param publicKey The node's public key for secure aggregation; may be empty.
     * @param metadataHash Hash of the node's off-chain metadata; may be zero.
     */
    function admitNode(address node, bytes calldata publicKey, bytes32 metadataHash) external;

    /**
     * @notice Removes `node` from the federation: it can no longer commit updates.
     * @dev Requirements: caller has `REGISTRAR_ROLE`; `node` is active. Commitments the node made
     * before its removal stay valid. Emits {NodeRemoved}.
     */
    function removeNode(address node) external;

    /**
     * @notice Opens (`open == true`) or closes self-registration through {register}.
     * @dev Requirements: caller has `DEFAULT_ADMIN_ROLE`. Emits {RegistrationModeChanged}, even if
     * the mode is unchanged.
     */
    function setOpenRegistration(bool open) external;

    /// @notice Whether anyone may currently join with {register}.
    function openRegistration() external view returns (bool);

    /**
     * @notice Joins the federation as the caller, while self-registration is open.
     * @dev Requirements: registration is open; the caller is not active. Emits {NodeAdmitted}
     * with `admittedBy == node == msg.sender`.
     */
    function register(bytes calldata publicKey, bytes32 metadataHash) external;

    /**
     * @notice Replaces the caller's public key and metadata hash (key rotation).
     * @dev Requirements: the caller is active. Sets `keyRound` to the current round id: the new
     * key applies to rounds opened after this call. Emits {NodeUpdated}.
     */
    function updateNode(bytes calldata publicKey, bytes32 metadataHash) external;

    /// @notice Whether `node` is currently an active member. Reads a single storage slot.
    function isActiveNode(address node) external view returns (bool);

    /// @notice The number of active members.
    function nodeCount() external view returns (uint256);

    /**
     * @notice The record of `node`. For an account never admitted, every field is zero/empty;
     * for a removed node, `active` is false and the last record is kept.
     */
    function getNode(address node) external view returns (Node memory);
}
