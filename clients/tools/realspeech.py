"""Real speech with known words, from Debian packages: Asterisk's telephone prompts and pocketsphinx's LibriVox clips.

Installed on first use (apt-get, as root), never committed. Used by the bench and the
accuracy tests.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.wavfile import read_wav
from models.resample import resample

PACKAGES = ("asterisk-core-sounds-en-wav", "asterisk-core-sounds-en", "pocketsphinx-testdata")
ASTERISK = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
ASTERISK_TEXT = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")


@dataclass(frozen=True)
class Clip:
    name: str
    text: str
    audio: np.ndarray  # 16 kHz float32
    rate: int  # the recording's own rate

    @property
    def seconds(self) -> float:
        return len(self.audio) / 16000


def available() -> bool:
    return ASTERISK_TEXT.exists() and LIBRIVOX.exists() and ASTERISK.exists()


def ensure_installed() -> None:
    if available():
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise RuntimeError(f"real speech needs the Debian packages {' '.join(PACKAGES)}: "
                           f"apt-get install {' '.join(PACKAGES)}")
    print(f"installing {' '.join(PACKAGES)} …", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "install", "-y", "-qq", *PACKAGES], check=True, env=env, stdout=subprocess.DEVNULL)


def clips(limit: int | None = None, min_words: int = 4, max_seconds: float = 20.0) -> list[Clip]:
    """Asterisk prompts (8 kHz telephone speech) with at least ``min_words`` words, then the LibriVox clips."""
    ensure_installed()
    out = []
    for line in gzip.open(ASTERISK_TEXT, "rt", errors="replace"):
        m = re.match(r"^([\w/-]+):\s*(.+)$", line.strip())
        if not m or len(m.group(2).split()) < min_words or re.search(r"[\[\(<]", m.group(2)):
            continue
        path = ASTERISK / f"{m.group(1)}.wav"
        if not path.exists():
            continue
        audio, rate = read_wav(path)
        if len(audio) / rate <= max_seconds:
            out.append(Clip(m.group(1), m.group(2), resample(audio[:, 0], rate), rate))
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        m = re.match(r"<s> (.*) </s> \((.*)\)", line.strip())
        if m:
            audio, rate = read_wav(LIBRIVOX / f"{m.group(2)}.wav")
            out.append(Clip(m.group(2), m.group(1), resample(audio[:, 0], rate), rate))
    return out[:limit] if limit else out


def make_call(pool: list[Clip], seed: int, seconds: float = 60.0, rate: int = 8000) -> tuple[np.ndarray, list[dict]]:
    """A stereo call (caller left, agent right) of clips taking turns, with the gold of each turn."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pool))
    parts, pieces, cursor, speaker = [], [], 0.6, 0
    for i in order:
        clip = pool[int(i)]
        if cursor + clip.seconds > seconds:
            continue
        pieces.append((cursor, speaker, clip))
        parts.append({"speaker": ("caller", "agent")[speaker], "text": clip.text, "start": round(cursor, 3),
                      "end": round(cursor + clip.seconds, 3)})
        cursor += clip.seconds + float(rng.uniform(0.7, 1.4))
        speaker = 1 - speaker
    total = cursor + 1.0
    mix = np.zeros((int(total * 16000), 2), dtype=np.float32)
    for start, channel, clip in pieces:
        at = int(start * 16000)
        mix[at: at + len(clip.audio), channel] += clip.audio
    return resample_stereo(mix, rate), parts


def resample_stereo(mix: np.ndarray, rate: int) -> np.ndarray:
    return np.stack([resample(mix[:, c], 16000, rate) for c in range(mix.shape[1])], axis=1)
