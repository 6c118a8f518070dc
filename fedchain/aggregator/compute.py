"""The deterministic core of a round, shared by the aggregator and by ``fedchain verify``.

Two steps, both pure functions of their inputs:

1. :func:`decide` checks each on-chain commitment against the blob it names (if any), in node
   order, and says why an update is rejected: ``missing_upload``, ``hash_mismatch``,
   ``duplicate_update`` (a hash another node committed first), ``not_own_update`` (the blob names
   another sender, round, chain or contract: a copied commitment), or a codec reason
   (``malformed``, ``wrong_shape``, ``non_finite``...).
2. :func:`merge` combines the accepted updates with the configured strategy and serialises the
   model canonically.

The aggregator runs both on what it received. ``verify`` runs :func:`merge` on the updates the
round report says were accepted (every one of which it re-checks with :func:`check_update`), so
its verdict depends only on the chain, the committed config and the blobs the report references,
never on what a store happens to hold later.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from fedchain.aggregator.config import RoundRules
from fedchain.chain.types import Commitment
# _header and _check_name: the codec's own canonical layout, so the no-copy check cannot drift from it
from fedchain.codec import MAX_HEADER_BYTES, UpdateIdentity, _check_name, _header, decode_update, encode_tensors, tensor_spec
from fedchain.errors import InvalidBlob
from fedchain.hashing import commitment
from fedchain.memory import populate
from fedchain.strategy import (
    AggregationError, ClientUpdate, FedAdam, FedAvg, FedAvgM, FedProx, FedYogi, StepResult, get_strategy,
)
from fedchain.strategy.aggregate import RunningWeightedMean, all_finite, as_f64, sorted_rows
from fedchain.strategy.base import ordered_updates
from fedchain.strategy.median import Median, median_of_sorted
from fedchain.strategy.trimmed_mean import TrimmedMean, trimmed_count, trimmed_mean_of_sorted

#: Reason codes in round reports (the text after the colon explains).
MISSING_UPLOAD = "missing_upload"
HASH_MISMATCH = "hash_mismatch"
DUPLICATE_UPDATE = "duplicate_update"
NOT_OWN_UPDATE = "not_own_update"


@dataclass(frozen=True)
class UpdateDecision:
    node: str
    update_hash: str
    num_samples: int
    accepted: bool
    reason: str | None
    weight: float = 0.0

    @property
    def code(self) -> str | None:
        """The reason code alone (``missing_upload``...), without its explanation."""
        return None if self.reason is None else self.reason.split(":", 1)[0]

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "update_hash": self.update_hash,
            "num_samples": self.num_samples,
            "accepted": self.accepted,
            "reason": self.reason,
            "weight": self.weight,
        }


@dataclass
class RoundComputation:
    decisions: list[UpdateDecision]
    model: dict[str, np.ndarray] | None = None
    model_bytes: bytes | None = None
    model_hash: str | None = None
    #: A stateful strategy's state after the round, canonical bytes and hash (the next round's input).
    state_bytes: bytes | None = None
    state_hash: str | None = None
    #: The strategy's own deterministic facts (Krum's selection, clipping norms...), for the report.
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def accepted(self) -> list[UpdateDecision]:
        return [d for d in self.decisions if d.accepted]

    @property
    def rejected(self) -> list[UpdateDecision]:
        return [d for d in self.decisions if not d.accepted]


@dataclass(frozen=True)
class RoundContext:
    """What identifies a round's updates: the blob of node N must name (chain, contract, round, N)."""

    chain_id: int
    contract: str
    round_id: int

    def identity(self, node: str) -> UpdateIdentity:
        return UpdateIdentity(chain_id=self.chain_id, contract=self.contract, round=self.round_id, node=node)


def check_update(
    data: bytes | None,
    c: Commitment,
    spec: Mapping[str, tuple[int, ...]],
    ctx: RoundContext,
    max_bytes: int,
    uploaded_hashes: Sequence[str] = (),
    *,
    verified: bool = False,
) -> tuple[dict[str, np.ndarray] | None, str | None]:
    """Validate one committed update. Returns (weights, None) or (None, "code: explanation").
    ``verified``: ``data`` was read under ``c.update_hash`` by a store that checked it hashes to
    that (see :func:`check_blob`)."""
    reason = check_blob(data, c, max_bytes, uploaded_hashes, verified=verified)
    if reason is not None or data is None:
        return None, reason
    return _checked_copy(data, c, spec, ctx, max_bytes)


