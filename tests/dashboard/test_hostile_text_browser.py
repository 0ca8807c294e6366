"""Hostile text reaches the dashboard as inert text (issue 19 item 4), in real Chromium.

Runs whose suite, suite version, scenario, device name, CPU model, model name, labels,
warnings and invalid reasons carry HTML/JS (``<script>``, ``<img onerror>``), markdown that
would change the layout if interpreted (``# big``, ``**bold**``, ``[x](javascript:..)``),
right-to-left and zero-width characters and unbroken strings at the store's length limits
(core/validation.py, the same limits tests/reliability/test_hostile_text.py checks on the
store side), plus a campaign whose offline devices have markdown-significant names. The
leaderboard, run detail, compare, Pareto, procurement and campaigns pages must run no
script, fire no dialog, show the strings literally, and not scroll sideways because of
them. Skips like test_dashboard_browser.py without Chromium or Playwright.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from seed import base_run
from test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS, _free_port, _unavailable, _wattbench

from wattbench.core.results import RunResult
from wattbench.core.validation import COLUMN_LIMITS, DEVICE_FIELDS, MAX_LABEL_CHARS, MAX_NOTE_CHARS
from wattbench.results_db.store import Store

pytestmark = pytest.mark.e2e

SCRIPT = "<script>window.__pwned=1</script>"
IMG = '<img src=x onerror="window.__pwned=2">'
MARKDOWN = "# big **bold** [x](javascript:window.__pwned=3)"
RTL = "rtl\u202eoverride zero\u200bwidth"
#: Unbroken strings as long as the store takes (longer ones are refused: the store test).
LONG_DEVICE = "D" * int(DEVICE_FIELDS["name"][1] or 0)
LONG_MODEL = "M" * dict(COLUMN_LIMITS)["model.name"]
LONG_LABEL = "L" * MAX_LABEL_CHARS
LONG_NOTE = "N" * MAX_NOTE_CHARS
#: A line of its own in the run's warnings: a heading and bold text if interpreted.
HEADING_NOTE = "# big **bold**"
#: Campaign device names (queue names: letters, digits, `._:-` only) that markdown would
#: still change (an emoji shortcode).
CAMPAIGN_DEVICES = ("b__bold__", "dev:smile:")

SUITE = f"fake {MARKDOWN}"[:100]
VERSION = IMG[:50]
SCENARIO = SCRIPT[:50]


def _hostile_runs(tmp: Path) -> list[RunResult]:
    base = base_run(tmp)

    def variant(i: int, device: dict[str, Any], model: str, **update: Any) -> RunResult:
        return base.model_copy(
            update={
                "run_id": str(uuid.uuid4()),
                "suite": SUITE,
                "suite_version": VERSION,
                "scenario": SCENARIO,
                "device": base.device | device,
                "model": base.model.model_copy(update={"name": model, "sha256": f"{i:064x}"}),
                "started_at": base.started_at + timedelta(minutes=i),
                "finished_at": base.finished_at + timedelta(minutes=i),
                **update,
            }
        )

    long_run = variant(
        1,
        {"name": LONG_DEVICE, "cpu_model": IMG, "accelerator": None},
        MARKDOWN,
        labels=[SCRIPT, IMG, MARKDOWN, RTL, LONG_LABEL],
        warnings=[HEADING_NOTE, LONG_NOTE],
    )
    rtl_run = variant(
        2, {"name": f"{RTL} {IMG}", "cpu_model": SCRIPT, "accelerator": None}, SCRIPT,
        labels=[MARKDOWN],
    )  # fmt: skip
    long_model = variant(3, {"name": f"{SCRIPT} #3", "accelerator": RTL}, LONG_MODEL)
    invalid = variant(
        4,
        {"name": LONG_DEVICE},
        MARKDOWN,
        valid=False,
        invalid_reasons=[MARKDOWN, SCRIPT],
    )
    return [long_run, rtl_run, long_model, invalid]


def _seed_campaign(url: str) -> None:
    """A campaign whose two devices went silent (offline: the page warns, naming them)."""
    from sqlalchemy import update

    from wattbench.fleet import ledger
    from wattbench.fleet.spec import parse_campaign
    from wattbench.results_db.schema import FleetDevice

    store = Store.open(url)
    try:
        devices = ", ".join(f'"{d}"' for d in CAMPAIGN_DEVICES)
        spec = parse_campaign(
            f'name = "hostile"\n[matrix]\nseed = [0]\n[run]\nsuite = "fake"\n'
            f'adapter = "fake"\n[target]\ndevices = [{devices}]\n',
            Path("hostile.toml"),
        )
        ledger.create_campaign(store.engine, spec, "hostile")
        for d in CAMPAIGN_DEVICES:
            ledger.register_device(
                store.engine, d, [], hostname="h", adapters=None, metrics_port=None
            )
        with store.engine.begin() as conn:
            silent = ledger.now() - timedelta(hours=1)
            conn.execute(update(FleetDevice).values(last_heartbeat_at=silent))
    finally:
        store.close()


@pytest.fixture
def hostile_dashboard(tmp_path: Path) -> Iterator[tuple[str, list[RunResult]]]:
    url = f"sqlite:///{tmp_path / 'hostile.db'}"
    store = Store.open(url)
    runs = _hostile_runs(tmp_path)
    try:
        for r in runs:
            store.save_run(r)
    finally:
        store.close()
    _seed_campaign(url)
    with _serve(tmp_path, url) as base:
        yield base, runs


@contextlib.contextmanager
def _serve(tmp_path: Path, url: str) -> Iterator[str]:
    """``wattbench dashboard`` on ``url`` and a free port (as test_dashboard_browser.py)."""
    port = _free_port()
    log_path = tmp_path / "dashboard.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*_wattbench(), "dashboard", "--db", url, "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: killed as a whole below
            env={**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"},
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                if proc.poll() is not None:
                    out = log_path.read_text(errors="replace")
                    pytest.fail(f"wattbench dashboard exited with {proc.returncode}: {out[-2000:]}")
                with (
                    contextlib.suppress(OSError),
                    urllib.request.urlopen(f"{base}/_stcore/health", timeout=1) as resp,
                ):
                    if resp.status == 200:
                        break
                if time.monotonic() > deadline:
                    pytest.fail("wattbench dashboard did not answer within 60 s")
                time.sleep(0.2)
            yield base
        finally:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


#: Markdown that got interpreted: a heading, bold or a link made of stored text.
_INTERPRETED = """() => {
  const main = document.querySelector('[data-testid="stMain"]') || document.body;
  const found = [];
  for (const h of main.querySelectorAll('h1, h2, h3, h4, h5, h6'))
    if (/^\\s*big\\b/.test(h.textContent)) found.push('heading: ' + h.textContent);
  for (const b of document.querySelectorAll('strong, b, em, i'))
    if (['bold', 'big'].includes(b.textContent.trim())) found.push('emphasis: ' + b.outerHTML);
  for (const a of document.querySelectorAll('a'))
    if (a.textContent.trim() === 'x' || /javascript:/i.test(a.getAttribute('href') || ''))
      found.push('link: ' + a.outerHTML);
  for (const img of document.querySelectorAll('img[src="x"], img[onerror]'))
    found.push('img: ' + img.outerHTML);
  for (const s of document.querySelectorAll('script'))
    if (s.textContent.includes('__pwned')) found.push('script: ' + s.outerHTML);
  return found;
}"""

#: Elements wider than their box (a sideways scrollbar), page and app containers.
_OVERFLOW = """() => {
  const out = [];
  const de = document.documentElement;
  if (de.scrollWidth > window.innerWidth + 2)
    out.push(`page ${de.scrollWidth} > ${window.innerWidth}`);
  for (const id of ['stApp', 'stAppViewContainer', 'stMain', 'stMainBlockContainer']) {
    const el = document.querySelector(`[data-testid="${id}"]`);
    if (el && el.scrollWidth > el.clientWidth + 2)
      out.push(`${id} ${el.scrollWidth} > ${el.clientWidth}`);
  }
  return out;
}"""


def _check(page: Any, dialogs: list[str], where: str, literal: tuple[str, ...]) -> None:
    """No script ran, no dialog, every ``literal`` string shown as text, no markdown made of
    stored text, nothing wider than the page."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    # Every literal string shown, as text. Streamlit draws over a websocket: wait for them,
    # then say which are missing (interpreted as markdown, or not shown at all).
    missing = "(wanted) => wanted.filter(w => !document.body.innerText.includes(w))"
    with contextlib.suppress(PlaywrightTimeout):
        page.wait_for_function(f"(w) => ({missing})(w).length === 0", arg=list(literal))
    page.wait_for_timeout(1500)  # let late elements (charts, alerts) settle
    assert page.evaluate(missing, list(literal)) == [], where
    assert page.evaluate("typeof window.__pwned") == "undefined", where
    assert dialogs == [], (where, dialogs)
    assert page.evaluate(_INTERPRETED) == [], where
    assert page.evaluate(_OVERFLOW) == [], where


