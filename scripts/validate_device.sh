#!/usr/bin/env bash
# Validate one device for the leaderboard (docs/hardware-validation.md):
#   1. `wattbench power list` and `wattbench doctor --save` (readers, permissions, rate,
#      resolution, noise floor, a known-load step; the profile goes into --db);
#   2. one fixed mobilenet_v2 single-stream run per runtime of the device;
#   3. a report (report.md and report.json) to attach to the result.
#
# Usage:
#   scripts/validate_device.sh orin  [--plug URL] [options]     Jetson Orin (INA3221; + a plug)
#   scripts/validate_device.sh coral --plug URL --coral-model FILE [options]
#                                                                Coral USB on a host, wall plug
#   scripts/validate_device.sh rapl  [--plug URL] [options]     Intel/AMD machine with RAPL
# Options:
#   --db URL            results database (default: WATTBENCH_DB or the local SQLite)
#   --out DIR           where the report goes (default: validation-<device>-<UTC date>)
#   --device-name NAME  the name runs are stored under (default: the host name)
#   --plug URL          a smart plug feeding the device (Shelly by default)
#   --plug-kind KIND    shelly (default) or tasmota
#   --coral-model FILE  an Edge TPU-compiled .tflite (docs/coral.md); without it no coral run
#   --quick             short runs (3 s trials, 1 repeat): to try the script, not to publish
#   --keep-going        run the suites even when the doctor failed (the report says so)
# Exit status: the doctor's (0 validated, 1 a reader failed, 3 only the estimate), or 4 when
# a run failed. Environment: WATTBENCH (default `wattbench`), PYTHON (default `python3`).
set -uo pipefail

usage() { sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

[ $# -ge 1 ] || usage
PROFILE=$1; shift
case "$PROFILE" in orin|coral|rapl) ;; -h|--help) usage ;; *) echo "error: unknown device kind '$PROFILE' (orin, coral or rapl)" >&2; exit 2 ;; esac

WATTBENCH=${WATTBENCH:-wattbench}
PYTHON=${PYTHON:-python3}
DB=${WATTBENCH_DB:-}
OUT=""
DEVICE=$(hostname)
PLUG=""
PLUG_KIND=shelly
CORAL_MODEL=""
QUICK=0
KEEP_GOING=0
while [ $# -gt 0 ]; do
    case "$1" in
        --db) DB=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --device-name) DEVICE=$2; shift 2 ;;
        --plug) PLUG=$2; shift 2 ;;
        --plug-kind) PLUG_KIND=$2; shift 2 ;;
        --coral-model) CORAL_MODEL=$2; shift 2 ;;
        --quick) QUICK=1; shift ;;
        --keep-going) KEEP_GOING=1; shift ;;
        -h|--help) usage ;;
        *) echo "error: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
case "$PLUG_KIND" in shelly|tasmota) ;; *) echo "error: --plug-kind is shelly or tasmota" >&2; exit 2 ;; esac
if [ "$PROFILE" = coral ] && [ -z "$PLUG" ]; then
    echo "error: a Coral USB accelerator has no power sensor of its own: pass --plug URL of the plug feeding its host" >&2
    exit 2
fi

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-validation-$DEVICE-$STAMP}
mkdir -p "$OUT/runs"
DB_ARGS=()
[ -n "$DB" ] && DB_ARGS=(--db "$DB")

# Readers: the device's own sensor first (the headline), then the plug.
POWER_OPTS=()
case "$PROFILE" in
    orin) READERS=jetson ;;
    rapl) READERS=rapl ;;
    coral) READERS=$PLUG_KIND ;;
esac
if [ -n "$PLUG" ]; then
    [ "$READERS" = "$PLUG_KIND" ] || READERS="$READERS,$PLUG_KIND"
    POWER_OPTS=(--power-opt "$PLUG_KIND.url=$PLUG")
fi

# One fixed run per runtime: adapter|extra options.
RUNS=()
case "$PROFILE" in
    orin) RUNS=("tensorrt|--device cuda --precision fp16" "onnxruntime|") ;;
    rapl) RUNS=("onnxruntime|" "openvino|") ;;
    coral)
        [ -n "$CORAL_MODEL" ] && RUNS+=("coral|--device edgetpu:usb --precision int8 --model $CORAL_MODEL")
        RUNS+=("litert|" "onnxruntime|")
        ;;
esac
if [ "$QUICK" = 1 ]; then
    FIXED=(--duration 3 --repeats 1 --warmup 1 --idle-s 2 --min-queries 20)
else
    FIXED=(--duration 10 --repeats 3 --warmup 2 --idle-s 5 --min-queries 100)
fi
# A plug refreshes about once a second: each window must last ten of its updates.
[ -n "$PLUG" ] && [ "$QUICK" = 0 ] && FIXED=(--duration 12 --repeats 3 --warmup 2 --idle-s 10 --min-queries 100)

log() { echo "validate: $*" >&2; }

log "device $DEVICE ($PROFILE): readers $READERS; report in $OUT"
"$WATTBENCH" power list --json "${POWER_OPTS[@]}" > "$OUT/power-list.json" 2> "$OUT/power-list.log"
"$WATTBENCH" adapters --json > "$OUT/adapters.json" 2> "$OUT/adapters.log"

log "doctor (idle, a CPU load step, recovery; about 15 s)"
"$WATTBENCH" doctor --power "$READERS" "${POWER_OPTS[@]}" --device-name "$DEVICE" \
    --json --report "$OUT/doctor.md" --save "${DB_ARGS[@]}" \
    > "$OUT/doctor.json" 2> "$OUT/doctor.log"
