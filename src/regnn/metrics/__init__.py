"""The official REACT metrics (exact, batched, compiled DTW), baselines, and the per-split summary."""
