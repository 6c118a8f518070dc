"""Relayed commitments: submitBatch of EIP-712 ``Commitment`` signatures (EIP-2098 compact form).

An entry that its signer could not commit directly is skipped with CommitmentSkipped (it never
reverts the batch); the relay closes ``relayCutoff`` seconds before the deadline, after which a
node can still commit directly until the deadline.
"""

from brownie import web3
from conftest import (
    GRACE,
    SECP256K1_N,
    ZERO,
    ZERO_ADDRESS,
    addr,
    assert_event,
    b32,
    compact,
    decoded_events,
    event_count,
    fold_all,
    h,
    hx,
    next_block_at,
    node_key,
    reverts_with,
    round_dict,
    selected,
    sign,
    submitted,
    typed_commitment,
    warp,
)
from eth_account import Account
from eth_account.messages import encode_typed_data

# SkipReason
INVALID_SIGNATURE, NOT_ELIGIBLE, ALREADY_SUBMITTED, ZERO_HASH, ZERO_SAMPLES, TOO_MANY_SAMPLES = 1, 2, 3, 4, 5, 6


def skipped(tx):
    return [(e["node"], e["reason"]) for e in decoded_events(tx, "CommitmentSkipped")]


def recover(digest, entry) -> str:
    """The address ecrecover gives for a SignedCommitment tuple (no low-s check)."""
    r, vs = int.from_bytes(b32(entry[2]), "big"), int.from_bytes(b32(entry[3]), "big")
    v, s = 27 + (vs >> 255), vs & ((1 << 255) - 1)
    return Account._recover_hash(b32(digest), vrs=(v, r, s))


# --- valid entries ----------------------------------------------------------------------------
def test_a_relayed_batch_commits_every_valid_entry_like_direct_commitments(rounds, fed, nodes, outsider):
    rid, _, _ = fed.open()
    entries = [fed.signed(rid, n, 10 + i) for i, n in enumerate(nodes)]
    tx = fed.batch(rid, entries, sender=outsider)  # anyone may relay; the nodes pay nothing
    assert tx.return_value == 5
    for i, node in enumerate(nodes):
        assert_event(tx, "UpdateSubmitted", i, roundId=rid, node=node, updateHash=fed.update(rid, node),
                     numSamples=10 + i)
        assert rounds.lastCommittedRound(node) == rid
    assert event_count(tx, "CommitmentSkipped") == 0
    r = round_dict(rounds, rid)
    assert r["commitCount"] == 5
    assert r["accumulator"] == hx(fold_all(rounds, rid, submitted(tx)))
    assert rounds.checkCommitments(rid, submitted(tx))


def test_an_empty_batch_changes_nothing(rounds, fed):
    rid, _, _ = fed.open()
    before = round_dict(rounds, rid)
    tx = fed.batch(rid, [])
    assert tx.return_value == 0
    assert web3.eth.get_transaction_receipt(tx.txid)["logs"] == []
    assert round_dict(rounds, rid) == before


def test_a_signature_over_the_full_typed_data_document_is_accepted(rounds, fed, nodes, keys):
    rid, _, _ = fed.open()
    doc = typed_commitment(rounds, rid, h("typed"), 321)
    message = encode_typed_data(full_message=doc)
    signed = Account.sign_message(message, private_key=keys[2])
    # The contract's digest is the EIP-712 hash of that document: the domain is right.
    assert rounds.commitmentDigest(rid, h("typed"), 321) == hx(signed.message_hash)
    tx = fed.batch(rid, [(h("typed"), 321, *compact(signed.v, signed.r, signed.s))])
    assert_event(tx, "UpdateSubmitted", roundId=rid, node=nodes[2], updateHash=h("typed"), numSamples=321)


def test_a_signature_for_another_domain_is_not_accepted(rounds, fed, nodes, keys):
    rid, _, _ = fed.open()
    for field, value in [("version", "1"), ("name", "fedchain-v1"), ("chainId", 1),
                         ("verifyingContract", "0x" + "11" * 20)]:
        doc = typed_commitment(rounds, rid, h("typed"), 5)
        doc["domain"][field] = value
        sig = Account.sign_message(encode_typed_data(full_message=doc), private_key=keys[0])
        entry = (h("typed"), 5, *compact(sig.v, sig.r, sig.s))
        tx = fed.batch(rid, [entry])
        signer = recover(rounds.commitmentDigest(rid, h("typed"), 5), entry)
        assert signer != addr(nodes[0])
        assert_event(tx, "CommitmentSkipped", roundId=rid, node=signer, reason=NOT_ELIGIBLE)
    assert round_dict(rounds, rid)["commitCount"] == 0