DOCTOR_RC=$?
log "doctor exit $DOCTOR_RC"
if [ "$DOCTOR_RC" -ne 0 ] && [ "$KEEP_GOING" = 0 ]; then
    log "the doctor did not validate the device: fix what $OUT/doctor.md says, or pass --keep-going"
fi

RUN_RC=0
if [ "$DOCTOR_RC" -eq 0 ] || [ "$KEEP_GOING" = 1 ]; then
    for spec in "${RUNS[@]}"; do
        adapter=${spec%%|*}
        extra=${spec#*|}
        available=$("$PYTHON" -c 'import json,sys
rows = json.load(open(sys.argv[1]))
print(next((str(r["available"]).lower() for r in rows if r["name"] == sys.argv[2]), "false"))' \
            "$OUT/adapters.json" "$adapter")
        if [ "$available" != true ]; then
            log "skip $adapter: not available here (see $OUT/adapters.json)"
            echo "{\"adapter\": \"$adapter\", \"skipped\": \"not available here\"}" > "$OUT/runs/$adapter.skipped.json"
            continue
        fi
        log "run mobilenet_v2 on $adapter ${extra}"
        # shellcheck disable=SC2086  # extra is a list of options
        "$WATTBENCH" run --suite mobilenet_v2 --adapter "$adapter" $extra \
            --scenario single-stream --power "$READERS" "${POWER_OPTS[@]}" "${FIXED[@]}" \
            --device-name "$DEVICE" --label "validation:$STAMP" "${DB_ARGS[@]}" --json \
            > "$OUT/runs/$adapter.json" 2> "$OUT/runs/$adapter.log"
        rc=$?
        if [ $rc -ne 0 ]; then
            log "run on $adapter failed (exit $rc): see $OUT/runs/$adapter.log"
            RUN_RC=4
        fi
    done
fi
"$WATTBENCH" leaderboard --format json "${DB_ARGS[@]}" > "$OUT/leaderboard.json" 2> "$OUT/leaderboard.log"

# The report: the doctor's, then one line per run with its leaderboard row.
"$PYTHON" - "$OUT" "$DOCTOR_RC" "$RUN_RC" "$PROFILE" <<'EOF'
import json, pathlib, sys

out, doctor_rc, run_rc, profile = pathlib.Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

def load(p):
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None

doctor = load(out / "doctor.json") or {}
board = {r["run_id"]: r for r in (load(out / "leaderboard.json") or [])}
runs = []
for f in sorted((out / "runs").glob("*.json")):
    data = load(f) or {}
    if "skipped" in data:
        runs.append({"adapter": data["adapter"], "skipped": data["skipped"]})
        continue
    if not data.get("run_id"):
        runs.append({"adapter": f.stem, "failed": f"no result: see runs/{f.stem}.log"})
        continue
    head = (data.get("energy") or [{}])[0]
    row = board.get(data["run_id"], {})
    runs.append({
        "adapter": f.stem,
        "run_id": data["run_id"],
        "valid": data.get("valid"),
        "invalid_reasons": data.get("invalid_reasons", []),
        "energy": f"{head.get('method')}/{head.get('scope')}",
        "inferences_per_joule": head.get("inferences_per_joule"),
        "joules_per_inference": head.get("joules_per_inference"),
        "uncertainty_pct": (100 * head["uncertainty_j"] / head["gross_j"])
        if head.get("uncertainty_j") is not None and head.get("gross_j") else None,
        "latency_p90_ms": (data.get("latency") or {}).get("p90_ms"),
        "throughput_ips": data.get("throughput_ips"),
        "rank": row.get("rank"),
        "rank_group": row.get("rank_group"),
        "device_validation": row.get("device_validation"),
        "device_validation_at": row.get("device_validation_at"),
    })
status = "validated" if doctor_rc == 0 and run_rc == 0 else "NOT validated"
report = {"device_kind": profile, "status": status, "doctor_exit": doctor_rc, "doctor": doctor, "runs": runs}
(out / "report.json").write_text(json.dumps(report, indent=2) + "\n")

def num(v, d=4):
    return "—" if v is None else f"{v:.{d}g}"

def pct(v):
    return "—" if v is None else f"{v:.1f}"

md = [f"# Device validation: {doctor.get('device_name', '?')} ({profile})", "",
      f"**{status}** — doctor exit {doctor_rc} ({doctor.get('outcome', 'no report')}); "
      f"runs {'ok' if run_rc == 0 else 'with failures'}.", "",
      "| runtime | run | valid | energy | inf/J | J/inf | ± % | p90 ms | inf/s | rank | device |",
      "|---|---|---|---|---|---|---|---|---|---|---|"]
for r in runs:
    if "skipped" in r or "failed" in r:
        md.append(f"| {r['adapter']} | {r.get('skipped') or r.get('failed')} |  |  |  |  |  |  |  |  |  |")
        continue
    md.append(f"| {r['adapter']} | {r['run_id'][:8]} | {r['valid']} | {r['energy']} | "
              f"{num(r['inferences_per_joule'])} | {num(r['joules_per_inference'])} | "
              f"{pct(r['uncertainty_pct'])} | {num(r['latency_p90_ms'])} | "
              f"{num(r['throughput_ips'])} | {r['rank'] or '—'} | {r['device_validation'] or 'not validated'} |")
doctor_md = out / "doctor.md"
md += ["", doctor_md.read_text() if doctor_md.exists() else "(no doctor report)"]
(out / "report.md").write_text("\n".join(md) + "\n")
print(f"validate: report in {out / 'report.md'} and {out / 'report.json'}: {status}", file=sys.stderr)
EOF

[ "$DOCTOR_RC" -ne 0 ] && exit "$DOCTOR_RC"
exit "$RUN_RC"
