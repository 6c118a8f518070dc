"""Gas used by every state-changing function of NodeRegistry and TrainingRounds, in a typical call.

    brownie run scripts/gas.py          (make gas)

Deploys on the development network (a fresh anvil), admits nodes, runs rounds and reads
``gasUsed`` from each receipt (the 21,000 base included). "Typical" means steady state, not the
first call ever: e.g. an ``openRound`` after a finalized round, a ``submitUpdate`` by a node
that already committed in an earlier round. The other cases that cost differently are printed
above. The last line of output is a JSON object ``{function: gas}``; docs/gas.md explains it.
"""

from __future__ import annotations

import json
import warnings

from brownie import NodeRegistry, TrainingRounds, accounts, chain, network, web3

# brownie 1.22 warns about its own internal use of rpc.sleep/mine/snapshot.
warnings.filterwarnings("ignore", message=r"rpc\.\w+ should not be called directly", category=FutureWarning)

GRACE = 60
ROUND_SECONDS = 3600
NODES = 6
PUBLIC_KEY = bytes(range(1, 33))  # a 32-byte key, e.g. X25519 for secure aggregation


def h(tag: str, i: int = 0) -> str:
    """A distinct bytes32 without zero bytes (calldata cost does not depend on the value)."""
    return "0x" + bytes([(ord(c) + i) % 255 + 1 for c in tag.ljust(32, "#")[:32]]).hex()


def run_round(rounds, aggregator, nodes, base, number, *, finalize=True):
    """Open a round, let every node commit, finalize. Returns the receipts and the new model."""
    tx_open = rounds.openRound(base, h("config", number), chain.time() + ROUND_SECONDS, 1, {"from": aggregator})
    rid = tx_open.return_value
    submits = [rounds.submitUpdate(rid, h(f"update{n}", number), 1000 + n, {"from": node}) for n, node in enumerate(nodes)]
    if not finalize:
        return rid, tx_open, submits, None, base
    model = h("model", number)
    tx_fin = rounds.finalizeRound(rid, model, h("report", number), len(nodes), {"from": aggregator})
    return rid, tx_open, submits, tx_fin, model


def main() -> dict[str, int]:
    if network.show_active() != "development":
        raise SystemExit("run on the development network (a fresh anvil): brownie run scripts/gas.py")
    # Pay what the node asks (brownie's default, 0, is refused by an anvil with a base fee that
    # brownie attached to instead of launching). gasUsed does not depend on the price.
    network.gas_price(web3.eth.gas_price)
    admin, aggregator = accounts[0], accounts[1]
    nodes = list(accounts[2 : 2 + NODES])
    registry = NodeRegistry.deploy(admin, {"from": admin})
    rounds = TrainingRounds.deploy(registry, admin, GRACE, {"from": admin})
    rounds.grantRole(rounds.AGGREGATOR_ROLE(), aggregator, {"from": admin})

    gas: dict[str, int] = {}
    notes: list[tuple[str, int]] = []

    admits = [registry.admitNode(n, PUBLIC_KEY, h("meta", i), {"from": admin}) for i, n in enumerate(nodes)]
    notes.append(("admitNode, first node ever (node count 0 -> 1)", admits[0].gas_used))
    gas["admitNode"] = admits[1].gas_used
    notes.append(("admitNode, empty key and zero metadata (what `fedchain deploy` does)",
                  registry.admitNode(accounts[8], b"", "0x" + "00" * 32, {"from": admin}).gas_used))
    gas["removeNode"] = registry.removeNode(accounts[8], {"from": admin}).gas_used
    notes.append(("admitNode, re-admitting a removed node (empty key)",
                  registry.admitNode(accounts[8], b"", "0x" + "00" * 32, {"from": admin}).gas_used))
    registry.removeNode(accounts[8], {"from": admin})

    gas["setOpenRegistration"] = registry.setOpenRegistration(True, {"from": admin}).gas_used
    gas["register"] = registry.register(PUBLIC_KEY, h("meta-self"), {"from": accounts[9]}).gas_used
    gas["updateNode"] = registry.updateNode(PUBLIC_KEY[::-1], h("meta-rotated"), {"from": accounts[9]}).gas_used
    registry.removeNode(accounts[9], {"from": admin})
    registry.setOpenRegistration(False, {"from": admin})

    genesis = h("genesis")
    gas["setGenesisModel"] = rounds.setGenesisModel(genesis, {"from": admin}).gas_used

    # Rounds 1..5: every node commits in every round. Samples are packed four rounds per slot,
    # so rounds 1 and 5 start a node's slot and rounds 2-4 write into it.
    model = genesis
    results = []
    for number in range(1, 6):
        rid, tx_open, submits, tx_fin, model = run_round(rounds, aggregator, nodes, model, number)
        results.append((rid, tx_open, submits, tx_fin))
    r1, r2, r5 = results[0], results[1], results[4]
    notes.append(("openRound, first round ever", r1[1].gas_used))
    gas["openRound"] = r2[1].gas_used
    notes.append(("submitUpdate, first round ever, first committer", r1[2][0].gas_used))
    notes.append(("submitUpdate, a node's first round in a 4-round samples slot (rounds 1, 5, 9, ...)", r5[2][1].gas_used))
    gas["submitUpdate"] = r2[2][1].gas_used
    notes.append(("submitUpdate, first committer of round 2 (same as any other committer)", r2[2][0].gas_used))
    notes.append(("finalizeRound, first round ever", r1[3].gas_used))
    gas["finalizeRound"] = r2[3].gas_used

    # Round 6 gets no quorum: past deadline + grace anyone expires it.
    rid, tx_open, _, _, _ = run_round(rounds, aggregator, nodes[:1], model, 6, finalize=False)
    chain.sleep(ROUND_SECONDS + GRACE + 1)
    chain.mine()
    gas["expireRound"] = rounds.expireRound(rid, {"from": accounts[9]}).gas_used
    # Round 7 is left open past deadline + grace: opening round 8 expires it first.
    run_round(rounds, aggregator, nodes[:1], model, 7, finalize=False)
    chain.sleep(ROUND_SECONDS + GRACE + 1)
    chain.mine()
    tx8 = rounds.openRound(model, h("config", 8), chain.time() + ROUND_SECONDS, 1, {"from": aggregator})
    notes.append(("openRound that first expires the expirable previous round", tx8.gas_used))

    print("\nOther cases (gasUsed):")
    for label, value in notes:
        print(f"  {value:>7,}  {label}")
    print("\nTypical calls (gasUsed, 21,000 base included):")
    for name in gas:
        print(f"  {gas[name]:>7,}  {name}")
    order = ["admitNode", "removeNode", "register", "updateNode", "setOpenRegistration", "setGenesisModel",
             "openRound", "submitUpdate", "finalizeRound", "expireRound"]
    result = {name: int(gas[name]) for name in order}
    # Stop the chain now, so that brownie's "Terminating local RPC client..." comes before the
    # JSON line instead of after it.
    if network.is_connected():
        network.disconnect()
    print(json.dumps(result), flush=True)
    return result
