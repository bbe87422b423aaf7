"""Benchmarks (`make bench`): convergence, AWS API cost, drift sweeps, idle cost, memory and CPU."""
