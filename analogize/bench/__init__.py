"""The built-in benchmark: real photos, procedural edits with exact ground truth, and the runner."""
