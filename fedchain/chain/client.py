"""The one chain wrapper: web3.py over brownie build artifacts and ``deployments/<chainId>.json``.

It checks the RPC is reachable (``RpcUnavailable`` names the URL and ``fedchain chain``), keeps a
local nonce, signs with a local key, waits for receipts, and decodes every revert into a
:class:`fedchain.errors.ContractRevert` carrying the custom error's name and arguments.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Callable

import requests
from hexbytes import HexBytes
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3 import Web3
from web3.exceptions import ContractLogicError, TimeExhausted, Web3RPCError

from fedchain.address import to_checksum_address
from fedchain.chain.deployment import Deployment, load_deployment
from fedchain.chain.revert import RevertDecoder, revert_data
from fedchain.chain.views import EventAbi, ViewAbi
from fedchain.chain import accumulator
from fedchain.chain.types import (
    Commitment, EventRecord, RoundInfo, RoundParams, RoundStatus, SecureRoundView, TxResult, UnmaskPhase, UnmaskPost,
)
from fedchain.errors import ChainError, ConfigError, ContractRevert, NotFound, RpcUnavailable
from fedchain.hashing import bytes32_to_hash, hash_to_bytes32

ZERO_HASH = "0x" + "00" * 32
_LOG_CHUNK = 10_000
#: expireRound is valid only in a block after deadline + grace: sent without an estimate (see transact).
EXPIRE_GAS = 150_000
#: sealCommitments is sent as the deadline's second ends, before any block past it exists to estimate
#: against: without an estimate, with this gas (docs/gas.md: 60,351 and 7,559 per exclusion).
SEAL_GAS, SEAL_GAS_PER_EXCLUDED = 150_000, 20_000
#: How long a transaction's fee caps are reused (seconds): web3 otherwise asks for the priority fee
#: and the latest block before every transaction. Within it the base fee can rise by 12.5% a block
#: at most, well inside the 2x base fee the cap allows (web3's own rule).
FEE_TTL = 5.0


def connect_web3(rpc_url: str, timeout: float = 10.0) -> Web3:
    """A connected Web3, or RpcUnavailable naming the URL and the fix."""
    # web3 asks the endpoint for its chain id before each call and transaction (a third of a node's
    # requests); an endpoint's chain id does not change, so that one answer is cached. The client
    # still checks the deployment's chain id once at connect.
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}, cache_allowed_requests=True,
                                cacheable_requests={"eth_chainId"}))
    try:
        w3.eth.chain_id  # noqa: B018 - a real round trip
    except (requests.exceptions.RequestException, OSError) as exc:
        raise RpcUnavailable(rpc_url, type(exc).__name__) from exc
    except Exception as exc:  # an endpoint that answers, but not JSON-RPC
        raise RpcUnavailable(rpc_url, f"not a JSON-RPC endpoint: {exc}") from exc
    return w3


def load_abi(path: Path) -> list[dict[str, Any]]:
    try:
        return json.loads(Path(path).read_text())["abi"]
    except FileNotFoundError as exc:
        raise ConfigError(f"contract artifact {path} not found", hint="run `brownie compile` (make compile)") from exc


def packaged_abi(name: str) -> list[dict[str, Any]] | None:
    """The ABI shipped in the package (``fedchain/chain/abi/<name>.json``, generated from the
    compiled artifact by scripts/export_abi.py), or None if the package has none by that name."""
    from importlib import resources

    try:
        text = resources.files("fedchain.chain").joinpath("abi").joinpath(f"{name}.json").read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None
    return json.loads(text)["abi"]


def resolve_abi(repo_root: Path, rel: str) -> list[dict[str, Any]]:
    """The ABI a deployment's ``abi`` path names: the compiled artifact ``repo_root / rel`` when it
    exists (a development checkout after ``brownie compile``), else the packaged copy of the same
    artifact name (an installed wheel, which has no ``build/``). tests/unit/test_packaged_abi.py
    keeps the two equal."""
    path = Path(repo_root) / rel
    if path.is_file():
        return load_abi(path)
    abi = packaged_abi(Path(rel).stem)
    if abi is None:
        return load_abi(path)  # neither: the ConfigError naming the artifact and `make compile`
    return abi


def _hex(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    return value


def _int(value: Any) -> int:
    """A quantity from web3 (an int) or from a plain JSON-RPC answer (a 0x-hex string)."""
    return int(value, 16) if isinstance(value, str) else int(value)


class ChainClient:
    """Reads and writes fedchain's contracts. Implements :class:`fedchain.chain.types.ChainReader`."""

    def __init__(
        self,
        w3: Web3,
        deployment: Deployment,
        *,
        rpc_url: str,
        repo_root: Path,
        account: LocalAccount | None = None,
        receipt_timeout: float = 60.0,
    ) -> None:
        self.w3 = w3
        self.rpc_url = rpc_url
        self.deployment = deployment
        self.account = account
        self.receipt_timeout = receipt_timeout
        self.chain_id = deployment.chain_id
        self.registry_address = to_checksum_address(deployment.registry_address)
        self.rounds_address = to_checksum_address(deployment.rounds_address)
        self.deploy_block = deployment.block
        abis = {
            name: resolve_abi(repo_root, rel) for name, rel in deployment.abi_paths.items()
        }
        self.rounds = w3.eth.contract(address=self.rounds_address, abi=abis["TrainingRounds"])
        # Protocol v2: the registry is part of TrainingRounds (one address, one ABI).
        self.registry = (
            self.rounds if self.registry_address == self.rounds_address
            else w3.eth.contract(address=self.registry_address, abi=abis["NodeRegistry"])
        )
        self._addresses = sorted({self.registry_address, self.rounds_address})
        self.decoder = RevertDecoder(abis.values())
        self._nonce_lock = threading.Lock()
        self._nonce: int | None = None
        self._topics: dict[HexBytes, tuple[str, Any]] = {}
        #: topic -> the plain decoder of that event (fedchain.chain.views.EventAbi)
        self._event_abis: dict[bytes, EventAbi] = {}
        self._views: dict[tuple[str, str, int], ViewAbi] = {}
        self._fee_cache: tuple[float, dict[str, int]] | None = None
        for cname, contract in (("NodeRegistry", self.registry), ("TrainingRounds", self.rounds)):
            for item in contract.abi:
                if item.get("type") == "event":
                    event = contract.events[item["name"]]()
                    self._topics[HexBytes(event.topic)] = (cname, event)
                    try:
                        self._event_abis[bytes(HexBytes(event.topic))] = EventAbi.of(item)
                    except ValueError:  # a hashed indexed argument: web3 decodes it
                        pass

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def connect(
        cls,
        rpc_url: str,
        *,
        deployments_dir: Path | None = None,
        repo_root: Path,
        account: LocalAccount | None = None,
        deployment: Deployment | None = None,
    ) -> "ChainClient":
        """Connect and load the deployment for the chain's id (from ``deployments_dir`` unless given)."""
        w3 = connect_web3(rpc_url)
        chain_id = w3.eth.chain_id
        if deployment is None:
            if deployments_dir is None:
                raise ConfigError("no deployment given", hint="pass a deployments directory or the API URL")
            deployment = load_deployment(deployments_dir, chain_id)
        elif deployment.chain_id != chain_id:
            raise ConfigError(
                f"the deployment is for chain {deployment.chain_id} but {rpc_url} is chain {chain_id}",
                hint="point --rpc-url at the chain the aggregator uses",
            )
        if not w3.eth.get_code(to_checksum_address(deployment.rounds_address)):
            raise ConfigError(
                f"no contract at {deployment.rounds_address} on chain {deployment.chain_id} "
                f"(stale {deployments_dir}/{deployment.chain_id}.json from an earlier chain?)",
                hint="deploy again with `fedchain deploy`",
            )
        return cls(w3, deployment, rpc_url=rpc_url, repo_root=repo_root, account=account)

    # -- calls ---------------------------------------------------------------------------------
    def _call(self, fn: Any, name: str, block: int | None = None) -> Any:
        try:
            return fn.call() if block is None else fn.call(block_identifier=int(block))
        except ContractLogicError as exc:
            raise self.decoder.decode(revert_data(exc), function=name) from exc
        except (requests.exceptions.RequestException, OSError) as exc:
            raise RpcUnavailable(self.rpc_url, type(exc).__name__) from exc

    def _view(self, contract: Any, name: str, *args: Any, block: int | None = None) -> Any:
        """``contract.name(*args)`` as a plain ``eth_call`` (fedchain.chain.views: a third of
        web3's client CPU). A revert, or an answer that does not decode, goes through web3's own
        call instead, which raises the named contract error (or web3's) as it always did."""
        key = (contract.address, name, len(args))
        spec = self._views.get(key)
        if spec is None:
            spec = self._views[key] = ViewAbi.of(contract.abi, name, len(args))
        tag = "latest" if block is None else hex(int(block))
        try:
            result = self._raw("eth_call", [{"to": contract.address, "data": spec.calldata(args)}, tag])
        except ChainError:  # a revert (or an odd answer): web3's call below names it
            result = None
        if isinstance(result, str) and result.startswith("0x") and len(result) > 2:
            try:
                return spec.result(bytes.fromhex(result[2:]))
            except Exception:  # noqa: BLE001 - not ABI data: let web3 say what it is
                pass
        return self._call(getattr(contract.functions, name)(*args), name, block)

    def block_number(self) -> int:
        try:
            return self.w3.eth.block_number
        except (requests.exceptions.RequestException, OSError) as exc:
            raise RpcUnavailable(self.rpc_url, type(exc).__name__) from exc

    def _block(self, block: int | str) -> Any:
        try:
            return self.w3.eth.get_block(block)
        except (requests.exceptions.RequestException, OSError) as exc:
            raise RpcUnavailable(self.rpc_url, type(exc).__name__) from exc

    def block_timestamp(self, block: int | None = None) -> int:
        """Chain time: the timestamp of ``block`` (default: the latest block). A plain
        ``eth_getBlockByNumber`` (the wait loops read it every 0.1 s: web3's block formatting cost
        more client CPU than the call); NotFound for a block the chain does not have."""
        got = self._raw("eth_getBlockByNumber", ["latest" if block is None else hex(int(block)), False])
        if not isinstance(got, dict) or got.get("timestamp") is None:
            raise NotFound(f"the chain has no block {'latest' if block is None else int(block)}")
        return int(str(got["timestamp"]), 16)

    def _raw(self, method: str, params: list[Any]) -> Any:
        """One JSON-RPC call without web3's formatters: the answer's ``result`` (None if the
        endpoint has no such object); ChainError for an error answer."""
        try:
            resp = self.w3.provider.make_request(method, params)
        except (requests.exceptions.RequestException, OSError) as exc:
            raise RpcUnavailable(self.rpc_url, type(exc).__name__) from exc
        if not isinstance(resp, dict) or "error" in resp:
            err = resp.get("error") if isinstance(resp, dict) else resp
            raise ChainError(f"{method}: the endpoint answered {err!r}")
        return resp.get("result")

    def block_hash(self, block: int) -> str | None:
        """The hash of block ``block``; None if the chain has no such block (yet)."""
        try:
            got = self._raw("eth_getBlockByNumber", [hex(int(block)), False])
        except ChainError:  # some endpoints answer an error, not null, for a block they do not have
            return None
        return None if not isinstance(got, dict) or not got.get("hash") else str(got["hash"]).lower()

    def current_round_id(self, block: int | None = None) -> int:
        return int(self._view(self.rounds, "currentRoundId", block=block))

    def last_finalized_round_id(self) -> int:
        return int(self._view(self.rounds, "lastFinalizedRoundId"))

    def grace_period(self) -> int:
        return int(self._view(self.rounds, "gracePeriod"))

    def get_round(self, round_id: int, block: int | None = None) -> RoundInfo:
        """Round ``round_id`` as of ``block`` (default: latest). ``NotFound`` if it does not exist there."""
        if round_id <= 0:
            raise NotFound(f"round {round_id} does not exist on chain {self.chain_id}")
        r = self._view(self.rounds, "getRound", int(round_id), block=block)
        (base, config, model, report, acc, seed, deadline, opened, closed, min_updates, eligible, commits,
         accepted, max_samples, rate, cutoff, close_window, status) = r
        if int(status) == RoundStatus.NONE:
            raise NotFound(f"round {round_id} does not exist on chain {self.chain_id}")
        model_h = bytes32_to_hash(model)
        report_h = bytes32_to_hash(report)
        return RoundInfo(
            round_id=int(round_id),
            base_model_hash=bytes32_to_hash(base),
            config_hash=bytes32_to_hash(config),
            global_model_hash=None if model_h == ZERO_HASH else model_h,
            report_hash=None if report_h == ZERO_HASH else report_h,
            deadline=int(deadline),
            opened_at=int(opened),
            closed_at=int(closed),
            min_updates=int(min_updates),
            commit_count=int(commits),
            accepted_count=int(accepted),
            status=RoundStatus(int(status)),
            eligible_count=int(eligible),
            max_samples=int(max_samples),
            selection_rate=int(rate),
            relay_cutoff=int(cutoff),
            close_window=int(close_window),
            accumulator=bytes32_to_hash(acc),
            seed=bytes32_to_hash(seed),
            block=None if block is None else int(block),
        )

    def round_view(self, round_id: int) -> tuple[RoundInfo, list[Commitment]]:
        """A round and its commitment list read at one block height (the head when called), so
        the two cannot disagree because a block landed between the reads."""
        block = self.block_number()
        info = self.get_round(round_id, block)
        return info, self.commitments(round_id, block, info=info)

    def commitments(self, round_id: int, block: int | None = None, *, info: RoundInfo | None = None) -> list[Commitment]:
        """Every commitment of a round as of ``block`` (default: the head now), in commit order,
        from ``UpdateSubmitted`` events, checked against the round's accumulator and count at that
        same block: an RPC that drops, adds or alters an event is caught."""
        if info is None:
            info = self.get_round(round_id, self.block_number() if block is None else block)
        last = info.block if info.block is not None else (info.closed_at or None)
        if last is None:
            raise ValueError("commitments() needs a RoundInfo read at a fixed block")
        logs = self._logs(max(info.opened_at, self.deploy_block), last, "UpdateSubmitted", round_id)
        out = [
            Commitment(round_id=round_id, node=ev.args["node"], update_hash=ev.args["updateHash"],
                       num_samples=int(ev.args["numSamples"]))
            for ev in logs if int(ev.args["roundId"]) == round_id
        ]
        if len(out) != info.commit_count or (
            accumulator.fold(self.chain_id, self.rounds_address, round_id, out) != info.accumulator
        ):
            raise ChainError(
                f"round {round_id}: the {len(out)} UpdateSubmitted events do not match the on-chain "
                f"accumulator (commitCount={info.commit_count})",
                hint="the RPC endpoint may be pruning or withholding logs; use an archive/full node",
            )
        return out

    # -- secure rounds -------------------------------------------------------------------------
    def unmask_phase(self, round_id: int, block: int | None = None) -> UnmaskPhase:
        """The unmask phase of round ``round_id`` (all zero for a transparent round)."""
        r = self._view(self.rounds, "getUnmaskPhase", int(round_id), block=block)
        threshold, deadline, sealed, sealed_at, survivors, unmasks, acc = r
        return UnmaskPhase(threshold=int(threshold), unmask_deadline=int(deadline), sealed=bool(sealed),
                           sealed_at=int(sealed_at), survivor_count=int(survivors), unmask_count=int(unmasks),
                           accumulator=bytes32_to_hash(acc))

    def secure_view(self, round_id: int, block: int | None = None, *,
                    selected: tuple[list[str], dict[str, bytes]] | None = None) -> SecureRoundView:
        """A secure round read at one block (default: the head now): S and its keys from the
        registry's events before the round opened (``selected``: a copy read before, since S never
        changes once the round is open), the commitments and the unmasking posts (each list
        checked against its on-chain accumulator and count), and the excluded nodes."""
        block = self.block_number() if block is None else int(block)
        info = self.get_round(round_id, block)
        phase = self.unmask_phase(round_id, block)
        commitments = self.commitments(round_id, block, info=info)
        selected_nodes, keys = selected if selected is not None else self.selected_set(info)
        excluded: list[str] = []
        posts: list[UnmaskPost] = []
        if phase.sealed:
            start = max(info.opened_at, self.deploy_block)
            logs = self.events_named(start, block, {"CommitmentExcluded", "UnmaskSubmitted"})
            mine = [e for e in logs if int(e.args["roundId"]) == round_id]
            excluded = [e.args["node"] for e in mine if e.name == "CommitmentExcluded"]
            if len(excluded) != info.commit_count - phase.survivor_count:
                raise ChainError(
                    f"round {round_id}: {len(excluded)} CommitmentExcluded events, but the seal left "
                    f"{phase.survivor_count} of {info.commit_count} committers",
                    hint="the RPC endpoint may be pruning or withholding logs; use an archive/full node")
            posts = [UnmaskPost(round_id, e.args["node"], e.args["unmaskHash"]) for e in mine if e.name == "UnmaskSubmitted"]
            if len(posts) != phase.unmask_count or accumulator.fold_unmasks(
                    self.chain_id, self.rounds_address, round_id, [(p.node, p.unmask_hash) for p in posts]
            ) != phase.accumulator:
                raise ChainError(
                    f"round {round_id}: the {len(posts)} UnmaskSubmitted events do not match the on-chain "
                    f"unmask accumulator (unmaskCount={phase.unmask_count})",
                    hint="the RPC endpoint may be pruning or withholding logs; use an archive/full node")
        return SecureRoundView(info=info, phase=phase, selected=list(selected_nodes), public_keys=dict(keys),
                               commitments=commitments, excluded=excluded, posts=posts)

    def selected_set(self, info: RoundInfo) -> tuple[list[str], dict[str, bytes]]:
        """The nodes eligible for round ``info`` when it opened (selected, for a sampled round),
        in protocol order (by address as a number), and the public key each had in effect then:
        the registry's events replayed up to the round's ``RoundOpened``. A key rotation during
        the round takes effect in the next one, as the contract's ``keyRound`` says."""
        # The round's own RoundOpened log, read in its block only (the history of every earlier
        # round's opening grew each replay by one event per round), marks where the replay stops.
        opened = [ev for ev in self.events_named(info.opened_at, info.opened_at, {"RoundOpened"})
                  if int(ev.args["roundId"]) == info.round_id]
        if not opened:
            raise ChainError(f"no RoundOpened event for round {info.round_id} in block {info.opened_at}",
                             hint="the RPC endpoint may be pruning logs; use an archive/full node")
        cut = (opened[0].block_number, opened[0].log_index)
        active: dict[str, bytes] = {}
        for ev in self.events_named(self.deploy_block, info.opened_at, {"NodeAdmitted", "NodeRemoved", "NodeUpdated"}):
            if (ev.block_number, ev.log_index) > cut:
                break
            node = ev.args["node"]
            if ev.name == "NodeRemoved":
                active.pop(node, None)
            else:
                pk = ev.args.get("publicKey") or "0x"
                active[node] = bytes.fromhex(pk[2:]) if isinstance(pk, str) else bytes(pk)
        if len(active) != info.eligible_count:
            raise ChainError(
                f"round {info.round_id}: {len(active)} active nodes from the registry's events, but the "
                f"contract counted {info.eligible_count} eligible",
                hint="the RPC endpoint may be pruning or withholding logs; use an archive/full node")
        nodes = sorted(active, key=lambda a: int(a, 16))
        if info.sampled:
            seed = hash_to_bytes32(info.seed)
            nodes = [a for a in nodes if int.from_bytes(keccak(seed + bytes(12) + bytes.fromhex(a[2:])), "big") >> 192
                     < info.selection_rate]
        return nodes, {a: active[a] for a in nodes}

    def has_committed(self, round_id: int, node: str) -> bool:
        return bool(self._view(self.rounds, "hasCommitted", int(round_id), to_checksum_address(node)))

    def is_eligible(self, round_id: int, node: str) -> bool:
        return bool(self._view(self.rounds, "isEligible", int(round_id), to_checksum_address(node)))

    def last_committed_round(self, node: str) -> int:
        return int(self._view(self.rounds, "lastCommittedRound", to_checksum_address(node)))

    def get_commitment(self, round_id: int, node: str) -> Commitment | None:
        """``node``'s commitment in ``round_id``, or None, from its event. Storage keeps only the
        node's last committed round: a later round rules nothing out, so the events decide."""
        if self.last_committed_round(node) < round_id:
            return None
        rnd = self.get_round(round_id)
        node = to_checksum_address(node)
        found = self._logs(max(rnd.opened_at, self.deploy_block), rnd.closed_at or None, "UpdateSubmitted",
                           round_id, node)
        if not found and not self.has_committed(round_id, node):
            return None
        for ev in found:
            if int(ev.args["roundId"]) == round_id and ev.args["node"] == node:
                return Commitment(round_id=round_id, node=node, update_hash=ev.args["updateHash"],
                                  num_samples=int(ev.args["numSamples"]))
        raise ChainError(f"{node} committed in round {round_id} but no UpdateSubmitted event was found",
                         hint="the RPC endpoint may be pruning logs; use an archive/full node")

    def is_active_node(self, address: str) -> bool:
        return bool(self._view(self.registry, "isActiveNode", to_checksum_address(address)))

    def node_count(self) -> int:
        return int(self._view(self.registry, "nodeCount"))

    def latest_model_hash(self) -> str:
        return bytes32_to_hash(self._view(self.rounds, "latestModelHash"))

    def genesis_model_hash(self) -> str | None:
        h = bytes32_to_hash(self._view(self.rounds, "genesisModelHash"))
        return None if h == ZERO_HASH else h

    def has_role(self, role_name: str, address: str) -> bool:
        """``hasRole`` for a role named by its constant. Roles without a getter on the contract
        (``AUDITOR_ROLE``) are ``keccak256(name)``, as OpenZeppelin's AccessControl defines them."""
        contract = self.registry if role_name == "REGISTRAR_ROLE" else self.rounds
        if role_name == "DEFAULT_ADMIN_ROLE":
            role = b"\x00" * 32
        elif any(f.get("type") == "function" and f.get("name") == role_name for f in contract.abi):
            role = self._call(getattr(contract.functions, role_name)(), role_name)
        else:
            role = keccak(text=role_name)
        return bool(self._call(contract.functions.hasRole(role, to_checksum_address(address)), "hasRole"))

    # -- events --------------------------------------------------------------------------------
    def _decode_log(self, log: Any) -> EventRecord | None:
        if not log["topics"]:
            return None
        hit = self._topics.get(HexBytes(log["topics"][0]))
        if hit is None:
            return None
        cname, event = hit
        plain = self._event_abis.get(bytes(HexBytes(log["topics"][0])))
        try:
            if plain is None:
                raise ValueError("no plain decoder")
            name, decoded_args = plain.name, plain.args(log["topics"], log["data"])
        except Exception:  # noqa: BLE001 - web3's decoder has the last word
            decoded = event.process_log(log)
            name, decoded_args = decoded["event"], decoded["args"]
        args = {}
        for k, v in decoded_args.items():
            args[k] = to_checksum_address(v) if isinstance(v, str) and Web3.is_address(v) else _hex(v)
        return EventRecord(
            name=name,
            contract=cname,
            args=args,
            block_number=_int(log["blockNumber"]),
            tx_hash=str(_hex(log["transactionHash"])).lower(),
            log_index=_int(log["logIndex"]),
        )

    def _logs(self, from_block: int, to_block: int | None, event: str, *indexed: Any) -> list[EventRecord]:
        """Events named ``event`` whose leading indexed arguments equal ``indexed`` (node-side filter)."""
        topic0 = next(t for t, (_, ev) in self._topics.items() if ev.event_name == event)
        topics: list[Any] = ["0x" + bytes(topic0).hex()]
        for value in indexed:
            raw = bytes.fromhex(value[2:]) if isinstance(value, str) else int(value).to_bytes(32, "big")
            topics.append("0x" + raw.rjust(32, b"\0").hex())
        return self.events(from_block, to_block, names={event}, topics=topics)

    def events_named(self, from_block: int, to_block: int | None, names: set[str]) -> list[EventRecord]:
        """Events of the given names only, filtered by the node (topic 0 is any of theirs), so
        that reading, say, the registry's history does not fetch and decode every commitment."""
        topic0s = ["0x" + bytes(t).hex() for t, (_, ev) in self._topics.items() if ev.event_name in names]
        return self.events(from_block, to_block, names=names, topics=[topic0s])

    def events(
        self, from_block: int, to_block: int | None = None, *, names: set[str] | None = None,
        topics: list[Any] | None = None,
    ) -> list[EventRecord]:
        """All fedchain events in [from_block, to_block], ordered by (block, log index)."""
        try:
            last = self.w3.eth.block_number if to_block is None else to_block
            out: list[EventRecord] = []
            start = max(0, from_block)
            while start <= last:
                end = min(last, start + _LOG_CHUNK - 1)
                query: dict[str, Any] = {"address": self._addresses, "fromBlock": hex(start), "toBlock": hex(end)}
                if topics:
                    query["topics"] = topics
                # A plain eth_getLogs, decoded by EventAbi: web3's log formatting and decoding
                # took most of a secure round's reads (tests/e2e/test_chain_views.py compares).
                logs = self._raw("eth_getLogs", [query]) or []
                for log in logs:
                    rec = self._decode_log(log)
                    if rec is not None and (names is None or rec.name in names):
                        out.append(rec)
                start = end + 1
        except (requests.exceptions.RequestException, OSError) as exc:
            raise RpcUnavailable(self.rpc_url, type(exc).__name__) from exc
        return sorted(out, key=lambda e: (e.block_number, e.log_index))

    def gas_used(self, tx_hash: str) -> int:
        """The gas a mined transaction used (what the index records), without decoding its logs.
        NotFound if there is no receipt."""
        got = self._raw("eth_getTransactionReceipt", [tx_hash])
        if not isinstance(got, dict) or got.get("gasUsed") is None:
            raise NotFound(f"no receipt for transaction {tx_hash}")
        return int(str(got["gasUsed"]), 16)

    def receipt(self, tx_hash: str) -> TxResult:
        try:
            rcpt = self.w3.eth.get_transaction_receipt(tx_hash)
        except (requests.exceptions.RequestException, OSError) as exc:
            raise RpcUnavailable(self.rpc_url, type(exc).__name__) from exc
        except Exception as exc:
            raise NotFound(f"no receipt for transaction {tx_hash}") from exc
        return self._result(rcpt)

    def _result(self, rcpt: Any) -> TxResult:
        events = [e for e in (self._decode_log(log) for log in rcpt["logs"]) if e is not None]
        return TxResult(
            tx_hash=_hex(rcpt["transactionHash"]),
            block_number=int(rcpt["blockNumber"]),
            gas_used=int(rcpt["gasUsed"]),
            events=events,
        )

    # -- transactions --------------------------------------------------------------------------
    def _require_account(self) -> LocalAccount:
        if self.account is None:
            raise ConfigError("this command sends transactions but no key was given",
                              hint="pass --keystore FILE, --private-key, or --dev-account N on anvil")
        return self.account

    def _next_nonce(self, address: str, refresh: bool = False) -> int:
        with self._nonce_lock:
            if self._nonce is None or refresh:
                self._nonce = self.w3.eth.get_transaction_count(address, "pending")
            nonce = self._nonce
            self._nonce += 1
            return nonce

    def _fees(self) -> dict[str, int]:
        """EIP-1559 fee caps as web3 computes them (``maxFeePerGas = 2 * baseFee + priority``),
        reused for :data:`FEE_TTL` seconds; empty (web3 fills the fees) on a chain without a base fee."""
        now = time.monotonic()
        if self._fee_cache is not None and now - self._fee_cache[0] < FEE_TTL:
            return self._fee_cache[1]
        base = self._block("latest").get("baseFeePerGas")
        fees: dict[str, int] = {}
        if base is not None:
            try:
                priority = int(self.w3.eth.max_priority_fee)
            except (requests.exceptions.RequestException, OSError) as exc:
                raise RpcUnavailable(self.rpc_url, type(exc).__name__) from exc
            fees = {"maxFeePerGas": 2 * int(base) + priority, "maxPriorityFeePerGas": priority}
        self._fee_cache = (now, fees)
        return fees

    def transact(self, contract_fn: Any, name: str, *, retries: int = 3, gas: int | None = None) -> TxResult:
        """Estimate (which surfaces reverts with their data), sign, send, wait for the receipt.

        ``gas`` skips the estimate: needed where validity depends on the *next* block's timestamp,
        since nodes estimate against the latest block (on an idle anvil, one mined long ago).
        A transaction that reverts on-chain is still decoded, by replaying it at its block."""
        account = self._require_account()
        refresh = False
        for attempt in range(retries):
            try:
                params = {"from": account.address, "chainId": self.chain_id,
                          "nonce": self._next_nonce(account.address, refresh), **self._fees()}
                if gas is not None:
                    params["gas"] = gas
                tx = contract_fn.build_transaction(params)
                if gas is None:
                    tx["gas"] = int(tx["gas"] * 1.2) + 10_000
                signed = account.sign_transaction(tx)
                tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
                rcpt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=self.receipt_timeout)
            except ContractLogicError as exc:
                self._nonce = None  # the nonce we took was not used
                raise self.decoder.decode(revert_data(exc), function=name) from exc
            except (requests.exceptions.RequestException, OSError) as exc:
                self._nonce = None
                raise RpcUnavailable(self.rpc_url, type(exc).__name__) from exc
            except TimeExhausted as exc:
                raise ChainError(f"{name}: no receipt after {self.receipt_timeout:.0f} s",
                                 hint="is the chain mining? check the RPC endpoint") from exc
            except Web3RPCError as exc:
                msg = str(exc).lower()
                if "nonce" in msg and attempt + 1 < retries:
                    refresh = True
                    continue
                self._nonce = None
                data = revert_data(exc)
                if data is not None:  # Hardhat: the transaction was mined and reverted, data in the error
                    raise self.decoder.decode(data, function=name) from exc
                raise ChainError(f"{name}: the node refused the transaction: {exc}") from exc
            if rcpt["status"] != 1:
                # Replay as a call at the failing block to recover the revert data.
                try:
                    contract_fn.call({"from": account.address}, block_identifier=rcpt["blockNumber"])
                except ContractLogicError as exc:
                    raise self.decoder.decode(revert_data(exc), function=name) from exc
                raise ContractRevert("UnknownRevert", {"tx": _hex(rcpt["transactionHash"])}, function=name)
            return self._result(rcpt)
        raise ChainError(f"{name}: could not get a valid nonce after {retries} tries")

    # Typed wrappers ---------------------------------------------------------------------------
    def admit_node(self, node: str, public_key: bytes = b"", metadata_hash: str = ZERO_HASH) -> TxResult:
        return self.transact(
            self.registry.functions.admitNode(to_checksum_address(node), public_key, hash_to_bytes32(metadata_hash)),
            "admitNode",
        )

    def get_node(self, node: str) -> dict[str, Any]:
        """The registry entry of ``node``: active, joinedAt, joinedRound, keyRound, metadataHash, publicKey."""
        r = self._view(self.registry, "getNode", to_checksum_address(node))
        active, joined_at, joined_round, key_round, metadata, public_key = r
        return {"active": bool(active), "joinedAt": int(joined_at), "joinedRound": int(joined_round),
                "keyRound": int(key_round), "metadataHash": bytes32_to_hash(metadata), "publicKey": bytes(public_key)}

    def update_node(self, public_key: bytes, metadata_hash: str | None = None) -> TxResult:
        return self.transact(self.registry.functions.updateNode(bytes(public_key),
                                                                 hash_to_bytes32(metadata_hash or ZERO_HASH)),
                             "updateNode")

    def has_unmasked(self, round_id: int, node: str) -> bool:
        return bool(self._view(self.rounds, "hasUnmasked", int(round_id), to_checksum_address(node)))

    def remove_node(self, node: str) -> TxResult:
        return self.transact(self.registry.functions.removeNode(to_checksum_address(node)), "removeNode")

    def set_genesis_model(self, model_hash: str) -> TxResult:
        return self.transact(self.rounds.functions.setGenesisModel(hash_to_bytes32(model_hash)), "setGenesisModel")

    def open_round(self, base_model_hash: str, config_hash: str, params: RoundParams) -> tuple[int, TxResult]:
        res = self.transact(
            self.rounds.functions.openRound(
                hash_to_bytes32(base_model_hash), hash_to_bytes32(config_hash), params.as_tuple()
            ),
            "openRound",
        )
        opened = [e for e in res.events if e.name == "RoundOpened"]
        if not opened:
            raise ChainError("openRound succeeded but emitted no RoundOpened event")
        return int(opened[0].args["roundId"]), res

    def submit_update(self, round_id: int, update_hash: str, num_samples: int) -> TxResult:
        return self.transact(
            self.rounds.functions.submitUpdate(int(round_id), hash_to_bytes32(update_hash), int(num_samples)),
            "submitUpdate",
        )

    def submit_batch(self, round_id: int, signed: list[tuple[str, int, str]]) -> TxResult:
        """Relay signed commitments ``[(update_hash, num_samples, compact_signature)]``; entries the
        contract cannot take are skipped (``CommitmentSkipped`` events), not reverted."""
        entries = []
        for update_hash, num_samples, sig in signed:
            raw = bytes.fromhex(sig[2:] if sig.startswith("0x") else sig)
            entries.append((hash_to_bytes32(update_hash), int(num_samples), raw[:32], raw[32:64]))
        return self.transact(self.rounds.functions.submitBatch(int(round_id), entries), "submitBatch")

    def seal_commitments(self, round_id: int, excluded: list[str], commit_count: int) -> TxResult:
        """Close a secure round's commit phase, excluding ``excluded`` (sorted by the contract's rule),
        for the ``commit_count`` commitments the caller checked (``CommitmentsChanged`` if the round
        holds another number). Sent without an estimate: it is valid only in a block stamped past the
        deadline, which need not exist yet when the caller's clock says the deadline has passed."""
        ordered = sorted({to_checksum_address(a) for a in excluded}, key=lambda a: int(a, 16))
        return self.transact(self.rounds.functions.sealCommitments(int(round_id), ordered, int(commit_count)),
                             "sealCommitments", gas=SEAL_GAS + SEAL_GAS_PER_EXCLUDED * len(ordered))

    def submit_unmask(self, round_id: int, unmask_hash: str) -> TxResult:
        return self.transact(
            self.rounds.functions.submitUnmask(int(round_id), hash_to_bytes32(unmask_hash)), "submitUnmask")

    def submit_unmask_batch(self, round_id: int, signed: list[tuple[str, str]]) -> TxResult:
        """Relay signed unmasking posts ``[(unmask_hash, compact_signature)]`` (bad ones are skipped)."""
        entries = []
        for unmask_hash, sig in signed:
            raw = bytes.fromhex(sig[2:] if sig.startswith("0x") else sig)
            entries.append((hash_to_bytes32(unmask_hash), raw[:32], raw[32:64]))
        return self.transact(self.rounds.functions.submitUnmaskBatch(int(round_id), entries), "submitUnmaskBatch")

    def finalize_round(self, round_id: int, model_hash: str, report_hash: str, accepted: int) -> TxResult:
        return self.transact(
            self.rounds.functions.finalizeRound(
                int(round_id), hash_to_bytes32(model_hash), hash_to_bytes32(report_hash), int(accepted)
            ),
            "finalizeRound",
        )

    def expire_round(self, round_id: int) -> TxResult:
        return self.transact(self.rounds.functions.expireRound(int(round_id)), "expireRound", gas=EXPIRE_GAS)

    # -- waiting -------------------------------------------------------------------------------
    def wait_until(self, predicate: Callable[[], bool], *, timeout: float, poll: float = 0.5) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            time.sleep(poll)
        return predicate()


def connect_local_or_api(
    rpc_url: str,
    *,
    deployments_dir: Path,
    repo_root: Path,
    api_deployment: Callable[[], Deployment],
    account: LocalAccount | None = None,
) -> ChainClient:
    """Connect using the local deployment file for the chain's id; if there is none, or it is stale
    (no contract at its address), use the one the aggregator API serves (``GET /deployment``).
    Either way the contract code must exist on the chain the caller chose."""
    try:
        return ChainClient.connect(rpc_url, deployments_dir=deployments_dir, repo_root=repo_root, account=account)
    except RpcUnavailable:
        raise
    except ConfigError:
        return ChainClient.connect(rpc_url, repo_root=repo_root, account=account, deployment=api_deployment())