def test_hostile_text_is_inert_on_every_page(
    hostile_dashboard: tuple[str, list[RunResult]],
) -> None:
    base, runs = hostile_dashboard
    if not Path(CHROMIUM).exists():
        _unavailable(f"{CHROMIUM} is not installed (apt install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install 'wattbench[dev]')")
    long_run, rtl_run, _long_model, invalid = runs
    title = (SUITE, VERSION, SCENARIO)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            dialogs: list[str] = []

            def on_dialog(d: Any) -> None:
                dialogs.append(f"{d.type}: {d.message}")
                d.dismiss()

            page.on("dialog", on_dialog)

            page.goto(base, wait_until="domcontentloaded")
            page.get_by_role("heading", name="Leaderboard").wait_for(timeout=60_000)
            page.locator('[data-testid="stDataFrame"]').first.wait_for(timeout=60_000)
            _check(page, dialogs, "leaderboard", title)

            for r, shown in (
                (long_run, (*title, LONG_DEVICE, MARKDOWN, HEADING_NOTE, LONG_NOTE)),
                (rtl_run, (*title, f"{RTL} {IMG}", SCRIPT)),
                (invalid, (*title, LONG_DEVICE, f"{MARKDOWN}; {SCRIPT}")),
            ):
                page.goto(f"{base}/run?run={r.run_id}", wait_until="domcontentloaded")
                page.get_by_role("heading", name="Run detail").wait_for(timeout=60_000)
                _check(page, dialogs, f"run detail {r.run_id}", shown)

            page.goto(f"{base}/compare", wait_until="domcontentloaded")
            page.get_by_role("heading", name="Compare configurations").wait_for(timeout=60_000)
            page.get_by_text("Deltas against the first").wait_for(timeout=60_000)
            _check(page, dialogs, "compare", ())

            page.goto(f"{base}/pareto", wait_until="domcontentloaded")
            page.get_by_role("heading", name="Pareto front").wait_for(timeout=60_000)
            page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
            _check(page, dialogs, "pareto", title)

            page.goto(f"{base}/procurement", wait_until="domcontentloaded")
            page.get_by_role("heading", name="Procurement").wait_for(timeout=60_000)
            page.locator('[data-testid="stDataFrame"]').nth(1).wait_for(timeout=60_000)
            _check(page, dialogs, "procurement", title)

            page.goto(f"{base}/campaigns", wait_until="domcontentloaded")
            page.get_by_role("heading", name="Campaigns").wait_for(timeout=60_000)
            _check(page, dialogs, "campaigns", (f"{', '.join(CAMPAIGN_DEVICES)}",))
            emoji = page.evaluate("document.body.innerText.includes('\\u{1F604}')")
            assert not emoji, "a device name became an emoji"
        finally:
            browser.close()
