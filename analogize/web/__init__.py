"""The web app: `analogize serve` (app.py) over server-side jobs (jobs.py)."""
