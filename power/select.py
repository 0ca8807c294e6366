"""Turn ``--power`` specs into reader instances, preferring measurements."""

from __future__ import annotations

from wattbench.core import plugins
from wattbench.core.errors import ConfigError, UnavailableError
from wattbench.core.power import EnergyMethod, PowerReader, ReaderOptions
from wattbench.power.estimated import EstimatedCpuReader

#: ``auto`` prefers the most direct method available.
METHOD_PREFERENCE = (EnergyMethod.COUNTER, EnergyMethod.POLLED, EnergyMethod.EXTERNAL)


def reader_classes() -> dict[str, type[PowerReader]]:
    return {
        name: plugins.load(plugins.POWER_READERS, name)
        for name in plugins.names(plugins.POWER_READERS)
    }


def _setup_warnings(reader: PowerReader) -> list[str]:
    """What a reader says must be heard before its figures are trusted (optional hook)."""
    hook = getattr(reader, "setup_warnings", None)
    return [f"{reader.name}: {w}" for w in hook()] if callable(hook) else []


def _auto(options: ReaderOptions, warnings: list[str]) -> PowerReader:
    classes = reader_classes()
    ranked = sorted(
        (c for c in classes.values() if c.method in METHOD_PREFERENCE),
        key=lambda c: (METHOD_PREFERENCE.index(c.method), c.name),
    )
    tried = []
    for cls in ranked:
        ok, _reason = cls.is_available(options)
        if ok:
            return cls(options)
        tried.append(cls.name)
    est = EstimatedCpuReader(options)
    # Two short lines: what was tried and the remedy's address; each reader's reason is long
    # and lives in `wattbench power list`.
    warnings.append(
        f"no measured power reader here (tried {', '.join(tried) or 'none'}): energy is "
        f"ESTIMATED from CPU TDP x utilisation\n  {est.tdp_source}; why each reader is "
        f"unavailable and how to fix it: `wattbench power list`, docs/measurement.md"
    )
    return est


def select_readers(
    specs: tuple[str, ...] | list[str], options: ReaderOptions
) -> tuple[list[PowerReader], list[str]]:
    """Readers for ``specs`` (names or ``auto``) and warnings to show the user."""
    warnings: list[str] = []
    readers: list[PowerReader] = []
    for spec in specs:
        if spec == "auto":
            readers.append(_auto(options, warnings))
            continue
        cls = plugins.load(plugins.POWER_READERS, spec)
        ok, reason = cls.is_available(options)
        if not ok:
            raise UnavailableError(f"power reader {spec!r} is not available: {reason}")
        reader = cls(options)
        if isinstance(reader, EstimatedCpuReader) and reader.uses_fallback:
            warnings.append(f"energy is ESTIMATED with a generic TDP: {reader.tdp_source}")
        warnings.extend(_setup_warnings(reader))
        readers.append(reader)
    names = [r.name for r in readers]
    if len(set(names)) != len(names):
        raise ConfigError(f"power reader listed twice in --power: {', '.join(names)}")
    return readers, warnings
