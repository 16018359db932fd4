"""The fidelity scenarios of benchmarks/sim_fidelity.py."""
