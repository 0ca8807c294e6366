"""Network bytes, the network energy model and the hybrid edge/cloud mode."""
