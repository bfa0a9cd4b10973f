"""Benchmarks (`make bench`) and the harness the fault tests share: private stacks, users, clips, probes."""