def check_blob(data: bytes | None, c: Commitment, max_bytes: int, uploaded_hashes: Sequence[str] = (), *,
               verified: bool = False) -> str | None:
    """The checks every committed blob meets before its contents (plaintext or masked) are decoded:
    it was uploaded, is within the round's size limit and hashes to the commitment. The reason
    ("code: explanation"), or None. ``verified``: ``data`` is what a verifying store returned for
    ``c.update_hash`` (its ``get`` re-hashes and raises on a mismatch), so the hash is not computed
    a second time."""
    if data is None:
        others = [h for h in uploaded_hashes if h != c.update_hash]
        if others:
            return f"{HASH_MISMATCH}: the node uploaded {others[0]} but committed {c.update_hash}"
        return f"{MISSING_UPLOAD}: no blob with the committed hash {c.update_hash} was uploaded"
    if len(data) > max_bytes:
        return f"too_large: blob is {len(data)} bytes, the round's limit is {max_bytes}"
    if not verified:
        actual = commitment(data)
        if actual != c.update_hash:
            return f"{HASH_MISMATCH}: blob hashes to {actual}, commitment is {c.update_hash}"
    return None


def decide(
    config: Mapping[str, Any],
    base: Mapping[str, np.ndarray],
    commitments: Sequence[Commitment],
    fetch: Callable[[str], bytes | None],
    ctx: RoundContext,
    *,
    uploads: Callable[[str], Sequence[str]] | None = None,
    fetch_verified: bool = False,
) -> list[tuple[UpdateDecision, dict[str, np.ndarray] | None]]:
    """Check every commitment (``commitments`` in commit order, as the chain lists them).

    Each is checked on its own: the blob names its sender, so of several nodes that commit the
    same hash only the one it names can pass, whoever committed first (a copier that front-runs
    the owner gets ``not_own_update``, the owner is accepted). When the blob is absent, the later
    committers of a shared hash are ``duplicate_update`` and the first ``missing_upload``."""
    rules = RoundRules.of(config)
    spec = tensor_spec(base)
    return list(_check_each(
        commitments, fetch,
        lambda data, c: check_update(data, c, spec, ctx, rules.max_update_bytes, uploads(c.node) if uploads else (),
                                     verified=fetch_verified),
    ))


def _check_each(
    commitments: Sequence[Commitment],
    fetch: Callable[[str], bytes | None],
    check: Callable[[bytes | None, Commitment], tuple[Any, str | None]],
) -> Iterator[tuple[UpdateDecision, Any]]:
    """Every commitment in node order with ``check(bytes or None, commitment) -> (value or None,
    reason)``, one blob fetched at a time (a hash found absent is not fetched again). The later
    committers of a shared hash whose blob is absent become ``duplicate_update``."""
    first_by_hash: dict[str, str] = {}
    for c in commitments:
        first_by_hash.setdefault(c.update_hash, c.node)
    absent: set[str] = set()
    for c in sorted(commitments, key=lambda c: c.node.lower()):
        data = None if c.update_hash in absent else fetch(c.update_hash)
        if data is None:
            absent.add(c.update_hash)
        value, reason = check(data, c)
        del data
        first = first_by_hash[c.update_hash]
        if value is None and first != c.node and (reason or "").startswith(MISSING_UPLOAD):
            reason = f"{DUPLICATE_UPDATE}: {c.update_hash} was committed first by {first}"
        yield UpdateDecision(c.node, c.update_hash, c.num_samples, value is not None, reason), value
        del value  # before the next fetch: streaming callers hold one blob at a time


def merge(
    config: Mapping[str, Any],
    base: Mapping[str, np.ndarray],
    checked: Sequence[tuple[UpdateDecision, dict[str, np.ndarray] | None]],
    *,
    min_updates: int,
    state: Mapping[str, np.ndarray] | None = None,
) -> RoundComputation:
    """Merge the accepted updates with the config's strategy (below quorum: no model).
    ``state`` is a stateful strategy's input: the blob the config's ``strategy.state_hash`` names."""
    rules = RoundRules.of(config)
    accepted = [ClientUpdate(node=d.node, weights=w, num_samples=min(d.num_samples, rules.max_samples))
                for d, w in checked if d.accepted and w is not None]
    strategy = get_strategy(rules.strategy["name"], rules.strategy.get("params") or {})
    return _conclude(rules, strategy, [d for d, _ in checked], accepted, min_updates,
                     lambda: strategy.step(base, accepted, state))


