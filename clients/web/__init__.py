"""The agent panel and supervisor pages: plain HTML, CSS and JavaScript, no build step, no CDN."""

from pathlib import Path

WEB_DIR = Path(__file__).parent
