"""The dashboard in a real browser while a demo federation runs.

Headless Chromium is Debian's ``chromium`` (``/usr/bin/chromium``) driven by Playwright's Python
package; both are installed by ``make browser`` (run by ``make test``), and Playwright never
downloads a browser of its own. The page is opened while the rounds run and never reloaded: it must
catch up by itself, then show exactly the rounds ``GET /rounds`` reports, in the table and in the
plot. The screenshot goes to ``reports/dashboard.png``; with ``UPDATE_SCREENSHOTS=1``
(``make screenshots``) to ``docs/img/dashboard.png``, the README's picture.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from fedchain.devchain import env_with_repo, free_port
from fedchain.settings import REPO_ROOT
from harness import wait_for

CHROMIUM = os.environ.get("FEDCHAIN_CHROMIUM", "/usr/bin/chromium")
ROUNDS = 4


def _browser_or_skip():
    missing = []
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
        missing.append("the playwright package (requirements-browser.txt)")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        missing.append(f"chromium at {CHROMIUM}")
    if missing:
        message = f"missing {' and '.join(missing)}: run `make browser` (apt-get install chromium as root)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return sync_playwright


def _screenshot_path() -> Path:
    if os.environ.get("UPDATE_SCREENSHOTS"):
        return REPO_ROOT / "docs" / "img" / "dashboard.png"
    return REPO_ROOT / "reports" / "dashboard.png"


def test_dashboard_shows_the_rounds_the_api_reports_while_a_federation_runs(tmp_path):
    sync_playwright = _browser_or_skip()
    api_port, chain_port = free_port(), free_port()
    api = f"http://127.0.0.1:{api_port}"
    log = tmp_path / "demo.log"
    demo = subprocess.Popen(
        [sys.executable, "-m", "fedchain.cli", "demo", "--nodes", "3", "--rounds", str(ROUNDS), "--port", str(api_port),
         "--chain-port", str(chain_port), "--workdir", str(tmp_path / "demo"), "--serve", "--no-compare"],
        stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env_with_repo(), cwd=REPO_ROOT, start_new_session=True,
    )

    def api_up() -> bool:
        try:
            return httpx.get(f"{api}/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(lambda: api_up() or demo.poll() is not None, 120, "the demo's API")
        assert demo.poll() is None, log.read_text()[-3000:]
        # The page and its files are served by the aggregator; not part of the API's schema.
        r = httpx.get(f"{api}/", follow_redirects=False, timeout=5)
        assert r.status_code in (302, 307) and r.headers["location"] == "/ui/"
        assert "<script" in httpx.get(f"{api}/ui/", timeout=5).text
        assert httpx.get(f"{api}/ui/dashboard.js", timeout=5).status_code == 200
        assert httpx.get(f"{api}/ui/..%2Fapp.py", timeout=5).status_code == 404
        assert not [p for p in httpx.get(f"{api}/openapi.json", timeout=5).json()["paths"] if p.startswith("/ui")]

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(f"{api}/", wait_until="domcontentloaded")
                assert page.url.endswith("/ui/")
                page.wait_for_function("document.querySelector('#rounds-table').dataset.rounds !== undefined",
                                       timeout=20_000)
                seen_first = page.eval_on_selector("#rounds-table", "t => t.dataset.rounds")
                first = len([x for x in seen_first.split(",") if x])

                wait_for(lambda: "Ctrl-C to stop" in log.read_text() or demo.poll() is not None, 300,
                         f"the demo's {ROUNDS} rounds")
                assert demo.poll() is None, log.read_text()[-3000:]
                items = sorted(httpx.get(f"{api}/rounds", params={"limit": 500}, timeout=5).json()["items"],
                               key=lambda it: it["round_id"])
                ids = [it["round_id"] for it in items]
                assert ids == list(range(1, ROUNDS + 1)), ids
                plotted = [it["round_id"] for it in items if isinstance((it.get("metrics") or {}).get("rmse"), float)]
                assert plotted == ids  # every round finalized with a metric
                want_ids, want_plot = ",".join(map(str, ids)), ",".join(map(str, plotted))
                # No reload: the page polls and catches up by itself.
                page.wait_for_function(
                    "([ids, pts]) => document.querySelector('#rounds-table').dataset.rounds === ids"
                    " && document.querySelector('#metric-plot').dataset.rounds === pts"
                    " && document.querySelectorAll('#participation tbody tr').length >= 3",
                    arg=[want_ids, want_plot], timeout=20_000)
                assert first < len(ids), "the page should have been opened while rounds were still running"

                rows = page.query_selector_all("#rounds-table tbody tr")
                assert [int(r.get_attribute("data-round")) for r in rows] == ids[::-1]  # newest first
                by_id = {it["round_id"]: it for it in items}
                for row in rows:
                    rid = int(row.get_attribute("data-round"))
                    cells = [c.inner_text().strip() for c in row.query_selector_all("td")]
                    assert cells[1] == by_id[rid]["status"] == "finalized"
                    assert cells[3] == str(by_id[rid]["accepted_count"])
                    assert cells[6] == f"{by_id[rid]['metrics']['rmse']:.3f}"
                    link = row.query_selector(f"a[href='/blobs/{by_id[rid]['global_model_hash']}']")
                    assert link is not None, f"round {rid}: no link to its global model blob"
                points = page.query_selector_all("#metric-plot circle.point")
                assert sorted(int(p.get_attribute("data-round")) for p in points) == plotted
                assert "RMSE (vol points)" in page.inner_text("#plot-title")
                assert len(page.query_selector_all("#gas-plot rect")) >= len(ids)
                assert len(page.query_selector_all("#lineage li")) == len(ids) + 1  # genesis + one per round
                assert "✗" not in page.inner_text("#lineage")  # each base is the previous global model
                verify = page.inner_text("#verify-cmd")
                assert f"fedchain verify --round {ids[-1]}" in verify and "--contract 0x" in verify
                assert page.inner_text("#health") == "healthy"
                assert not errors, errors

                shot = _screenshot_path()
                shot.parent.mkdir(parents=True, exist_ok=True)
                page.wait_for_timeout(500)
                page.screenshot(path=str(shot), full_page=True)
                assert shot.stat().st_size > 20_000
            finally:
                browser.close()
        demo.send_signal(signal.SIGINT)
        assert demo.wait(60) == 0
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