def _conclude(
    rules: RoundRules,
    strategy: Any,
    decisions: Sequence[UpdateDecision],
    accepted: Sequence[ClientUpdate],
    min_updates: int,
    run: Callable[[], StepResult],
) -> RoundComputation:
    """The end shared by every path of a round: run the strategy's step when the quorum is there
    (an ``AggregationError`` — Krum or Bulyan with too few updates for their f — means no model, so
    the round cannot finalize and expires, with the reason in ``details``), then put the decisions
    with their weights, the model and the state into canonical bytes."""
    step = None
    failure: str | None = None
    if len(accepted) >= max(1, min_updates):
        try:
            step = run()
        except AggregationError as exc:
            failure = f"{rules.strategy['name']}: {exc.message}"
    weights = step.weights if step is not None else (strategy.weights(accepted) if accepted else {})
    result = RoundComputation(decisions=[
        UpdateDecision(d.node, d.update_hash, d.num_samples, d.accepted, d.reason,
                       float(weights.get(d.node, 0.0)) if d.accepted else 0.0)
        for d in decisions
    ])
    if failure is not None:
        result.details = {"error": failure}
    if step is not None:
        result.model = step.model
        result.model_bytes = encode_tensors(step.model)
        result.model_hash = commitment(result.model_bytes)
        result.details = dict(step.details)
        if step.state is not None:
            result.state_bytes = encode_tensors(step.state)
            result.state_hash = commitment(result.state_bytes)
    return result


def compute_round(
    config: Mapping[str, Any],
    base: "Mapping[str, np.ndarray] | ModelShapes",
    commitments: Sequence[Commitment],
    fetch: Callable[[str], bytes | None],
    ctx: RoundContext,
    *,
    min_updates: int,
    uploads: Callable[[str], Sequence[str]] | None = None,
    state: Mapping[str, np.ndarray] | None = None,
    fetch_verified: bool = False,
) -> RoundComputation:
    """Decide, merge and serialise. ``fetch(hash)`` returns the blob's bytes or None if absent.

    ``base`` is the base model's arrays, or only its :class:`ModelShapes` when the rule does not
    read the base model's values (:func:`reads_base_values`: FedAvg and FedProx), so that the
    caller need not hold the base model during the round. ``fetch_verified``: ``fetch(h)`` returns
    only bytes that hash to ``h`` (a store's verifying ``get``, which raises on corrupted bytes),
    so the per-blob comparison with the commitment is already done and each blob is hashed once.

    Mean-type rules (fedavg, fedprox, and the server optimisers' pseudo-gradient) run streaming
    (:func:`stream_round`: O(model) memory, the same result to the bit); median and trimmed mean
    without pre-aggregators run slice by slice (:func:`sliced_round`: the blobs, n x model float32
    bytes, plus n x slice float64); the others run :func:`decide` then :func:`merge`, which hold
    every accepted update decoded and its float64 delta (docs/benchmarks.md, "Memory by rule")."""
    rules = RoundRules.of(config)
    strategy = get_strategy(rules.strategy["name"], rules.strategy.get("params") or {})
    kind = streaming_kind(strategy)
    if isinstance(base, ModelShapes) and kind != "models":
        raise ValueError(f"strategy {rules.strategy['name']} reads the base model's values: pass its arrays, "
                         "not only its shapes")
    if kind is not None:
        return stream_round(config, base, commitments, fetch, ctx, min_updates=min_updates, uploads=uploads,
                            state=state, fetch_verified=fetch_verified)
    if sliced_kind(strategy) is not None:
        return sliced_round(config, base, commitments, fetch, ctx, min_updates=min_updates, uploads=uploads,
                            fetch_verified=fetch_verified)
    return merge(config, base, decide(config, base, commitments, fetch, ctx, uploads=uploads,
                                      fetch_verified=fetch_verified),
                 min_updates=min_updates, state=state)


@dataclass(frozen=True)
class ModelShapes:
    """A base model's tensor names and shapes without its values: all that a round whose rule
    does not read the base model's values needs of it (:func:`reads_base_values`), so that the
    aggregator does not hold the base model (1x model) while such a round streams."""

    shapes: Mapping[str, tuple[int, ...]]

    @classmethod
    def of(cls, base: Mapping[str, Any]) -> "ModelShapes":
        return cls({name: tuple(shape) for name, shape in tensor_spec(base).items()})