# --- skipped entries --------------------------------------------------------------------------
def test_relayed_duplicate_is_skipped_not_reverted(rounds, fed, nodes):
    rid, _, _ = fed.open()
    first = fed.signed(rid, nodes[0], 10)
    again = sign(rounds, fed.keys[0], rid, h("other"), 11)
    tx = fed.batch(rid, [first, fed.signed(rid, nodes[1]), again])
    assert tx.return_value == 2
    assert_event(tx, "CommitmentSkipped", roundId=rid, node=nodes[0], reason=ALREADY_SUBMITTED)
    assert submitted(tx) == [(addr(nodes[0]), fed.update(rid, nodes[0]), 10),
                             (addr(nodes[1]), fed.update(rid, nodes[1]), 100)]
    assert round_dict(rounds, rid)["commitCount"] == 2
    assert rounds.checkCommitments(rid, submitted(tx))


def test_a_relayed_commitment_of_a_node_that_committed_directly_is_skipped(rounds, fed, nodes):
    rid, _, _ = fed.open()
    direct = submitted(fed.submit(rid, nodes[0], 10))
    tx = fed.batch(rid, [fed.signed(rid, nodes[0], 99)])
    assert tx.return_value == 0
    assert_event(tx, "CommitmentSkipped", roundId=rid, node=nodes[0], reason=ALREADY_SUBMITTED)
    assert round_dict(rounds, rid)["commitCount"] == 1
    assert rounds.checkCommitments(rid, direct)


def test_a_direct_commitment_after_a_relayed_one_reverts_already_submitted(rounds, fed, nodes):
    rid, _, _ = fed.open()
    fed.batch(rid, [fed.signed(rid, nodes[0])])
    with reverts_with("AlreadySubmitted", rid, nodes[0]):
        rounds.submitUpdate(rid, h("direct"), 10, {"from": nodes[0]})
    assert round_dict(rounds, rid)["commitCount"] == 1


def test_an_unrecoverable_signature_is_skipped_as_invalid(rounds, fed, nodes):
    rid, _, _ = fed.open()
    good = fed.signed(rid, nodes[1])
    zero_r = (*fed.signed(rid, nodes[0])[:2], ZERO, fed.signed(rid, nodes[0])[3])
    tx = fed.batch(rid, [zero_r, good])
    assert tx.return_value == 1
    assert_event(tx, "CommitmentSkipped", roundId=rid, node=ZERO_ADDRESS, reason=INVALID_SIGNATURE)
    assert submitted(tx) == [(addr(nodes[1]), fed.update(rid, nodes[1]), 100)]


def test_a_signature_over_other_numbers_recovers_a_stranger_and_is_skipped(rounds, fed, nodes):
    rid, _, _ = fed.open()
    tampered = fed.signed(rid, nodes[0], 100, digest_samples=101)  # declares 100, signed 101
    stranger = recover(rounds.commitmentDigest(rid, tampered[0], 100), tampered)
    assert stranger not in (addr(n) for n in nodes)
    tx = fed.batch(rid, [tampered])
    assert_event(tx, "CommitmentSkipped", roundId=rid, node=stranger, reason=NOT_ELIGIBLE)
    assert round_dict(rounds, rid)["commitCount"] == 0
    assert not rounds.hasCommitted(rid, nodes[0])


def test_a_commitment_signed_by_a_non_node_is_skipped_as_not_eligible(rounds, fed):
    rid, _, _ = fed.open()
    key = node_key(1234)
    tx = fed.batch(rid, [sign(rounds, key, rid, h("u"), 10)])
    assert_event(tx, "CommitmentSkipped", roundId=rid, node=Account.from_key(key).address, reason=NOT_ELIGIBLE)
    assert tx.return_value == 0


