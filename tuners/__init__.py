"""Device-setting tuners (``wattbench.tuners`` entry points); see :mod:`wattbench.core.tuner`."""
