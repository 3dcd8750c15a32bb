"""Benchmarks: bgplab's speaker side by side with FRR, BIRD, GoBGP and ExaBGP (see bench/README.md)."""
