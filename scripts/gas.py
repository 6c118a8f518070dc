"""Gas used by every state-changing function of the fedchain contract (TrainingRounds, which
includes the node registry), in a typical call.

    brownie run scripts/gas.py          (make gas)

Deploys on the development network (a fresh anvil), admits nodes, runs rounds and reads
``gasUsed`` from each receipt (the 21,000 base included). "Typical" means steady state, not the
first call ever: e.g. an ``openRound`` after a finalized round, a ``submitUpdate`` by a node
that already committed in an earlier round, a 20-node ``submitBatch`` of nodes that all committed
in an earlier round. The secure-round calls (``openRound_secure``, ``sealCommitments_0`` / ``_3``
excluded, ``submitUnmask``, a 10-node ``submitUnmaskBatch``, ``finalizeRound_secure``) are
measured after every transparent case, in rounds 9 and 10. The other cases that cost differently
are printed above. The last line of output is a JSON object ``{function: gas}``; docs/gas.md
explains it.
"""

from __future__ import annotations

import json
import warnings

from brownie import TrainingRounds, accounts, chain, network, web3
from eth_account import Account
from eth_utils import keccak

# brownie 1.22 warns about its own internal use of rpc.sleep/mine/snapshot.
warnings.filterwarnings("ignore", message=r"rpc\.\w+ should not be called directly", category=FutureWarning)

GRACE = 60
ROUND_SECONDS = 3600
RELAY_CUTOFF = 600
MAX_SAMPLES = 10**6
NODES = 6  # direct committers (brownie accounts)
BATCH = 20  # relayed committers (keys only: they never send a transaction)
UNMASK_BATCH = 10  # relayed unmasking posts in one submitUnmaskBatch
UNMASK_WINDOW = 1800  # secure rounds: seconds after the deadline for unmasking posts
THRESHOLD = 13  # secure rounds: t of the 26 nodes
PUBLIC_KEY = bytes(range(1, 33))  # a 32-byte key, e.g. X25519 for secure aggregation


def h(tag: str, i: int = 0) -> str:
    """A distinct bytes32 without zero bytes (calldata cost does not depend on the value)."""
    return "0x" + bytes([(ord(c) + i) % 255 + 1 for c in tag.ljust(32, "#")[:32]]).hex()


def signed(rounds, key, rid, update_hash, samples) -> tuple:
    """An EIP-712 Commitment signature in the EIP-2098 compact form the contract takes."""
    digest = bytes(rounds.commitmentDigest(rid, update_hash, samples))
    sig = Account.unsafe_sign_hash(digest, private_key=key)
    vs = sig.s | ((sig.v - 27) << 255)
    return (update_hash, samples, "0x" + sig.r.to_bytes(32, "big").hex(), "0x" + vs.to_bytes(32, "big").hex())


def signed_unmask(rounds, key, rid, unmask_hash) -> tuple:
    """An EIP-712 Unmask signature in the EIP-2098 compact form."""
    sig = Account.unsafe_sign_hash(bytes(rounds.unmaskDigest(rid, unmask_hash)), private_key=key)
    vs = sig.s | ((sig.v - 27) << 255)
    return (unmask_hash, "0x" + sig.r.to_bytes(32, "big").hex(), "0x" + vs.to_bytes(32, "big").hex())


def params(deadline: int, min_updates: int = 1, threshold: int = 0, close_window: int = 0) -> tuple:
    """RoundParams: transparent, or secure with ``threshold`` and an UNMASK_WINDOW."""
    return (deadline, min_updates, MAX_SAMPLES, 0, RELAY_CUTOFF, threshold, UNMASK_WINDOW if threshold else 0,
            close_window)