def reads_base_values(config: Mapping[str, Any]) -> bool:
    """False for the rules whose model is the weighted mean of the updates themselves (fedavg,
    fedprox): their round needs only the base model's :class:`ModelShapes`. True for every other
    rule (the server optimisers, the robust rules: they work on ``update - base``)."""
    rules = RoundRules.of(config)
    return streaming_kind(get_strategy(rules.strategy["name"], rules.strategy.get("params") or {})) != "models"


def _spec_of(base: Mapping[str, np.ndarray] | ModelShapes) -> dict[str, tuple[int, ...]]:
    return dict(base.shapes) if isinstance(base, ModelShapes) else tensor_spec(base)


# --- streaming (O(model) memory) -------------------------------------------------------------------
def streaming_kind(strategy: Any) -> str | None:
    """``"models"`` for rules whose model is the sample-weighted mean of the updates (fedavg,
    fedprox), ``"deltas"`` for the server optimisers (the weighted mean of ``update - base`` feeds
    the optimiser), None for the rules that need every update at once (order statistics,
    distances). Exact classes only: a subclass may change the rule."""
    if type(strategy) in (FedAvg, FedProx):
        return "models"
    if type(strategy) in (FedAvgM, FedAdam, FedYogi):
        return "deltas"
    return None


def _expected_header(spec: Mapping[str, tuple[int, ...]], ctx: RoundContext, node: str) -> bytes:
    """The 8-byte length field and header of the one canonical update blob that node ``node`` can
    send for this round and model (codec: canonical header, tensors in name order, its identity)."""
    header, _ = _header([(name, tuple(spec[name])) for name in sorted(spec)], ctx.identity(node).metadata())
    return len(header).to_bytes(8, "little") + header


def check_update_views(
    data: bytes | None,
    c: Commitment,
    spec: Mapping[str, tuple[int, ...]],
    ctx: RoundContext,
    max_bytes: int,
    uploaded_hashes: Sequence[str] = (),
    *,
    verified: bool = False,
) -> tuple[dict[str, np.ndarray] | None, str | None]:
    """:func:`check_update` without copying: on acceptance the arrays are read-only float32 views
    into ``data`` (keep ``data`` alive while using them). Accepts and rejects exactly what
    :func:`check_update` does, with the same reasons.

    The canonical form leaves one valid byte layout for a given model spec and sender identity, so
    a blob whose length field and header equal that layout's, whose length is the header plus the
    tensor bytes and whose values are all finite is exactly a blob :func:`decode_update` accepts
    (same arrays). Anything else goes through :func:`check_update` itself, for its reason."""
    if data is None or len(data) > max_bytes or sys.byteorder != "little":
        return check_update(data, c, spec, ctx, max_bytes, uploaded_hashes, verified=verified)
    reason = check_blob(data, c, max_bytes, uploaded_hashes, verified=verified)
    if reason is not None:
        return None, reason
    prefix = _expected_header(spec, ctx, c.node)
    sizes = {name: math.prod(spec[name]) for name in spec}
    view = memoryview(data).cast("B")
    if (view.nbytes != len(prefix) + 4 * sum(sizes.values()) or view[: len(prefix)] != prefix
            or len(prefix) - 8 > MAX_HEADER_BYTES or not _valid_names(spec)):
        return _checked_copy(data, c, spec, ctx, max_bytes)
    # the tensors lie back to back after the header: one finiteness check over all of them
    payload = np.frombuffer(view, dtype=np.float32, count=sum(sizes.values()), offset=len(prefix))
    if not all_finite(payload):
        return _checked_copy(data, c, spec, ctx, max_bytes)  # non_finite, with the count
    out: dict[str, np.ndarray] = {}
    offset = 0
    for name in sorted(spec):
        out[name] = payload[offset : offset + sizes[name]].reshape(spec[name])
        offset += sizes[name]
    return out, None


def _valid_names(spec: Mapping[str, tuple[int, ...]]) -> bool:
    try:
        for name in spec:
            _check_name(name)
    except InvalidBlob:
        return False
    return True


def _checked_copy(data: bytes, c: Commitment, spec: Mapping[str, tuple[int, ...]], ctx: RoundContext,
                  max_bytes: int) -> tuple[dict[str, np.ndarray] | None, str | None]:
    """The decode step of :func:`check_update` (the size and the hash were checked already)."""
    try:
        return decode_update(data, identity=ctx.identity(c.node), max_bytes=max_bytes, expected=spec), None
    except InvalidBlob as exc:
        return None, f"{exc.reason}: {exc.message}"


