#!/usr/bin/env bash
# mypy on the package as it is imported (wattbench.*). The top-level folders are
# mapped into `wattbench` by setuptools' package-dir, which mypy cannot follow
# through an editable install, so mirror that mapping with symlinks.
set -euo pipefail
cd "$(dirname "$0")/.."
root=build/typecheck/wattbench
rm -rf build/typecheck && mkdir -p "$root"
for d in core adapters suites power harness results_db analysis dashboard tuners fleet; do ln -s "../../../$d" "$root/$d"; done
cd build/typecheck && ../../.venv/bin/mypy --config-file ../../pyproject.toml -p wattbench
