"""How a worker runs one cell: the run protocol of `wattbench run`, minus the terminal.

:class:`HarnessExecutor` is what every worker uses; ``wattbench worker --executor
module:attribute`` swaps in another (the scheduling benchmark's no-op one).
"""

from __future__ import annotations

from typing import Any, Protocol

from wattbench.core import plugins
from wattbench.core.config import RunConfig
from wattbench.core.errors import UnavailableError, UnknownPluginError, WattbenchError
from wattbench.core.results import RunResult


class CellAborted(Exception):
    """The cell stopped at a phase boundary (worker shutting down, campaign cancelled)."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


class CellProgress(Protocol):
    """The runner's progress hook; raising :class:`CellAborted` from it stops the run."""

    def phase(self, name: str, total: float | None = None) -> None: ...

    def update(self, completed: float) -> None: ...


class Executor(Protocol):
    def unavailable(self, options: dict[str, Any], device: str) -> str | None:
        """Why ``device`` cannot run the cell (adapter not installed, no accelerator), or
        None. Such a cell is skipped, never failed."""

    def config(self, options: dict[str, Any], *, device: str, labels: list[str]) -> RunConfig:
        """The cell's run config on ``device``."""

    def run(self, cfg: RunConfig, progress: CellProgress) -> RunResult:
        """Run the cell; returns the result (not stored yet)."""


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class HarnessExecutor:
    """The suite × adapter × readers of the cell through :func:`create_runner`, with the
    thermal monitor of ``wattbench run`` (the stored run's ``thermal`` section)."""

    def _adapter_cls(self, options: dict[str, Any]) -> Any:
        name = options.get("adapter")
        if not name:
            from wattbench.harness.cli.run import default_adapter

            name = default_adapter(plugins.load(plugins.SUITES, str(options["suite"])))
        return plugins.load(plugins.ADAPTERS, str(name))

    def unavailable(self, options: dict[str, Any], device: str) -> str | None:
        adapter = options.get("adapter") or "the suite's default"
        try:
            plugins.load(plugins.SUITES, str(options["suite"]))
        except UnknownPluginError:
            return f"suite {options['suite']!r} is not installed on {device}"
        except UnavailableError as exc:
            return f"suite {options['suite']!r} cannot load on {device}: {exc}"
        try:
            cls = self._adapter_cls(options)
        except UnknownPluginError:
            return f"adapter {adapter!r} is not installed on {device}"
        except WattbenchError as exc:  # failed to import, no default runtime here
            return f"adapter {adapter!r} cannot load on {device}: {exc}"
        target = str(options.get("device") or cls.default_device)
        ok, reason = cls.is_available(target)
        if not ok:
            return f"adapter {cls.name!r} ({target}) is not available on {device}: {reason}"
        return None

    def config(self, options: dict[str, Any], *, device: str, labels: list[str]) -> RunConfig:
        opts = dict(options)
        cls = self._adapter_cls(opts)
        opts["adapter"] = cls.name
        opts.setdefault("device", cls.default_device)
        opts["device-name"] = device
        given = opts.get("label", [])
        opts["label"] = [*([given] if isinstance(given, str) else list(given)), *labels]
        return RunConfig.from_options(opts, source="campaign cell")

    def run(self, cfg: RunConfig, progress: CellProgress) -> RunResult:
        from wattbench.core.cache import ModelCache
        from wattbench.core.suite import SuiteOptions
        from wattbench.harness.cli.common import run_reader_options
        from wattbench.harness.protocol import create_runner
        from wattbench.power.select import select_readers
        from wattbench.power.thermal import ThermalMonitor

        suite_cls = plugins.load(plugins.SUITES, cfg.suite)
        adapter_cls = plugins.load(plugins.ADAPTERS, cfg.adapter)
        if cfg.adapter_options:
            from wattbench.adapters.options import check_keys

            check_keys(cfg.adapter, cfg.adapter_options, adapter_cls.option_keys)
        readers, warnings = select_readers(cfg.power, run_reader_options(cfg))
        suite = suite_cls(SuiteOptions(data_dir=cfg.data_dir, seed=cfg.seed, weights=cfg.weights))
        return create_runner(
            cfg,
            suite,
            adapter_cls(),
            readers,
            ModelCache(),
            progress=progress,
            warnings=warnings,
            # as `wattbench run`: temperatures + throttling per trial (none sampled, no section)
            thermal=ThermalMonitor(cfg.sysfs_root),
        ).execute()


def load_executor(spec: str | None) -> Executor:
    """The executor named ``module:attribute`` (a class or an instance), or the harness."""
    if not spec:
        return HarnessExecutor()
    import importlib

    module, _, attr = spec.partition(":")
    try:
        obj = getattr(importlib.import_module(module), attr or "executor")
    except (ImportError, AttributeError) as exc:
        raise UnavailableError(f"--executor {spec!r} cannot be loaded: {_one_line(exc)}") from None
    return obj() if isinstance(obj, type) else obj


class NoopExecutor:
    """Runs nothing: every cell's result is one fake run (fake adapter, suite and power
    reader on a fake clock, made once per process) carrying the cell's config and labels.

    For measuring the campaign plumbing itself (benchmarks/fleet_bench.py) and for a dry run
    of a new rack: ``wattbench worker --executor wattbench.fleet.executor:NoopExecutor``.
    """

    def __init__(self) -> None:
        self._base: RunResult | None = None

    def unavailable(self, options: dict[str, Any], device: str) -> str | None:
        return None

    def config(self, options: dict[str, Any], *, device: str, labels: list[str]) -> RunConfig:
        opts = {**options, "adapter": options.get("adapter") or "noop", "device-name": device}
        given = opts.get("label", [])
        opts["label"] = [*([given] if isinstance(given, str) else list(given)), *labels]
        return RunConfig.from_options(opts, source="campaign cell")

    def _make_base(self) -> RunResult:
        import tempfile
        from pathlib import Path

        from wattbench.core.cache import ModelCache
        from wattbench.core.testing import FakeAdapter, FakeClock, FakePowerReader, FakeSuite
        from wattbench.harness.protocol import Runner

        clock = FakeClock()
        cfg = RunConfig(
            suite="fake",
            adapter="fake",
            duration_s=0.01,
            min_queries=1,
            repeats=1,
            warmup_s=0,
            warmup_queries=0,
            idle_s=0.01,
            cooldown_s=0,
            e2e_queries=0,
        )
        cache = ModelCache(Path(tempfile.gettempdir()) / "wattbench-noop-cache")
        return Runner(
            cfg,
            FakeSuite(),
            FakeAdapter(clock, 0.001),
            [FakePowerReader(clock, 5.0)],
            cache,
            clock_ns=clock,
            sleep=clock.advance,
        ).execute()

    def run(self, cfg: RunConfig, progress: CellProgress) -> RunResult:
        if self._base is None:
            self._base = self._make_base()
        progress.phase("noop")
        base = self._base
        return base.model_copy(
            update={
                "config": cfg,
                "labels": list(cfg.labels),
                "device": base.device | {"name": cfg.device_name},
            }
        )