def stream_round(
    config: Mapping[str, Any],
    base: "Mapping[str, np.ndarray] | ModelShapes",
    commitments: Sequence[Commitment],
    fetch: Callable[[str], bytes | None],
    ctx: RoundContext,
    *,
    min_updates: int,
    uploads: Callable[[str], Sequence[str]] | None = None,
    state: Mapping[str, np.ndarray] | None = None,
    fetch_verified: bool = False,
) -> RoundComputation:
    """:func:`compute_round` for a mean-type rule, holding one update at a time.

    In node order, each committed blob is fetched, checked (:func:`check_update_views`: hash,
    canonical header and identity, finiteness, no copy), added into float64 accumulators
    (:class:`~fedchain.strategy.aggregate.RunningWeightedMean`, the running form of the rule's
    ``weighted_mean``), and dropped. Decisions, weights, model, state, details and errors are those
    of ``merge(decide(...))`` to the bit (tests/unit/test_streaming_merge.py). Peak memory: the
    accumulators (8 bytes per parameter), one blob (4 per parameter), the base if the caller
    holds it (a FedAvg or FedProx round needs only its :class:`ModelShapes`), and slices of
    :data:`~fedchain.strategy.aggregate.STREAM_CHUNK` elements; plus, at the end, the new model
    (4 per parameter) and, for a server optimiser, its moments."""
    rules = RoundRules.of(config)
    strategy = get_strategy(rules.strategy["name"], rules.strategy.get("params") or {})
    kind = streaming_kind(strategy)
    if kind is None:
        raise ValueError(f"strategy {rules.strategy['name']} does not stream; use decide() and merge()")
    if isinstance(base, ModelShapes) and kind != "models":
        raise ValueError(f"strategy {rules.strategy['name']} reads the base model's values: pass its arrays")
    spec = _spec_of(base)
    names = sorted(spec)
    sums = {name: RunningWeightedMean(spec[name]) for name in names}
    for acc in sums.values():  # fresh pages: one call each, not a fault per 4 KiB page (fedchain.memory)
        populate(acc.buffer.ctypes.data, acc.buffer.nbytes)
    checked: list[UpdateDecision] = []
    views_of = lambda data, c: check_update_views(data, c, spec, ctx, rules.max_update_bytes,  # noqa: E731
                                                  uploads(c.node) if uploads else (), verified=fetch_verified)
    for decision, views in _check_each(commitments, fetch, views_of):
        checked.append(decision)
        n = min(decision.num_samples, rules.max_samples)
        if views is not None and not isinstance(n, bool) and isinstance(n, (int, np.integer)) and n > 0:
            for name in names:  # (a bad count fails the merge below, as weighted_mean's input check would)
                sums[name].add(views[name], n, minus=base[name] if kind == "deltas" else None)
        del views
    accepted = [ClientUpdate(node=d.node, weights={}, num_samples=min(d.num_samples, rules.max_samples))
                for d in checked if d.accepted]
    return _conclude(rules, strategy, checked, accepted, min_updates,
                     lambda: _finish_models(strategy, accepted, sums, names) if kind == "models"
                     else _finish_deltas(strategy, base, accepted, sums, names, state))


def _finish_models(strategy: Any, accepted: list[ClientUpdate], sums: dict[str, RunningWeightedMean],
                   names: list[str]) -> StepResult:
    """FedAvg.aggregate / FedProx.aggregate from the running sums (same checks, same order)."""
    ordered = ordered_updates(accepted)  # the errors FedAvg.aggregate raises (none, duplicates, counts)
    model = {}
    for name in names:
        model[name] = sums[name].result()
        sums[name] = None  # type: ignore[assignment]  # free each accumulator once it is cast
    return StepResult(model=model, weights=strategy.weights(ordered))


def _finish_deltas(strategy: Any, base: Mapping[str, np.ndarray], accepted: list[ClientUpdate],
                   sums: dict[str, RunningWeightedMean], names: list[str],
                   state: Mapping[str, np.ndarray] | None) -> StepResult:
    """The server optimiser's own step (``ServerOptimizer.finish``), fed the running pseudo-gradient sums."""

    def pseudo(k: str) -> np.ndarray:
        value = sums[k].result_f64()
        sums[k] = None  # type: ignore[assignment]  # free each accumulator once it is read
        return value

    return strategy.finish(base, ordered_updates(accepted), pseudo, state)



# --- order statistics slice by slice --------------------------------------------------------------
#: Float64 values per slice across all nodes in :func:`sliced_round` (8 MiB per stacked slice).
SLICE_BUDGET = 1 << 20


