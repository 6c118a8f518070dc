// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {INodeRegistry} from "./interfaces/INodeRegistry.sol";

/**
 * @title NodeRegistry
 * @notice The participants of a fedchain federation. See {INodeRegistry}.
 *
 * Storage: one record per node whose first slot packs `active` and `joinedAt`, so
 * {isActiveNode} (called by `TrainingRounds` on every update) reads exactly one slot; the
 * member count and the registration mode share one slot.
 */
contract NodeRegistry is INodeRegistry, AccessControl {
    /// @inheritdoc INodeRegistry
    bytes32 public constant REGISTRAR_ROLE = keccak256("REGISTRAR_ROLE");

    mapping(address node => Node) private _nodes;

    // One slot: read together by {register}.
    uint64 private _nodeCount;
    bool private _openRegistration;

    /**
     * @param admin Receives `DEFAULT_ADMIN_ROLE` and `REGISTRAR_ROLE`. Self-registration starts closed.
     */
    constructor(address admin) {
        if (admin == address(0)) revert ZeroAddress();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(REGISTRAR_ROLE, admin);
    }

    // --- membership --------------------------------------------------------------------------

    /// @inheritdoc INodeRegistry
    function admitNode(address node, bytes calldata publicKey, bytes32 metadataHash)
        external
        onlyRole(REGISTRAR_ROLE)
    {
        if (node == address(0)) revert ZeroAddress();
        _admit(node, publicKey, metadataHash);
    }

    /// @inheritdoc INodeRegistry
    function register(bytes calldata publicKey, bytes32 metadataHash) external {
        if (!_openRegistration) revert RegistrationClosed();
        _admit(msg.sender, publicKey, metadataHash);
    }

    /// @inheritdoc INodeRegistry
    function removeNode(address node) external onlyRole(REGISTRAR_ROLE) {
        Node storage record = _nodes[node];
        if (!record.active) revert NodeNotActive(node);
        record.active = false;
        --_nodeCount;
        emit NodeRemoved(node, msg.sender);
    }

    /// @inheritdoc INodeRegistry
    function updateNode(bytes calldata publicKey, bytes32 metadataHash) external {
        Node storage record = _nodes[msg.sender];
        if (!record.active) revert NodeNotActive(msg.sender);
        record.metadataHash = metadataHash;
        record.publicKey = publicKey;
        emit NodeUpdated(msg.sender, metadataHash, publicKey);
    }

    /// @inheritdoc INodeRegistry
    function setOpenRegistration(bool open) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _openRegistration = open;
        emit RegistrationModeChanged(open);
    }

    // --- views ---------------------------------------------------------------------------------

    /// @inheritdoc INodeRegistry
    function openRegistration() external view returns (bool) {
        return _openRegistration;
    }

    /// @inheritdoc INodeRegistry
    function isActiveNode(address node) external view returns (bool) {
        return _nodes[node].active;
    }

    /// @inheritdoc INodeRegistry
    function nodeCount() external view returns (uint256) {
        return _nodeCount;
    }

    /// @inheritdoc INodeRegistry
    function getNode(address node) external view returns (Node memory) {
        return _nodes[node];
    }

    /// @inheritdoc AccessControl
    function supportsInterface(bytes4 interfaceId) public view override returns (bool) {
        return interfaceId == type(INodeRegistry).interfaceId || super.supportsInterface(interfaceId);
    }

    // --- internal ------------------------------------------------------------------------------

    /// @dev Admits `node` (not the zero address), on behalf of `msg.sender`.
    function _admit(address node, bytes calldata publicKey, bytes32 metadataHash) private {
        Node storage record = _nodes[node];
        if (record.active) revert NodeAlreadyActive(node);
        record.active = true;
        record.joinedAt = uint64(block.timestamp);
        record.metadataHash = metadataHash;
        record.publicKey = publicKey;
        ++_nodeCount;
        emit NodeAdmitted(node, msg.sender, metadataHash, publicKey);
    }
}
