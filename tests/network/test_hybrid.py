"""HybridRunner on fakes against a real loopback HTTP endpoint."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from wattbench.core.adapter import AdapterOptions
from wattbench.core.cache import ModelCache
from wattbench.core.config import RunConfig
from wattbench.core.errors import ConfigError
from wattbench.core.testing import FakeAdapter, FakeClock, FakePowerReader, FakeSuite
from wattbench.harness.network.hybrid import HybridRunner
from wattbench.harness.network.server import CloudModel, CloudServer
from wattbench.harness.protocol import create_runner

# Sample i is [i, i, i, i]; the edge's logits put 2i on class 0, so its top-1
# probabilities are e^{2i} / (e^{2i} + 3): 0.25, 0.71, 0.95, 0.99.
EDGE_CONF = [np.exp(2 * i) / (np.exp(2 * i) + 3) for i in range(4)]


def edge_outputs(x: np.ndarray) -> np.ndarray:
    out = np.zeros_like(x, dtype=np.float32)
    out[:, 0] = 2 * x[:, 0]
    return out


def cloud_outputs(x: np.ndarray) -> np.ndarray:
    out = np.zeros_like(x, dtype=np.float32)
    out[:, 1] = 5.0  # the "cloud model" always says class 1
    return out


class WallClock(FakeClock):
    """Real time for the fake reader: 5 W over real windows, exactly integrable."""

    def seconds(self) -> float:
        return time.perf_counter()


def reader(power_w: float = 5.0) -> FakePowerReader:
    return FakePowerReader(WallClock(), power_w)


def serve(max_requests: int | None = None) -> CloudServer:
    artifact = FakeSuite().build_model("fake", ModelCache())
    session = FakeAdapter(outputs_fn=cloud_outputs).load(artifact, AdapterOptions())
    model = CloudModel(FakeSuite(), session, artifact, [reader(20.0)])
    srv = CloudServer(("127.0.0.1", 0), model, max_requests=max_requests)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


@pytest.fixture
def cloud() -> Iterator[CloudServer]:
    srv = serve()
    yield srv
    srv.shutdown()
    srv.server_close()


def config(url: str | None, **kw: object) -> RunConfig:
    base: dict[str, object] = dict(
        suite="fake",
        adapter="fake",
        duration_s=0.001,
        min_queries=10,
        repeats=2,
        warmup_s=0.0,
        warmup_queries=1,
        idle_s=0.01,
        cooldown_s=0.0,
        mode="hybrid",
        cloud_url=url,
        escalate_below=0.8,
    )
    return RunConfig(**{**base, **kw})  # type: ignore[arg-type]


def runner(cfg: RunConfig, **kw: object) -> HybridRunner:
    r = create_runner(
        cfg,
        FakeSuite(),
        FakeAdapter(outputs_fn=edge_outputs),
        [reader()],
        ModelCache(),
    )
    assert isinstance(r, HybridRunner)
    for k, v in kw.items():
        setattr(r, k, v)
    return r


def expected_escalations(result: object, low: Callable[[int], bool]) -> int:
    """Queries cycle over the 4 samples from sample 0 in every trial."""
    return sum(sum(low(i % 4) for i in range(t.queries)) for t in result.trials)  # type: ignore[attr-defined]


def test_escalation_rate_matches_the_low_confidence_inputs(cloud: CloudServer) -> None:
    result = runner(config(cloud.url)).execute()
    n = result.network
    assert n is not None and result.valid, result.invalid_reasons
    low = [c < 0.8 for c in EDGE_CONF]
    assert low == [True, True, False, False]
    assert n.escalated == expected_escalations(result, lambda j: low[j])
    assert n.escalation_rate == pytest.approx(n.escalated / n.queries)
    assert n.queries == result.inferences
    # escalated queries take the cloud's answer (class 1), the rest keep the edge's (class 0)
    assert n.agreement_with_cloud == pytest.approx(n.escalation_rate)
    assert [s["edge_confidence"] for s in n.per_sample] == pytest.approx(EDGE_CONF)
    assert all(s["cloud_answer"] == 1 for s in n.per_sample)
    # bytes: every escalation carries its npz body plus HTTP headers, and an answer back
    body = n.per_sample[0]["payload_bytes"]
    assert n.payload == "npy"
    assert n.escalated * body < n.bytes_sent < n.escalated * (body + 400)
    assert n.bytes_received > n.escalated * 100
    assert n.wire_bytes == n.bytes_sent + n.bytes_received + n.header_bytes
    assert n.network_j_per_inference and n.network_j_per_inference > 0
    assert n.energy_model["link"] == "wifi" and n.energy_model["core"]["source"]
    # the server metered each request (a counter-method fake at 20 W)
    assert n.cloud_energy == "measured" and "server reader" in n.cloud_energy_basis
    assert n.cloud_j_per_inference is not None and n.cloud_j_per_inference > 0
    assert n.edge_j_per_inference == pytest.approx(result.energy[0].joules_per_inference)
    assert n.energy_to_solution_j_per_inference == pytest.approx(
        (n.edge_j_per_inference or 0) + n.network_j_per_inference + (n.cloud_j_per_inference or 0)
    )
    assert n.energy_to_solution_low_j <= n.energy_to_solution_j_per_inference  # type: ignore[operator]
    assert n.round_trip is not None and n.round_trip.count == n.escalated
    assert result.latency_e2e is not None and result.latency_e2e.count == n.queries
    assert n.interface_check is not None and n.interface_check["os_bytes_sent"] >= n.wire_bytes


def test_threshold_zero_never_escalates_and_one_always_does(cloud: CloudServer) -> None:
    never = runner(config(cloud.url, escalate_below=0.0)).execute().network
    always = runner(config(cloud.url, escalate_below=1.0)).execute().network
    assert never is not None and always is not None
    assert never.escalated == 0 and never.bytes_sent == 0 and never.network_j_per_inference == 0
    assert always.escalation_rate == 1.0 and always.agreement_with_cloud == 1.0


def test_cloud_mode_sends_everything_without_local_inference(cloud: CloudServer) -> None:
    r = runner(config(cloud.url, mode="cloud", escalate_below=None))
    result = r.execute()
    n = result.network
    assert n is not None and n.mode == "cloud" and n.threshold is None
    assert n.escalation_rate == 1.0 and n.agreement_with_cloud == 1.0
    session = r.adapter.sessions[0]  # type: ignore[attr-defined]
    # first inference, one warm-up run, one output per sample: nothing inside the windows
    assert session.runs <= 1 + 1 + 4 + 4


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return int(port)


def test_unreachable_cloud_edge_keeps_going_and_the_run_says_so() -> None:
    result = runner(config(f"http://127.0.0.1:{free_port()}/")).execute()
    n = result.network
    assert n is not None and n.escalated > 0
    assert n.escalation_failures == n.escalated
    assert n.failures == {"connection refused": n.escalated}
    assert not result.valid and "all" in result.invalid_reasons[-1]
    assert any("failed" in w and "edge answer was kept" in w for w in result.warnings)
    assert n.agreement_with_cloud is None and n.bytes_sent == 0


def test_server_stopping_mid_run_counts_the_failures() -> None:
    # 4 reference requests, then 3 escalations, then the server shuts down
    srv = serve(max_requests=4 + 3)
    try:
        result = runner(config(srv.url, escalate_below=1.0)).execute()
    finally:
        srv.server_close()
    n = result.network
    assert n is not None
    assert n.escalated - n.escalation_failures == 3
    assert n.escalation_failures > 0 and result.valid  # partial failure: a warning
    said = f"{n.escalation_failures} of {n.escalated} escalations"
    assert any(said in w for w in result.warnings)


@pytest.mark.parametrize(
    "kw,fragment",
    [
        ({"cloud_url": None}, "--cloud-url"),
        ({"escalate_below": None}, "--escalate-below"),
        ({"cloud_url": "ftp://x/"}, "--cloud-url"),
        ({"network_link": "pigeon"}, "--network-link"),
        ({"batch": 2}, "--batch 1"),
        ({"scenario": "offline"}, "single-stream"),
    ],
)
def test_bad_options_fail_before_anything_runs(kw: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        runner(config("http://127.0.0.1:9/", **kw))