def test_the_high_s_twin_of_a_valid_signature_cannot_commit_for_its_node(rounds, fed, nodes):
    """(r, n - s, v flipped) is the malleable twin of a signature: ecrecover accepts it. Its s has
    the top bit set (unless s lies in a 2^-128 window), which EIP-2098 uses for v: encoded
    compactly it no longer recovers the node, and any s above n/2 is refused outright."""
    rid, _, _ = fed.open()
    low = fed.signed(rid, nodes[0])
    digest = rounds.commitmentDigest(rid, low[0], low[1])
    sig = Account.unsafe_sign_hash(b32(digest), private_key=fed.keys[0])
    twin_v, twin_s = (28 if sig.v == 27 else 27), SECP256K1_N - sig.s
    assert Account._recover_hash(b32(digest), vrs=(twin_v, sig.r, twin_s)) == addr(nodes[0])
    assert twin_s >= 2**255
    twin = fed.signed(rid, nodes[0], high_s=True)
    stranger = recover(digest, twin)
    assert stranger != addr(nodes[0])
    tx = fed.batch(rid, [twin])
    assert_event(tx, "CommitmentSkipped", roundId=rid, node=stranger, reason=NOT_ELIGIBLE)
    # s just above n/2 (representable in the compact form) is refused before ecrecover.
    for s in (SECP256K1_N // 2 + 1, 2**255 - 1):
        entry = (low[0], low[1], low[2], "0x" + (s | (int.from_bytes(b32(low[3]), "big") >> 255 << 255))
                 .to_bytes(32, "big").hex())
        tx = fed.batch(rid, [entry])
        assert_event(tx, "CommitmentSkipped", roundId=rid, node=ZERO_ADDRESS, reason=INVALID_SIGNATURE)
    assert round_dict(rounds, rid)["commitCount"] == 0
    assert fed.batch(rid, [low]).return_value == 1


def test_zero_hash_zero_samples_and_too_many_samples_are_skipped(rounds, fed, nodes):
    rid, _, _ = fed.open(max_samples=1000)
    tx = fed.batch(rid, [
        sign(rounds, fed.keys[0], rid, ZERO, 10),
        sign(rounds, fed.keys[1], rid, h("u"), 0),
        sign(rounds, fed.keys[2], rid, h("u"), 1001),
        sign(rounds, fed.keys[3], rid, h("u"), 1000),
    ])
    assert tx.return_value == 1
    assert_event(tx, "CommitmentSkipped", 0, roundId=rid, node=nodes[0], reason=ZERO_HASH)
    assert_event(tx, "CommitmentSkipped", 1, roundId=rid, node=nodes[1], reason=ZERO_SAMPLES)
    assert_event(tx, "CommitmentSkipped", 2, roundId=rid, node=nodes[2], reason=TOO_MANY_SAMPLES)
    assert submitted(tx) == [(addr(nodes[3]), h("u"), 1000)]


def test_removed_and_newly_admitted_nodes_are_skipped_as_not_eligible(rounds, fed, admin, nodes, outsider):
    rid, _, _ = fed.open()
    rounds.removeNode(nodes[0], {"from": admin})
    newcomer = node_key(77)
    rounds.admitNode(Account.from_key(newcomer).address, b"", ZERO, {"from": admin})
    tx = fed.batch(rid, [fed.signed(rid, nodes[0]), sign(rounds, newcomer, rid, h("u"), 1)])
    assert skipped(tx) == [(addr(nodes[0]), NOT_ELIGIBLE), (Account.from_key(newcomer).address, NOT_ELIGIBLE)]
    assert_event(tx, "CommitmentSkipped", 1, roundId=rid, node=Account.from_key(newcomer).address,
                 reason=NOT_ELIGIBLE)


def test_a_node_not_selected_in_a_sampled_round_is_skipped(rounds, fed, nodes):
    rid, _, _ = fed.open(selection_rate=2**63)
    seed = round_dict(rounds, rid)["seed"]
    # Whoever the seed picks: committed iff the formula selects the node, skipped otherwise, in order.
    tx = fed.batch(rid, [fed.signed(rid, n) for n in nodes])
    expected = [addr(n) for n in nodes if selected(seed, 2**63, n)]
    assert [e[0] for e in submitted(tx)] == expected
    assert skipped(tx) == [(addr(n), NOT_ELIGIBLE) for n in nodes if not selected(seed, 2**63, n)]
    assert tx.return_value == len(expected)


def test_an_outsiders_signatures_cannot_make_a_sampled_round_miss_selected_nodes(rounds, fed, admin):
    extra = [node_key(100 + i) for i in range(12)]
    for key in extra:
        rounds.admitNode(Account.from_key(key).address, b"", ZERO, {"from": admin})
    rid, _, _ = fed.open(selection_rate=2**63)
    seed = round_dict(rounds, rid)["seed"]
    picks = [selected(seed, 2**63, Account.from_key(k).address) for k in extra]
    assert any(picks) and not all(picks), "a 2^-11 coincidence: every or no extra signer was selected"
    tx = fed.batch(rid, [sign(rounds, k, rid, h("u", i), 1) for i, k in enumerate(extra)])
    assert [e[0] for e in submitted(tx)] == [Account.from_key(k).address for k, p in zip(extra, picks) if p]
    assert len(skipped(tx)) == picks.count(False)


# --- the relay window -------------------------------------------------------------------------
def test_relay_closes_at_the_cutoff_but_direct_commits_continue_until_the_deadline(rounds, fed, nodes):
    rid, _, deadline = fed.open(relay_cutoff=100)
    next_block_at(deadline - 100)
    assert fed.batch(rid, [fed.signed(rid, nodes[0])]).return_value == 1
    next_block_at(deadline - 99)
    with reverts_with("RelayClosed", rid, deadline - 100):
        fed.batch(rid, [fed.signed(rid, nodes[1])])
    next_block_at(deadline)
    tx = fed.submit(rid, nodes[1])
    assert_event(tx, "UpdateSubmitted", roundId=rid, node=nodes[1], updateHash=fed.update(rid, nodes[1]),
                 numSamples=100)
    next_block_at(deadline + 1)
    with reverts_with("DeadlinePassed", rid, deadline):
        fed.submit(rid, nodes[2])


def test_without_a_cutoff_the_relay_is_open_until_the_deadline(rounds, fed, nodes):
    rid, _, deadline = fed.open(relay_cutoff=0)
    next_block_at(deadline)
    assert fed.batch(rid, [fed.signed(rid, nodes[0])]).return_value == 1
    next_block_at(deadline + 1)
    with reverts_with("RelayClosed", rid, deadline):
        fed.batch(rid, [fed.signed(rid, nodes[1])])


def test_a_cutoff_longer_than_the_deadline_keeps_the_relay_closed(rounds, fed, nodes):
    rid, _, deadline = fed.open(relay_cutoff=2**32 - 1)
    assert deadline < 2**32 - 1
    with reverts_with("RelayClosed", rid, 0):
        fed.batch(rid, [fed.signed(rid, nodes[0])])
    assert event_count(fed.submit(rid, nodes[0]), "UpdateSubmitted") == 1


def test_batches_revert_for_unknown_and_closed_rounds(rounds, fed, nodes, outsider):
    with reverts_with("UnknownRound", 1):
        fed.batch(1, [])
    rid = fed.full_round()
    with reverts_with("RoundNotOpen", rid):
        fed.batch(rid, [fed.signed(rid, nodes[0])])
    rid2, _, _ = fed.open()
    warp(round_dict(rounds, rid2)["deadline"] + GRACE + 1)
    rounds.expireRound(rid2, {"from": outsider})
    with reverts_with("RoundNotOpen", rid2):
        fed.batch(rid2, [])


def test_a_signature_for_one_round_does_not_commit_in_another(rounds, fed, nodes):
    r1, _, _ = fed.open()
    old = fed.signed(r1, nodes[0])
    for node in nodes:
        fed.submit(r1, node)
    fed.finalize(r1)
    r2, _, _ = fed.open()
    tx = fed.batch(r2, [old])
    assert tx.return_value == 0
    stranger = recover(rounds.commitmentDigest(r2, old[0], old[1]), old)
    assert stranger != addr(nodes[0])
    assert_event(tx, "CommitmentSkipped", roundId=r2, node=stranger, reason=NOT_ELIGIBLE)
