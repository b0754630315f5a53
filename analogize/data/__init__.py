"""Data with exact ground truth, below the benchmark and the methods that train on it (loc):
real photos (corpus.py) and procedural edits and real filters applied to them (edits.py)."""
