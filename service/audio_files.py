"""Each call's audio, per role, appended to files as it arrives; read back as one WAV."""

from __future__ import annotations

import io
import os
import wave
from pathlib import Path

import numpy as np

from models.codecs import to_int16
from models.resample import MODEL_RATE

ROLE_ORDER = ("caller", "agent")  # WAV channels: caller left, agent right


class CallAudio:
    """Open files of one call; appends are buffered by the OS and flushed about once a second."""

    def __init__(self, directory: Path, roles: list[str]):
        directory.mkdir(parents=True, exist_ok=True)
        self._paths = {role: directory / f"{role}.pcm" for role in roles}
        self._files = {role: open(path, "ab") for role, path in self._paths.items()}

    def append(self, role: str, samples: np.ndarray) -> None:
        self._files[role].write(to_int16(samples).tobytes())

    def skip(self, role: str, samples: int) -> None:
        """Time with no audio: the file grows by a sparse hole (zeros when read), nothing is written."""
        f = self._files[role]
        f.flush()
        f.truncate(os.fstat(f.fileno()).st_size + 2 * samples)  # appends go on after the hole

    def silence(self, role: str, start: float, end: float) -> None:
        """Overwrite the span [start, end) seconds of a role's recording with zeros (redacted speech)."""
        self._files[role].flush()
        with open(self._paths[role], "r+b") as f:
            size = f.seek(0, os.SEEK_END)
            first = max(0, int(start * MODEL_RATE)) * 2
            last = min(size, int(end * MODEL_RATE) * 2)
            if last > first:
                f.seek(first)
                f.write(bytes(last - first))

    def flush(self) -> None:
        for f in self._files.values():
            f.flush()

    def close(self) -> None:
        for f in self._files.values():
            f.close()


class AudioFiles:
    def __init__(self, data_dir: Path):
        self.root = data_dir / "audio"

    def open(self, call_id: str, roles: list[str]) -> CallAudio:
        return CallAudio(self.root / call_id, roles)

    def wav_path(self, call_id: str) -> Path:
        return self.root / call_id / "call.wav"

    def finalize(self, call_id: str) -> Path | None:
        """At the end of a call: the WAV that replay serves (with byte ranges, so the player can seek)."""
        data = self.wav(call_id)
        if data is None:
            return None
        path = self.wav_path(call_id)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        return path

    def wav(self, call_id: str) -> bytes | None:
        directory = self.root / call_id
        tracks = {role: np.fromfile(directory / f"{role}.pcm", dtype="<i2")
                  for role in ROLE_ORDER if (directory / f"{role}.pcm").exists()}
        if not tracks:
            return None
        length = max(len(t) for t in tracks.values())
        stereo = np.zeros((length, 2), dtype="<i2")
        for channel, role in enumerate(ROLE_ORDER):
            if role in tracks:
                stereo[: len(tracks[role]), channel] = tracks[role]
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(2)
            w.setsampwidth(2)
            w.setframerate(MODEL_RATE)
            w.writeframes(stereo.tobytes())
        return buf.getvalue()
