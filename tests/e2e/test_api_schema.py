"""schemathesis against the live aggregator API: every documented operation, bounded examples, no 5xx,
and every response conforms to the OpenAPI document (status code, content type, headers, body).

schemathesis 4 needs hypothesis >= 6.130, and eth-brownie pins hypothesis==6.27.3, so the two cannot
share .venv. schemathesis is therefore installed, with its own hypothesis, into a folder of its
own (``pip install --target .venv/schemathesis -r requirements-schemathesis.txt``, done by
``make install``) and runs in a child interpreter whose ``PYTHONPATH`` puts that folder first. The
child uses schemathesis's Python API (``schemathesis.openapi.from_url`` and each operation's
hypothesis strategy); this test starts it against the session federation and asserts on its report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fedchain.settings import REPO_ROOT

#: Where the isolated schemathesis lives (override with FEDCHAIN_SCHEMATHESIS_PATH).
SCHEMATHESIS_PATH = Path(os.environ.get("FEDCHAIN_SCHEMATHESIS_PATH", REPO_ROOT / ".venv" / "schemathesis"))
#: Examples per operation and generation mode. Bounded so the run takes about a minute.
MAX_EXAMPLES = 25

# The child's program. Checks (and why each of the others is left out):
# - not_a_server_error, status_code_conformance, content_type_conformance,
#   response_headers_conformance, response_schema_conformance: the assertions this test is for.
# - positive_data_acceptance is left out: a request that fits the schema is often rightly refused
#   (a well-formed hash of a blob that does not exist is 404, an unsigned upload 401); the
#   documented 4xx answers are checked by status_code_conformance instead.
# - negative_data_rejection is left out: the read-permission headers are ignored on public blobs,
#   so a GET of a model with a malformed X-Fedchain-Read is rightly 200.
# Both generation modes run: positive (fits the schema) and negative (violates it), since the
# handlers must answer either with a documented status and body. No stateful phase (links).
RUNNER = r"""
import json, sys
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_headers_conformance,
                                                response_schema_conformance, status_code_conformance)

url, max_examples = sys.argv[1], int(sys.argv[2])
schema = schemathesis.openapi.from_url(url + "/openapi.json", wait_for_schema=30)
checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
report = {"operations": 0, "cases": 0, "failures": [], "statuses": {}}
STREAMS = {"/events"}  # an event stream has no end to validate: tests/e2e/test_federation.py reads it
for result in schema.get_all_operations():
    op = result.ok()
    if op.path in STREAMS:
        continue
    report["operations"] += 1
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        @given(case=op.as_strategy(generation_mode=mode))
        @settings(max_examples=max_examples, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
        def run(case):
            report["cases"] += 1
            r = case.call_and_validate(base_url=url, checks=checks, timeout=30)
            key = f"{op.method.upper()} {op.path} {r.status_code}"
            report["statuses"][key] = report["statuses"].get(key, 0) + 1
        try:
            run()
        except Unsatisfiable:
            if mode != GenerationMode.NEGATIVE:
                raise
            # an operation without parameters or body (GET /health) has nothing to violate
        except (Exception, BaseExceptionGroup) as exc:  # a check failed (schemathesis raises a FailureGroup)
            report["failures"].append({"operation": f"{op.method.upper()} {op.path}", "mode": str(mode),
                                       "error": f"{type(exc).__name__}: {exc}"[:4000]})

# Random hashes and ids rarely name anything that exists, so each operation also gets the real
# ones: every round id and every hash the rounds name (models, configs, reports, updates: public,
# sealed or member-only blobs), unsigned, with the same checks.
import requests
rounds = requests.get(url + "/rounds", params={"limit": 500}, timeout=30).json()["items"]
ids = [r["round_id"] for r in rounds]
hashes = set()
for r in rounds:
    hashes.update(h for h in (r["base_model_hash"], r["config_hash"], r["global_model_hash"], r["report_hash"]) if h)
    detail = requests.get(f"{url}/rounds/{r['round_id']}", timeout=30).json()
    hashes.update(u["update_hash"] for u in detail.get("updates", []))
for result in schema.get_all_operations():
    op = result.ok()
    if op.path in STREAMS:
        continue
    params = {p.name for p in op.path_parameters}
    known = []
    if params == {"blob_hash"}:
        known = [{"blob_hash": h} for h in sorted(hashes)]
    elif params == {"round_id"}:
        known = [{"round_id": i} for i in ids]
    elif params == {"round_id", "blob_hash"}:
        known = [{"round_id": i, "blob_hash": h} for i in ids[:2] for h in sorted(hashes)[:5]]
    for values in known:
        body = {"update_hash": values.get("blob_hash", "0x" + "11" * 32), "num_samples": 1,
                "signature": "0x" + "22" * 64} if op.method.upper() == "POST" else None
        case = op.Case(path_parameters=values, **({"body": body, "media_type": "application/json"} if body else {}))
        report["cases"] += 1
        try:
            r = case.call_and_validate(base_url=url, checks=checks, timeout=30)
            key = f"{op.method.upper()} {op.path} {r.status_code} (known)"
            report["statuses"][key] = report["statuses"].get(key, 0) + 1
        except (Exception, BaseExceptionGroup) as exc:
            report["failures"].append({"operation": f"{op.method.upper()} {op.path}", "mode": f"known {values}",
                                       "error": f"{type(exc).__name__}: {exc}"[:4000]})
print("SCHEMATHESIS-REPORT " + json.dumps(report))
"""


def run_schemathesis(api_url: str, max_examples: int = MAX_EXAMPLES, timeout: float = 900) -> dict:
    """Run the child against ``api_url``; its report {operations, cases, failures, statuses}."""
    if not (SCHEMATHESIS_PATH / "schemathesis").is_dir():
        pytest.fail(f"schemathesis is not installed in {SCHEMATHESIS_PATH}: run `make install`, or "
                    f"pip install --target {SCHEMATHESIS_PATH} -r requirements-schemathesis.txt")
    env = {**os.environ, "PYTHONPATH": str(SCHEMATHESIS_PATH), "PYTHONNOUSERSITE": "1"}
    out = subprocess.run([sys.executable, "-c", RUNNER, api_url, str(max_examples)], env=env,
                         capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("SCHEMATHESIS-REPORT ")]
    assert out.returncode == 0 and lines, f"schemathesis did not run:\n{out.stdout[-3000:]}\n{out.stderr[-5000:]}"
    return json.loads(lines[-1].removeprefix("SCHEMATHESIS-REPORT "))


def test_live_api_matches_its_openapi_document(federation):
    report = run_schemathesis(federation.api_url)
    assert report["operations"] >= 9 and report["cases"] > 100, report
    assert report["failures"] == [], json.dumps(report["failures"], indent=1)
    assert not [k for k in report["statuses"] if k.rsplit(" ", 1)[1].startswith("5")], report["statuses"]
