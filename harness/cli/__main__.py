"""``python -m wattbench.harness.cli``."""

from wattbench.harness.cli import main

main()
