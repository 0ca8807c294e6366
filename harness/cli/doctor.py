"""``wattbench doctor``: check a device's power readers (see :mod:`wattbench.harness.doctor`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from wattbench.core.errors import ConfigError
from wattbench.harness.cli.common import DbOpt, PowerOptOpt, SysfsOpt, err, out, reader_options


def doctor(
    power: Annotated[
        str | None,
        typer.Option(
            help="Readers to check, comma-separated (default: every reader installed; "
            "`wattbench power list`)."
        ),
    ] = None,
    idle_s: Annotated[
        float, typer.Option("--idle-s", help="Idle seconds for the noise floor.")
    ] = 5.0,
    step_s: Annotated[
        float,
        typer.Option("--step-s", help="Seconds of CPU load (and of recovery after it)."),
    ] = 5.0,
    sample_interval_s: Annotated[
        float, typer.Option("--sample-interval-s", help="Requested sampling interval.")
    ] = 0.1,
    min_step_w: Annotated[
        float, typer.Option("--min-step-w", help="Least rise in W the load must cause.")
    ] = 0.5,
    sigmas: Annotated[
        float, typer.Option(help="... and it must exceed this many σ of the idle noise.")
    ] = 3.0,
    load_workers: Annotated[
        int | None,
        typer.Option(help="Child processes of the CPU load (default: one per logical CPU)."),
    ] = None,
    device_name: Annotated[
        str | None,
        typer.Option(help="Name of this device, as runs name it (default: the host name)."),
    ] = None,
    tdp_w: Annotated[float | None, typer.Option(help="CPU TDP in W for the estimate.")] = None,
    sysfs_root: SysfsOpt = None,
    power_opt: PowerOptOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    report: Annotated[
        Path | None,
        typer.Option(help="Also write the report to this file: .md (markdown) or .json."),
    ] = None,
    save: Annotated[
        bool,
        typer.Option(
            "--save",
            help="Store the report as this device's profile in --db; runs stored afterwards "
            "point at it (the leaderboard says whether their device was validated).",
        ),
    ] = False,
    db: DbOpt = None,
    upload_to: Annotated[
        str | None,
        typer.Option(
            "--upload-to",
            help="With --save: also send the profile to this central store "
            "(`wattbench serve` URL, http(s)://host:port), so that runs uploaded there "
            "afterwards show as validated.",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="WATTBENCH_TOKEN",
            help="Device token for --upload-to (`wattbench token create` on the server).",
        ),
    ] = None,
) -> None:
    """Onboard this device: check each power reader, its permissions, sample rate,
    resolution, idle noise floor and a known-load step.

    Exit 0: every measured reader passed; 1: a reader failed a check; 3: only the
    estimate is available (no measured reader); 2: a usage error.
    """
    from wattbench.harness.doctor import (
        DoctorSettings,
        report_json,
        report_lines,
        report_markdown,
        run_doctor,
    )

    if report is not None and report.suffix not in (".md", ".json"):
        raise ConfigError(f"--report {report}: name a .md or .json file")
    names = tuple(n.strip() for n in (power or "").split(",") if n.strip())
    settings = DoctorSettings(
        power=names,
        idle_s=idle_s,
        step_s=step_s,
        sample_interval_s=sample_interval_s,
        min_step_w=min_step_w,
        sigmas=sigmas,
        device_name=device_name,
        load_workers=load_workers,
    )
    settings.validate()
    if upload_to is not None:
        if not save:
            raise ConfigError("--upload-to sends the saved profile: add --save")
        if not token:
            raise ConfigError(
                "--upload-to needs --token (or $WATTBENCH_TOKEN): create one on the server "
                "with `wattbench token create --device NAME`"
            )
        if not upload_to.startswith(("http://", "https://")):
            raise ConfigError(
                f"invalid --upload-to {upload_to!r}: "
                "use the http(s)://host:port of `wattbench serve`"
            )
    store = None
    if save:  # before measuring: a bad --db fails now, not after the phases
        from wattbench.results_db.store import Store

        store = Store.open(db)

    def progress(phase: str, seconds: float) -> None:
        err.print(f"doctor: {phase} for {seconds:g} s …", markup=False)

    result = run_doctor(reader_options(tdp_w, sysfs_root, power_opt), settings, progress=progress)
    data = report_json(result)
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        for line in report_lines(result):
            out.print(line, markup=False, highlight=False)
    if report is not None:
        text = report_markdown(result) if report.suffix == ".md" else json.dumps(data, indent=2)
        report.write_text(text + ("" if text.endswith("\n") else "\n"))
        err.print(f"doctor: report written to {report}", markup=False)
    if store is not None:
        pid = store.save_device_profile(data)
        err.print(
            f"doctor: saved profile #{pid} ({result.outcome}) of device "
            f"{result.device_name!r} in {store.display_url}",
            markup=False,
        )
    if upload_to is not None and token:
        from wattbench.results_db.upload import upload_profile

        sent = upload_profile(upload_to, token, data)
        err.print(
            f"doctor: profile of device {result.device_name!r} uploaded to {sent.server} "
            f"(#{sent.profile_id}, {sent.status})",
            markup=False,
        )
    raise typer.Exit(code=result.exit_code)
