"""Tooling for whoever builds and runs Calmline, apart from what users touch: the bench, the evaluation, the
renderers of the test calls, the real-speech downloader and a local server helper."""