def run_round(rounds, aggregator, nodes, keys, base, number, *, finalize=True, threshold=0):
    """Open a round, let every node commit (directly, then the keys in one batch), finalize early
    (everyone committed). Returns the receipts and the new model."""
    tx_open = rounds.openRound(base, h("config", number), params(chain.time() + ROUND_SECONDS, threshold=threshold),
                               {"from": aggregator})
    rid = tx_open.return_value
    submits = [rounds.submitUpdate(rid, h(f"update{n}", number), 1000 + n, {"from": node})
               for n, node in enumerate(nodes)]
    batch = None
    if keys:
        entries = [signed(rounds, k, rid, h(f"relayed{n}", number), 500 + n) for n, k in enumerate(keys)]
        batch = rounds.submitBatch(rid, entries, {"from": aggregator})
        assert batch.return_value == len(keys), batch.return_value
    if not finalize:
        return rid, tx_open, submits, batch, None, base
    model = h("model", number)
    tx_fin = rounds.finalizeRound(rid, model, h("report", number), len(nodes) + len(keys), {"from": aggregator})
    return rid, tx_open, submits, batch, tx_fin, model


def main() -> dict[str, int]:
    if network.show_active() != "development":
        raise SystemExit("run on the development network (a fresh anvil): brownie run scripts/gas.py")
    # Pay what the node asks (brownie's default, 0, is refused by an anvil with a base fee that
    # brownie attached to instead of launching). gasUsed does not depend on the price.
    network.gas_price(web3.eth.gas_price)
    admin, aggregator = accounts[0], accounts[1]
    nodes = list(accounts[2 : 2 + NODES])
    keys = ["0x" + keccak(text=f"fedchain gas relayed node/{i}").hex() for i in range(BATCH)]
    rounds = TrainingRounds.deploy(admin, GRACE, {"from": admin})
    gas: dict[str, int] = {"deploy": rounds.tx.gas_used}
    rounds.grantRole(rounds.AGGREGATOR_ROLE(), aggregator, {"from": admin})
    notes: list[tuple[str, int]] = []

    admits = [rounds.admitNode(n, PUBLIC_KEY, h("meta", i), {"from": admin}) for i, n in enumerate(nodes)]
    notes.append(("admitNode, first node ever (node count 0 -> 1)", admits[0].gas_used))
    gas["admitNode"] = admits[1].gas_used
    notes.append(("admitNode, empty key and zero metadata (what `fedchain deploy` does)",
                  rounds.admitNode(accounts[8], b"", "0x" + "00" * 32, {"from": admin}).gas_used))
    gas["removeNode"] = rounds.removeNode(accounts[8], {"from": admin}).gas_used
    notes.append(("admitNode, re-admitting a removed node (empty key)",
                  rounds.admitNode(accounts[8], b"", "0x" + "00" * 32, {"from": admin}).gas_used))
    rounds.removeNode(accounts[8], {"from": admin})
    for i, key in enumerate(keys):
        rounds.admitNode(Account.from_key(key).address, b"", h("meta-relayed", i), {"from": admin})

    gas["setOpenRegistration"] = rounds.setOpenRegistration(True, {"from": admin}).gas_used
    gas["register"] = rounds.register(PUBLIC_KEY, h("meta-self"), {"from": accounts[9]}).gas_used
    gas["updateNode"] = rounds.updateNode(PUBLIC_KEY[::-1], h("meta-rotated"), {"from": accounts[9]}).gas_used
    rounds.removeNode(accounts[9], {"from": admin})
    rounds.setOpenRegistration(False, {"from": admin})

    genesis = h("genesis")
    gas["setGenesisModel"] = rounds.setGenesisModel(genesis, {"from": admin}).gas_used

    # Rounds 1..3: every node commits in every round, the direct ones first, then one batch.
    model = genesis
    results = []
    for number in range(1, 4):
        rid, tx_open, submits, batch, tx_fin, model = run_round(rounds, aggregator, nodes, keys, model, number)
        results.append((rid, tx_open, submits, batch, tx_fin))
    r1, r2 = results[0], results[1]
    notes.append(("openRound, first round ever", r1[1].gas_used))
    gas["openRound"] = r2[1].gas_used
    notes.append(("submitUpdate, a node's first commitment ever (its lastCommittedRound 0 -> 1)", r1[2][1].gas_used))
    gas["submitUpdate"] = r2[2][1].gas_used
    notes.append(("submitUpdate, first committer of round 2 (same as any other committer)", r2[2][0].gas_used))
    notes.append((f"submitBatch of {BATCH}, the nodes' first commitments ever", r1[3].gas_used))
    gas[f"submitBatch_{BATCH}"] = r2[3].gas_used
    gas[f"submitBatch_per_node_{BATCH}"] = r2[3].gas_used // BATCH
    notes.append(("finalizeRound, first round ever", r1[4].gas_used))
    gas["finalizeRound"] = r2[4].gas_used

    # A batch of one, and skipped entries (a duplicate, a stranger's signature) in round 4.
    tx4 = rounds.openRound(model, h("config", 4), params(chain.time() + ROUND_SECONDS), {"from": aggregator})
    rid4 = tx4.return_value
    one = rounds.submitBatch(rid4, [signed(rounds, keys[0], rid4, h("relayed0", 4), 500)], {"from": aggregator})
    notes.append(("submitBatch of 1 (steady state)", one.gas_used))
    dup = rounds.submitBatch(rid4, [signed(rounds, keys[0], rid4, h("relayed0", 4), 500)], {"from": aggregator})
    notes.append(("submitBatch of 1 skipped entry (AlreadySubmitted)", dup.gas_used))
    stranger = "0x" + keccak(text="stranger").hex()
    skip = rounds.submitBatch(rid4, [signed(rounds, stranger, rid4, h("x"), 5)], {"from": aggregator})
    notes.append(("submitBatch of 1 skipped entry (NotEligible: not a node)", skip.gas_used))

    # Round 4 gets no more commitments: past deadline + grace anyone expires it.
    chain.sleep(ROUND_SECONDS + GRACE + 1)
    chain.mine()
    gas["expireRound"] = rounds.expireRound(rid4, {"from": accounts[9]}).gas_used
    # Round 5 is left open past deadline + grace: opening round 6 expires it first.
    run_round(rounds, aggregator, nodes[:1], [], model, 5, finalize=False)
    chain.sleep(ROUND_SECONDS + GRACE + 1)
    chain.mine()
    tx6 = rounds.openRound(model, h("config", 6), params(chain.time() + ROUND_SECONDS), {"from": aggregator})
    notes.append(("openRound that first expires the expirable previous round", tx6.gas_used))
    # A sampled round stores its seed too.
    chain.sleep(ROUND_SECONDS + GRACE + 1)
    chain.mine()
    tx7 = rounds.openRound(model, h("config", 7), (chain.time() + ROUND_SECONDS, 1, MAX_SAMPLES, 2**63, 0, 0, 0, 0),
                           {"from": aggregator})
    notes.append(("openRound of a sampled round, expiring the previous one", tx7.gas_used))

    # Secure rounds, after every transparent case. Round 7 is expired, round 8 is a transparent
    # round finalized (so round 9 opens after a finalized round, like the typical openRound).
    chain.sleep(ROUND_SECONDS + GRACE + 1)
    chain.mine()
    rounds.expireRound(tx7.return_value, {"from": accounts[9]})
    *_, model = run_round(rounds, aggregator, nodes, keys, model, 8)
    # Round 9: every node commits (so it is sealed at once), no exclusion, then 6 direct posts and
    # 10 relayed ones, then finalized.
    rid9, tx9, *_ = run_round(rounds, aggregator, nodes, keys, model, 9, finalize=False, threshold=THRESHOLD)
    gas["openRound_secure"] = tx9.gas_used
    gas["sealCommitments_0"] = rounds.sealCommitments(rid9, [], rounds.getRound(rid9)["commitCount"],
                                                     {"from": aggregator}).gas_used
    posts = [rounds.submitUnmask(rid9, h(f"unmask{n}", 9), {"from": node}) for n, node in enumerate(nodes)]
    notes.append(("submitUnmask, the round's first post (its accumulator was written at sealing)", posts[0].gas_used))
    gas["submitUnmask"] = posts[1].gas_used
    entries = [signed_unmask(rounds, k, rid9, h(f"unmask-relayed{n}", 9)) for n, k in enumerate(keys[:UNMASK_BATCH])]
    ubatch = rounds.submitUnmaskBatch(rid9, entries, {"from": aggregator})
    assert ubatch.return_value == UNMASK_BATCH, ubatch.return_value
    gas[f"submitUnmaskBatch_{UNMASK_BATCH}"] = ubatch.gas_used
    gas[f"submitUnmaskBatch_per_node_{UNMASK_BATCH}"] = ubatch.gas_used // UNMASK_BATCH
    one = rounds.submitUnmaskBatch(rid9, [signed_unmask(rounds, keys[UNMASK_BATCH], rid9, h("unmask-one", 9))],
                                   {"from": aggregator})
    notes.append(("submitUnmaskBatch of 1", one.gas_used))
    dup = rounds.submitUnmaskBatch(rid9, [signed_unmask(rounds, keys[0], rid9, h("unmask-again", 9))],
                                   {"from": aggregator})
    notes.append(("submitUnmaskBatch of 1 skipped entry (AlreadySubmitted)", dup.gas_used))
    model = h("model", 9)
    gas["finalizeRound_secure"] = rounds.finalizeRound(rid9, model, h("report", 9), len(nodes) + len(keys),
                                                       {"from": aggregator}).gas_used
    # Round 10: every node commits, the seal excludes 3 of them; nobody posts and the round expires.
    rid10, *_ = run_round(rounds, aggregator, nodes, keys, model, 10, finalize=False, threshold=THRESHOLD)
    excluded = sorted((Account.from_key(k).address for k in keys[:3]), key=lambda a: int(a, 16))
    gas["sealCommitments_3"] = rounds.sealCommitments(rid10, excluded, rounds.getRound(rid10)["commitCount"],
                                                     {"from": aggregator}).gas_used
    chain.sleep(ROUND_SECONDS + UNMASK_WINDOW + GRACE + 1)
    chain.mine()
    notes.append(("expireRound of a secure round (after unmaskDeadline + grace)",
                  rounds.expireRound(rid10, {"from": accounts[9]}).gas_used))

    # Round 11: a close window; the commitment that reaches the quorum (3) brings the deadline forward.
    rid11 = rounds.openRound(model, h("config", 11), params(chain.time() + ROUND_SECONDS, 3, close_window=RELAY_CUTOFF + 60),
                             {"from": aggregator}).return_value
    c11 = [rounds.submitUpdate(rid11, h(f"update{n}", 11), 1000 + n, {"from": node}) for n, node in enumerate(nodes[:4])]
    assert "DeadlineBroughtForward" in c11[2].events and "DeadlineBroughtForward" not in c11[3].events
    gas["submitUpdate_quorum_close"] = c11[2].gas_used
    notes.append(("submitUpdate below the quorum in a round with a close window", c11[1].gas_used))

    print("\nOther cases (gasUsed):")
    for label, value in notes:
        print(f"  {value:>7,}  {label}")
    print("\nTypical calls (gasUsed, 21,000 base included):")
    for name in gas:
        print(f"  {gas[name]:>9,}  {name}")
    order = ["admitNode", "removeNode", "register", "updateNode", "setOpenRegistration", "setGenesisModel",
             "openRound", "submitUpdate", "submitUpdate_quorum_close", f"submitBatch_{BATCH}", f"submitBatch_per_node_{BATCH}", "finalizeRound",
             "expireRound", "openRound_secure", "sealCommitments_0", "sealCommitments_3", "submitUnmask",
             f"submitUnmaskBatch_{UNMASK_BATCH}", f"submitUnmaskBatch_per_node_{UNMASK_BATCH}", "finalizeRound_secure",
             "deploy"]
    result = {name: int(gas[name]) for name in order}
    # Stop the chain now, so that brownie's "Terminating local RPC client..." comes before the
    # JSON line instead of after it.
    if network.is_connected():
        network.disconnect()
    print(json.dumps(result), flush=True)
    return result