def sliced_kind(strategy: Any) -> str | None:
    """``"median"`` / ``"trimmed_mean"`` for those rules without pre-aggregators (a coordinate-wise
    order statistic of the raw deltas: any slice of the coordinates can be computed alone); None
    otherwise (clipping needs whole-model norms first, bucketing whole-model means, Krum distances)."""
    if type(strategy) in (Median, TrimmedMean) and not strategy.params["pre"]:
        return strategy.name
    return None


def sliced_round(
    config: Mapping[str, Any],
    base: Mapping[str, np.ndarray],
    commitments: Sequence[Commitment],
    fetch: Callable[[str], bytes | None],
    ctx: RoundContext,
    *,
    min_updates: int,
    uploads: Callable[[str], Sequence[str]] | None = None,
    fetch_verified: bool = False,
) -> RoundComputation:
    """:func:`compute_round` for median / trimmed mean (no ``pre``), one slice of coordinates at a time.

    The accepted blobs are kept as they are (checked by :func:`check_update_views`, no decoded copy):
    n x model float32 bytes. Each tensor is then walked in slices of about ``SLICE_BUDGET / n``
    coordinates: the slice's float64 deltas of every node are stacked and sorted
    (:func:`~fedchain.strategy.aggregate.sorted_rows`), reduced (``median_of_sorted`` /
    ``trimmed_mean_of_sorted``) and added to the base, exactly the element operations of
    :class:`~fedchain.strategy.robust.RobustStrategy.step` (all are per coordinate), so the model,
    weights and details equal ``merge(decide(...))``'s to the bit. Peak memory: the blobs, plus
    two n x slice float64 arrays (16 MiB), plus the model."""
    rules = RoundRules.of(config)
    strategy = get_strategy(rules.strategy["name"], rules.strategy.get("params") or {})
    kind = sliced_kind(strategy)
    if kind is None:
        raise ValueError(f"strategy {rules.strategy['name']} is not computed slice by slice; use decide() and merge()")
    spec = tensor_spec(base)
    checked = list(_check_each(
        commitments, fetch,
        lambda data, c: check_update_views(data, c, spec, ctx, rules.max_update_bytes, uploads(c.node) if uploads else (),
                                           verified=fetch_verified),
    ))
    accepted = [ClientUpdate(node=d.node, weights=w, num_samples=min(d.num_samples, rules.max_samples))
                for d, w in checked if d.accepted and w is not None]
    decisions = [d for d, _ in checked]
    del checked  # the blobs live on in `accepted` until the step is done
    return _conclude(rules, strategy, decisions, accepted, min_updates,
                     lambda: _sliced_step(strategy, kind, base, accepted))


def _sliced_step(strategy: Any, kind: str, base: Mapping[str, np.ndarray],
                 accepted: list[ClientUpdate]) -> StepResult:
    ordered = ordered_updates(accepted)  # RobustStrategy.points' checks (spec: checked by the decode)
    names = sorted(base)
    n = len(ordered)
    k = 0
    details: dict[str, Any] = {}
    if kind == "trimmed_mean":
        k = trimmed_count(strategy.params["beta"], n)
        strategy.need(n - 2 * k >= 1, f"beta={strategy.params['beta']} trims {k} of {n} on each side, leaving nothing")
        details = {"trimmed_per_side": k}
    step = max(1, SLICE_BUDGET // n)
    model: dict[str, np.ndarray] = {}
    for name in names:
        b = np.asarray(base[name]).reshape(-1)
        flats = [np.asarray(u.weights[name]).reshape(-1) for u in ordered]
        out = np.empty(b.size, dtype=np.float32)
        for start in range(0, b.size, step):
            end = min(start + step, b.size)
            b64 = as_f64(b[start:end])
            deltas = []
            for x in flats:  # delta_of on the slice: float64(x) - float64(base), then -0.0 -> +0.0
                d = np.subtract(as_f64(x[start:end]), b64)
                np.add(d, 0.0, out=d)
                deltas.append(d)
            rows = sorted_rows(deltas)
            del deltas
            delta = median_of_sorted(rows) if kind == "median" else trimmed_mean_of_sorted(rows, k)
            out[start:end] = np.add(b64, delta).astype(np.float32)
        model[name] = out.reshape(np.shape(base[name]))
    weights: dict[str, float] = {}
    for u in ordered:  # RobustStrategy.step: each point's weight 1/n, shared by its one member
        weights[u.node] = weights.get(u.node, 0.0) + float(1.0 / n) / 1
    return StepResult(model=model, weights=weights, state=None, details=details)
