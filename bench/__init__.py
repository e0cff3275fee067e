"""Benchmarks (`make bench`): each figure side by side with its baseline, measured in the same run."""
