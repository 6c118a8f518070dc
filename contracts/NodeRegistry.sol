// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {INodeRegistry} from "./interfaces/INodeRegistry.sol";

/**
 * @title NodeRegistry
 * @notice The participants of a fedchain federation. See {INodeRegistry}.
 *
 * An abstract module: `TrainingRounds` inherits it, so the registry and the rounds live at one
 * address and a commitment reads and writes one slot for the committer (docs/gas.md).
 *
 * Storage: one record per node whose first slot packs `active`, `joinedAt`, `joinedRound`,
 * `keyRound` and the rounds module's `lastCommittedRound`, `lastExcludedRound` and
 * `lastUnmaskRound`; the member count and the registration mode share one slot.
 */
abstract contract NodeRegistry is INodeRegistry, AccessControl {
    /// @inheritdoc INodeRegistry
    bytes32 public constant REGISTRAR_ROLE = keccak256("REGISTRAR_ROLE");

    /**
     * @dev A node in storage. Slot 0 packs 8 + 40 + 32 + 32 + 32 + 32 + 32 = 208 bits. The last
     * three fields belong to the rounds module and sit here so that a commitment or an unmasking
     * post touches this one slot: `lastCommittedRound` (the round the node last committed in; the
     * double-commit guard), `lastExcludedRound` (the last secure round whose seal excluded its
     * commitment) and `lastUnmaskRound` (the last secure round it posted an unmasking hash in;
     * the double-post guard).
     */
    struct NodeRecord {
        bool active;
        uint40 joinedAt;
        uint32 joinedRound;
        uint32 keyRound;
        uint32 lastCommittedRound;
        uint32 lastExcludedRound;
        uint32 lastUnmaskRound;
        bytes32 metadataHash;
        bytes publicKey;
    }

    mapping(address node => NodeRecord) internal _nodes;

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
        NodeRecord storage record = _nodes[node];
        if (!record.active) revert NodeNotActive(node);
        record.active = false;
        --_nodeCount;
        emit NodeRemoved(node, msg.sender);
    }

    /// @inheritdoc INodeRegistry
    function updateNode(bytes calldata publicKey, bytes32 metadataHash) external {
        NodeRecord storage record = _nodes[msg.sender];
        if (!record.active) revert NodeNotActive(msg.sender);
        record.keyRound = _currentRound();
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
    function nodeCount() public view returns (uint256) {
        return _nodeCount;
    }

    /// @inheritdoc INodeRegistry
    function getNode(address node) external view returns (Node memory) {
        NodeRecord storage r = _nodes[node];
        return Node({
            active: r.active,
            joinedAt: r.joinedAt,
            joinedRound: r.joinedRound,
            keyRound: r.keyRound,
            metadataHash: r.metadataHash,
            publicKey: r.publicKey
        });
    }

    /// @inheritdoc AccessControl
    function supportsInterface(bytes4 interfaceId) public view virtual override returns (bool) {
        return interfaceId == type(INodeRegistry).interfaceId || super.supportsInterface(interfaceId);
    }

    // --- internal ------------------------------------------------------------------------------

    /// @dev The id of the last opened round (0 if none), for `joinedRound` and `keyRound`.
    function _currentRound() internal view virtual returns (uint32);

    /// @dev Admits `node` (not the zero address), on behalf of `msg.sender`.
    function _admit(address node, bytes calldata publicKey, bytes32 metadataHash) private {
        NodeRecord storage record = _nodes[node];
        if (record.active) revert NodeAlreadyActive(node);
        uint32 current = _currentRound();
        record.active = true;
        // Timestamps fit 40 bits until year 36812.
        record.joinedAt = uint40(block.timestamp);
        record.joinedRound = current;
        record.keyRound = current;
        record.metadataHash = metadataHash;
        record.publicKey = publicKey;
        ++_nodeCount;
        emit NodeAdmitted(node, msg.sender, metadataHash, publicKey);
    }
}
