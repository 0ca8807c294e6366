"""Cloud and hybrid modes: the edge escalates some (or all) queries over HTTP.

Per query the edge does its own part inside the measured energy window:

* ``hybrid``: run the model, take the top-1 softmax probability as confidence,
  and when it is below ``--escalate-below`` encode the sample for the wire;
* ``cloud`` (the cloud-only baseline): encode the sample for the wire, no local
  inference.

Right after each window closes, that window's escalations go to the cloud one by
one, outside the window. The window is paced as single-stream: each escalation
charges the reference pass's mean round trip against ``--duration``, so it holds
the queries a device would issue in that time. On a loopback test the "cloud"
shares this machine, and a system-wide reader would otherwise count its compute
as the edge's. Bytes are counted at the client socket (:mod:`.meter`), network
energy is modelled from them (:mod:`.energy_model`), cloud compute comes from
the server's reader per request (or a configured figure, labelled estimated). A
query's end-to-end latency is its edge time plus its round trip.

An escalation that fails (refused, timeout, 5xx) keeps the edge's answer (in
cloud mode the query has none), is counted by cause and turns into a warning;
when every escalation fails the run is stored but marked invalid.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from wattbench.core.adapter import Adapter, ModelArtifact, Session
from wattbench.core.cache import ModelCache
from wattbench.core.config import RunConfig
from wattbench.core.errors import ConfigError
from wattbench.core.network import NetworkResult
from wattbench.core.power import EnergyMethod, PowerReader
from wattbench.core.results import RunResult, TrialResult
from wattbench.core.stats import latency_stats
from wattbench.core.suite import InputSet, Suite
from wattbench.harness.network.energy_model import NetworkEnergyModel, load_model
from wattbench.harness.network.meter import (
    Exchange,
    MeteredClient,
    interface_counters,
    interface_for,
)
from wattbench.harness.network.payload import (
    PayloadSpec,
    confidence_reader,
    default_payload,
    encode,
)
from wattbench.harness.protocol import Progress, Runner
from wattbench.harness.scenarios import WindowResult, timed_loop

#: Floor of the round trip charged per escalation when pacing a window.
MIN_PACING_NS = 1_000_000
#: Consecutive timeouts after which the rest of a run's escalations are not tried.
MAX_CONSECUTIVE_TIMEOUTS = 3
INFER_PATH = "/v1/infer"


@dataclass
class _Query:
    sample: int
    edge_ns: int
    escalated: bool
    edge_answer: int | None


@dataclass
class _Escalation:
    exchange: Exchange | None  # None: not tried (cloud unreachable)
    answer: int | None
    compute_j: float | None
    energy_method: str | None


class HybridRunner(Runner):
    """The protocol of :class:`Runner` with escalations to a cloud endpoint."""

    def __init__(
        self,
        config: RunConfig,
        suite: Suite,
        adapter: Adapter,
        readers: Sequence[PowerReader],
        cache: ModelCache,
        *,
        progress: Progress | None = None,
        clock_ns: Callable[[], int] = time.perf_counter_ns,
        sleep: Callable[[float], None] = time.sleep,
        warnings: Sequence[str] = (),
        payload: str | None = None,
        network_model: NetworkEnergyModel | None = None,
        cloud_j_per_request: float | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        super().__init__(
            config,
            suite,
            adapter,
            readers,
            cache,
            progress=progress,
            clock_ns=clock_ns,
            sleep=sleep,
            warnings=warnings,
        )
        cfg = config
        if cfg.mode not in ("cloud", "hybrid"):
            raise ConfigError(f"--mode {cfg.mode} does not escalate: use --mode cloud or hybrid")
        if not cfg.cloud_url:
            raise ConfigError(
                f"--mode {cfg.mode} needs --cloud-url: start an endpoint with "
                f"`wattbench cloud serve` and pass the URL it prints"
            )
        if cfg.mode == "hybrid" and cfg.escalate_below is None:
            raise ConfigError(
                "--mode hybrid needs --escalate-below CONFIDENCE (0..1): queries whose top-1 "
                "probability is below it go to the cloud"
            )
        if cfg.mode == "cloud" and cfg.escalate_below is not None:
            self.warnings.append("--escalate-below is ignored in --mode cloud (all queries go)")
        if cfg.batch != 1:
            raise ConfigError(f"--mode {cfg.mode} decides per sample: use --batch 1")
        if cfg.scenario != "single-stream" or cfg.driver != "builtin":
            raise ConfigError(
                f"--mode {cfg.mode} runs the single-stream scenario with the builtin driver: "
                f"leave --scenario and --driver at their defaults"
            )
        self.client = MeteredClient(cfg.cloud_url, timeout_s=timeout_s)  # checks the URL
        # the option, else the environment (a fallback for scripts that set it once)
        model_file = cfg.network_model or os.environ.get("WATTBENCH_NETWORK_MODEL")
        self.model = network_model or load_model(Path(model_file) if model_file else None)
        self.model.coefficient(cfg.network_link)  # unknown link: fail before loading
        self._rtt_budget_ns = MIN_PACING_NS
        self._read: Callable[[Sequence[Any]], tuple[int, float]] = lambda outs: (-1, 0.0)
        self._edge_classes = 0
        spec = payload or cfg.payload
        self.payload = PayloadSpec.parse(spec) if spec else None
        j = cloud_j_per_request
        self.cloud_j_per_request = j if j is not None else cfg.cloud_j_per_request
        if self.cloud_j_per_request is not None and self.cloud_j_per_request < 0:
            raise ConfigError("cloud J per request must be >= 0")

    # -- the measured part -----------------------------------------------------------------
    def _measure(
        self,
        session: Session,
        artifact: ModelArtifact,
        inputs: InputSet,
        started: datetime,
        load_ms: float,
    ) -> RunResult:
        try:
            return self._measure_hybrid(session, artifact, inputs, started, load_ms)
        finally:
            self.client.close()

    def _measure_hybrid(
        self,
        session: Session,
        artifact: ModelArtifact,
        inputs: InputSet,
        started: datetime,
        load_ms: float,
    ) -> RunResult:
        cfg = self.config
        samples = inputs.samples
        specs = session.inputs()
        prepared, pre_ms = self._batches(session, inputs)  # batch 1: one per sample

        t0 = self.clock_ns()
        session.run(prepared[0])
        first_ms = (self.clock_ns() - t0) / 1e6
        self.progress.phase("warm-up", cfg.warmup_s)
        timed_loop(
            session, prepared, cfg.warmup_s, cfg.warmup_queries, self.clock_ns, self.progress.update
        )

        # Edge answers and confidences, and the quality check, outside every window.
        self._read = confidence_reader(session)
        raw = [session.run(p) for p in prepared]
        rows = [np.asarray(o[0])[0] for o in raw]
        self.progress.phase("reference outputs")
        reference = self.suite.reference_outputs(inputs, self.cache)
        quality = self.suite.check_quality(rows, inputs, reference)
        edge = [self._read(o) for o in raw]
        self._edge_classes = int(rows[0].size)
        # Acquisition and preprocessing stay outside the windows, as in the edge protocol;
        # encoding for the wire is the device's work and happens inside them.
        acquired = [self.suite.acquire(s) for s in samples]
        spec = self.payload or default_payload(acquired[0])
        feeds = [self.suite.preprocess_feed(a, specs) for a in acquired]
        bodies = [encode(spec, s, a, f) for s, a, f in zip(samples, acquired, feeds, strict=True)]

        self.progress.phase("cloud reference answers")
        cloud_desc = self._health()
        cloud_ref = [self._ask(b, spec) for b in bodies]
        cloud_answers = [e.answer for e in cloud_ref]
        ref_rtts = [e.exchange.round_trip_ns for e in cloud_ref if e.exchange is not None]
        # Single-stream pacing: each escalation's round trip counts against the window's
        # duration, so a window holds the queries a device would issue in --duration.
        self._rtt_budget_ns = max(MIN_PACING_NS, int(sum(ref_rtts) / max(1, len(ref_rtts))))
        if all(a is None for a in cloud_answers):
            self.warnings.append(
                f"the cloud at {cfg.cloud_url} answered none of the reference requests "
                f"({_causes([e.exchange for e in cloud_ref])}): agreement is unknown"
            )

        idle, idle_w, min_s = self._idle_baseline()

        trials: list[TrialResult] = []
        all_lat: list[int] = []
        queries: list[_Query] = []
        escalations: list[_Escalation] = []
        e2e: list[int] = []
        nic = None
        os_before: tuple[int, int] | None = None
        os_delta = [0, 0]
        breaker = [0]
        for k in range(cfg.repeats):
            if k and cfg.cooldown_s:
                self.progress.phase(f"cooldown {k}/{cfg.repeats}")
                self.sleep(cfg.cooldown_s)
            self.progress.phase(f"trial {k + 1}/{cfg.repeats}", min_s)
            (win, qs, sent), readings = self._window(
                lambda: self._edge_window(session, prepared, samples, acquired, feeds, spec, min_s)
            )
            trials.append(self._trial(k, win, readings, idle_w))
            all_lat.extend(win.latencies_ns)
            self.progress.phase(f"escalations {k + 1}/{cfg.repeats}")
            nic = nic or interface_for(self.client.local_address())
            os_before = interface_counters(nic)
            for q in qs:
                if not q.escalated:
                    e2e.append(q.edge_ns)
                    continue
                esc = self._escalate(sent[q.sample], spec, breaker)
                escalations.append(esc)
                rtt = esc.exchange.round_trip_ns if esc.exchange is not None else 0
                e2e.append(q.edge_ns + rtt)
            after = interface_counters(nic)
            if os_before is not None and after is not None:
                os_delta[0] += after[0] - os_before[0]
                os_delta[1] += after[1] - os_before[1]
            queries.extend(qs)

        result = self._assemble(
            session,
            artifact,
            inputs,
            started,
            load_ms,
            first_ms,
            pre_ms,
            quality,
            trials,
            all_lat,
            idle,
        )
        network = self._network_result(
            result, queries, escalations, edge, cloud_answers, inputs, spec, idle_w, cloud_desc
        )
        for row, body in zip(network.per_sample, bodies, strict=True):
            row["payload_bytes"] = len(body)
        exchanges = [e.exchange for e in escalations if e.exchange is not None]
        if nic is not None and os_before is not None and exchanges:
            wire = sum(x.wire_bytes for x in exchanges)
            network.interface_check = {
                "interface": nic,
                "os_bytes_sent": os_delta[0],
                "os_bytes_received": os_delta[1],
                "counted_wire_bytes": wire,
                "ratio_os_sent_to_counted": os_delta[0] / wire if wire else None,
                "note": "OS counters over the escalation passes; they include any other "
                "traffic on the interface (on loopback each packet counts once sent and once "
                "received). A cross-check, not the figure.",
            }
        warnings = list(result.warnings)
        reasons = list(result.invalid_reasons)
        if network.escalation_failures:
            what = "the edge answer was kept" if cfg.mode == "hybrid" else "those queries got none"
            warnings.append(
                f"{network.escalation_failures} of {network.escalated} escalations to "
                f"{cfg.cloud_url} failed ({_fmt_causes(network.failures)}): {what}"
            )
            if network.escalation_failures == network.escalated:
                reasons.append(
                    f"all {network.escalated} escalations failed: the cloud at {cfg.cloud_url} "
                    f"was unreachable, so the figures describe "
                    f"{'edge-only operation' if cfg.mode == 'hybrid' else 'no answers at all'}"
                )
        if network.cloud_energy == "none" and network.escalated > network.escalation_failures:
            warnings.append(
                "cloud compute energy unknown (the server runs no power reader): energy-to-"
                "solution is not given; run `wattbench cloud serve --power auto` or configure "
                "a cloud J/request"
            )
        if cloud_desc.get("model_sha256") == artifact.sha256:
            warnings.append(
                "the cloud serves the same model as the edge: escalations cannot change the "
                "answer (agreement is trivially high); serve a bigger model with --model"
            )
        return result.model_copy(
            update={
                "network": network,
                "scenario_details": {"mode": cfg.mode, "escalate_below": cfg.escalate_below},
                "latency_e2e": latency_stats(e2e) if e2e else None,
                "e2e_breakdown_ms": {
                    "edge": sum(q.edge_ns for q in queries) / max(1, len(queries)) / 1e6,
                    "round_trip": sum(
                        e.exchange.round_trip_ns for e in escalations if e.exchange is not None
                    )
                    / max(1, len(queries))
                    / 1e6,
                },
                "warnings": warnings,
                "invalid_reasons": reasons,
                "valid": not reasons,
            }
        )

    def _edge_window(
        self,
        session: Session,
        prepared: Sequence[Any],
        samples: Sequence[Any],
        acquired: Sequence[Any],
        feeds: Sequence[dict[str, np.ndarray]],
        spec: PayloadSpec,
        min_s: float,
    ) -> tuple[WindowResult, list[_Query], dict[int, bytes]]:
        """The edge's work for queries until ``min_s`` and ``min_queries`` are met."""
        cfg = self.config
        clock = self.clock_ns
        hybrid = cfg.mode == "hybrid"
        threshold = cfg.escalate_below if cfg.escalate_below is not None else 1.0
        n = len(prepared)
        min_ns = int(min_s * 1e9)
        run = session.run
        read = self._read
        queries: list[_Query] = []
        sent: dict[int, bytes] = {}
        paced_ns = 0  # expected round trips of this window's escalations
        rtt = self._rtt_budget_ns
        start = clock()
        i = 0
        while True:
            j = i % n
            t0 = clock()
            answer: int | None = None
            if hybrid:
                answer, conf = read(run(prepared[j]))
                escalate = conf < threshold
            else:
                escalate = True
            if escalate:
                sent[j] = encode(spec, samples[j], acquired[j], feeds[j])
                paced_ns += rtt
            t1 = clock()
            queries.append(_Query(j, t1 - t0, escalate, answer))
            i += 1
            elapsed = t1 - start
            if i >= cfg.min_queries and elapsed + paced_ns >= min_ns:
                break
            if not i & 63:
                self.progress.update((elapsed + paced_ns) / 1e9)
        win = WindowResult(
            latencies_ns=[q.edge_ns for q in queries], duration_ns=elapsed, samples=len(queries)
        )
        return win, queries, sent

    # -- talking to the cloud ---------------------------------------------------------
    def _health(self) -> dict[str, Any]:
        ex = self.client.request("GET", "/v1/health")
        if not ex.ok:
            return {"error": ex.error}
        try:
            data = json.loads(ex.body)
        except ValueError:
            return {"error": "health answer is not JSON"}
        return data if isinstance(data, dict) else {"error": "health answer is not an object"}

    def _ask(self, body: bytes, spec: PayloadSpec) -> _Escalation:
        ex = self.client.request(
            "POST", INFER_PATH, body, headers={"Content-Type": spec.content_type(body)}
        )
        if not ex.ok:
            return _Escalation(ex, None, None, None)
        try:
            data = json.loads(ex.body)
            answer = int(data["answer"])
            cj = data.get("compute_j")
            return _Escalation(
                ex, answer, None if cj is None else float(cj), data.get("energy_method")
            )
        except (ValueError, KeyError, TypeError):
            ex.ok, ex.error = False, "malformed answer"
            return _Escalation(ex, None, None, None)

    def _escalate(self, body: bytes, spec: PayloadSpec, breaker: list[int]) -> _Escalation:
        if breaker[0] >= MAX_CONSECUTIVE_TIMEOUTS:
            return _Escalation(None, None, None, None)
        esc = self._ask(body, spec)
        ex = esc.exchange
        breaker[0] = breaker[0] + 1 if ex is not None and ex.error == "timeout" else 0
        return esc

    # -- accounting -------------------------------------------------------------------
    def _network_result(
        self,
        result: RunResult,
        queries: list[_Query],
        escalations: list[_Escalation],
        edge: list[tuple[int, float]],
        cloud_answers: list[int | None],
        inputs: InputSet,
        spec: PayloadSpec,
        idle_w: list[float],
        cloud_desc: dict[str, Any],
    ) -> NetworkResult:
        cfg = self.config
        nq = len(queries)
        tried = [e.exchange for e in escalations if e.exchange is not None]
        causes = Counter(
            "not tried: cloud unreachable" if e.exchange is None else (e.exchange.error or "?")
            for e in escalations
            if e.answer is None
        )
        failures = sum(causes.values())
        sent = sum(x.stream_sent for x in tried)
        received = sum(x.stream_received for x in tried)
        headers = sum(x.header_bytes for x in tried)
        wire = sent + received + headers
        net = self.model.energy(cfg.network_link, wire)
        head = result.headline
        edge_j = head.joules_per_inference if head is not None else None
        answered = [e for e in escalations if e.answer is not None]
        cloud_j: float | None
        if answered and all(e.compute_j is not None for e in answered):
            cloud_j = sum(e.compute_j or 0.0 for e in answered) / nq
            methods = sorted({e.energy_method or "?" for e in answered})
            cloud_label = "estimated" if methods == [EnergyMethod.ESTIMATED.value] else "measured"
            basis = f"server reader per request (method: {', '.join(methods)})"
        elif answered and self.cloud_j_per_request is not None:
            cloud_j = self.cloud_j_per_request * len(answered) / nq
            cloud_label = "estimated"
            basis = f"configured {self.cloud_j_per_request} J per request"
        elif not answered:
            cloud_j, cloud_label, basis = 0.0, "zero", "no request answered by the cloud"
        else:
            cloud_j, cloud_label, basis = None, "none", "the server runs no power reader"
        ets = ets_low = ets_high = None
        if edge_j is not None and cloud_j is not None:
            ets = edge_j + net.energy_j / nq + cloud_j
            ets_low = edge_j + net.low_j / nq + cloud_j
            ets_high = edge_j + net.high_j / nq + cloud_j
        final: list[int | None] = []
        it = iter(escalations)
        for q in queries:
            # an escalation's answer replaces the edge's; a failed one keeps it
            cloud = next(it).answer if q.escalated else None
            final.append(cloud if cloud is not None else q.edge_answer)
        known = [
            (f, cloud_answers[q.sample])
            for f, q in zip(final, queries, strict=True)
            if cloud_answers[q.sample] is not None
        ]
        agreement = sum(f == c for f, c in known) / len(known) if known else None
        # the same, apart for the queries that went and those the edge kept
        by_kind: dict[bool, list[bool]] = {True: [], False: []}
        for f, q in zip(final, queries, strict=True):
            c = cloud_answers[q.sample]
            if c is not None:
                by_kind[q.escalated].append(f == c)
        split = {k: sum(v) / len(v) if v else None for k, v in by_kind.items()}
        acc = self._accuracy(inputs, queries, final, edge, cloud_answers, cloud_desc)
        rtts = [x.round_trip_ns for x in tried]
        bytes_method = (
            "tcp_info" if tried and all(x.tcp_sent is not None for x in tried) else "socket"
        )
        threshold = cfg.escalate_below if cfg.mode == "hybrid" else None
        return NetworkResult(
            mode=cfg.mode,
            queries=nq,
            escalated=len(escalations),
            escalation_failures=failures,
            bytes_sent=sent,
            bytes_received=received,
            network_j_per_inference=net.energy_j / nq if nq else None,
            network_j_low_per_inference=net.low_j / nq if nq else None,
            network_j_high_per_inference=net.high_j / nq if nq else None,
            cloud_url=cfg.cloud_url,
            threshold=threshold,
            escalation_rate=len(escalations) / nq if nq else 0.0,
            payload=str(spec),
            link=cfg.network_link,
            bytes_method=bytes_method,
            header_bytes=headers,
            wire_bytes=wire,
            bytes_per_inference=wire / nq if nq else 0.0,
            edge_j_per_inference=edge_j,
            edge_energy_method=head.method.value if head is not None else None,
            cloud_j_per_inference=cloud_j,
            cloud_energy=cloud_label,
            cloud_energy_basis=basis,
            energy_to_solution_j_per_inference=ets,
            energy_to_solution_low_j=ets_low,
            energy_to_solution_high_j=ets_high,
            edge_wait_j_per_inference=(idle_w[0] * sum(rtts) / 1e9 / nq) if idle_w and nq else None,
            agreement_with_cloud=agreement,
            agreement_escalated=split[True],
            agreement_kept=split[False],
            accuracy=acc.get("final"),
            edge_accuracy=acc.get("edge"),
            cloud_accuracy=acc.get("cloud"),
            accuracy_basis=acc.get("basis"),
            round_trip=latency_stats(rtts) if rtts else None,
            failures=dict(causes),
            energy_model=self.model.describe(cfg.network_link),
            cloud=cloud_desc,
            per_sample=[
                {
                    "name": name,
                    "edge_answer": edge[i][0],
                    "edge_confidence": edge[i][1],
                    "cloud_answer": cloud_answers[i],
                    "payload_bytes": None,
                }
                for i, name in enumerate(inputs.names)
            ],
            details={
                "answered_by_cloud": len(answered),
                "network_j_total": net.energy_j,
                "answers_kept_from_edge": sum(
                    1
                    for q, f in zip(queries, final, strict=True)
                    if f is not None and not (q.escalated)
                ),
            },
        )

    def _accuracy(
        self,
        inputs: InputSet,
        queries: list[_Query],
        final: list[int | None],
        edge: list[tuple[int, float]],
        cloud_answers: list[int | None],
        cloud_desc: dict[str, Any],
    ) -> dict[str, Any]:
        """Top-1 accuracy per query of the final, edge-only and cloud-only answers.

        Only where the suite knows every input's label (``Suite.labels``, e.g. the
        shipped images of mobilenet_v2); empty otherwise.
        """
        labels_of = getattr(self.suite, "labels", None)
        labels = labels_of(inputs) if callable(labels_of) else None
        if not labels or not queries:
            return {}
        cloud_classes = cloud_desc.get("classes")
        if isinstance(cloud_classes, int) and cloud_classes != self._edge_classes:
            self.warnings.append(
                f"the edge model has {self._edge_classes} classes, the cloud's {cloud_classes}: "
                f"their answers are not in one label space, so agreement and accuracy mislead"
            )
        # labels are 1000-class ImageNet indices; 1001-class models put background at 0
        off = 1 if self._edge_classes == 1001 else 0
        truth = [int(labels[q.sample]) + off for q in queries]

        def share(answers: list[int | None]) -> float:
            return sum(a == t for a, t in zip(answers, truth, strict=True)) / len(truth)

        return {
            "final": share(final),
            "edge": share([edge[q.sample][0] for q in queries]),
            "cloud": share([cloud_answers[q.sample] for q in queries]),
            "basis": f"top-1 vs the suite's labels of the {len(labels)} inputs, per query "
            f"(class index + {off})",
        }


def _causes(exchanges: Sequence[Exchange | None]) -> str:
    c = Counter("not tried" if x is None else (x.error or "?") for x in exchanges)
    return _fmt_causes(dict(c))


def _fmt_causes(causes: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(causes.items(), key=lambda kv: -kv[1]))
