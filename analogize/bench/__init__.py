"""The built-in benchmark and demo: methods learned and scored on the data layer's photos and edits
(analogize/data)."""
