"""The per-round commitment accumulator of ``TrainingRounds`` (protocol v2), recomputed off-chain.

The contract keeps no per-(round, node) storage. It folds each commitment, in commit order, into

    acc_0     = keccak256(abi.encode(uint256 chainId, address contract, uint256 roundId))
    acc_{i+1} = keccak256(abi.encode(bytes32 acc_i, address node, bytes32 updateHash, uint256 numSamples))

and the list itself is in the ``UpdateSubmitted`` events. A client that reads the events checks
them against the stored accumulator with :func:`fold`: a node (RPC) that drops, adds or alters an
event cannot make the list match. Pure functions; no I/O.
"""

from __future__ import annotations

from typing import Iterable

from eth_abi import encode
from eth_utils import keccak

from fedchain.address import to_checksum_address
from fedchain.chain.types import Commitment
from fedchain.hashing import bytes32_to_hash, hash_to_bytes32


def initial(chain_id: int, contract: str, round_id: int) -> str:
    """``acc_0`` of round ``round_id`` of the contract at ``contract`` on chain ``chain_id``."""
    return bytes32_to_hash(keccak(encode(["uint256", "address", "uint256"],
                                         [int(chain_id), to_checksum_address(contract), int(round_id)])))


def step(acc: str, node: str, update_hash: str, num_samples: int) -> str:
    """One fold step (``ITrainingRounds.foldCommitment``)."""
    return bytes32_to_hash(keccak(encode(
        ["bytes32", "address", "bytes32", "uint256"],
        [hash_to_bytes32(acc), to_checksum_address(node), hash_to_bytes32(update_hash), int(num_samples)],
    )))


def fold(chain_id: int, contract: str, round_id: int, commitments: Iterable[Commitment]) -> str:
    """The accumulator after ``commitments``, in commit (event) order."""
    acc = initial(chain_id, contract, round_id)
    for c in commitments:
        acc = step(acc, c.node, c.update_hash, c.num_samples)
    return acc


#: ``ITrainingRounds.UNMASK_DOMAIN``: separates the unmask accumulator from the commit accumulator.
UNMASK_DOMAIN = keccak(text="fedchain/unmask")


def initial_unmask(chain_id: int, contract: str, round_id: int) -> str:
    """The unmask accumulator's start (``initialUnmaskAccumulator``)."""
    return bytes32_to_hash(keccak(encode(["uint256", "address", "uint256", "bytes32"],
                                         [int(chain_id), to_checksum_address(contract), int(round_id), UNMASK_DOMAIN])))


def fold_unmasks(chain_id: int, contract: str, round_id: int, posts: Iterable[tuple[str, str]]) -> str:
    """The unmask accumulator after ``posts`` = [(node, unmask_hash)] in post order (``foldUnmask``)."""
    acc = initial_unmask(chain_id, contract, round_id)
    for node, h in posts:
        acc = bytes32_to_hash(keccak(encode(["bytes32", "address", "bytes32"],
                                            [hash_to_bytes32(acc), to_checksum_address(node), hash_to_bytes32(h)])))
    return acc
