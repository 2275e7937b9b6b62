"""`irestore benchmark`: suites of degraded/clean pairs, the resumable runner over registered
methods, and its reports (Markdown, CSV, JSON, HTML with SVG charts) beside published numbers."""
