"""Each call's audio, per role, appended to files as it arrives; served as one WAV streamed from disk.

While a call runs (and after a crash) its recording is the raw ``caller.pcm`` / ``agent.pcm``
files; a request reads them chunk by chunk behind a computed WAV header, writing nothing. At the
end of the call the WAV is written once, under the call's lock, and the ``.pcm`` files removed.
Memory per request is one chunk, whatever the length of the call.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import zlib
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

from models.codecs import to_int16
from models.resample import MODEL_RATE
from models.wavfile import pcm16_header

log = logging.getLogger("calmline.audio")

ROLE_ORDER = ("caller", "agent")  # WAV channels: caller left, agent right
CHANNELS = len(ROLE_ORDER)
FRAME_BYTES = 2 * CHANNELS  # one int16 sample per channel
HEADER_BYTES = 44
CHUNK_FRAMES = 32768  # 128 KiB of stereo WAV per read


class RecordingFailed(OSError):
    """Writing the recording failed (disk full, I/O error): the call cannot go on being recorded."""


class CallAudio:
    """Open files of one call; appends are buffered and flushed twice a second (AUDIO_FLUSH_INTERVAL).

    The first write error (a full disk) is kept and raised as ``RecordingFailed``; from then on
    nothing more is written, so ending the call does not fail again on the same error.
    """

    def __init__(self, directory: Path, roles: list[str]):
        directory.mkdir(parents=True, exist_ok=True)
        self._paths = {role: directory / f"{role}.pcm" for role in roles}
        self._files = {role: open(path, "ab") for role, path in self._paths.items()}
        self.failed: OSError | None = None

    def append(self, role: str, samples: np.ndarray) -> None:
        if self.failed is None:
            self._guard(lambda: self._files[role].write(to_int16(samples).tobytes()))
        if self.failed is not None:
            raise RecordingFailed(str(self.failed))

    def skip(self, role: str, samples: int) -> None:
        """Time with no audio: the file grows by a sparse hole (zeros when read), nothing is written."""
        f = self._files[role]
        if self.failed is None:
            # Appends go on after the hole.
            self._guard(lambda: (f.flush(), f.truncate(os.fstat(f.fileno()).st_size + 2 * samples)))
        if self.failed is not None:
            raise RecordingFailed(str(self.failed))

    def silence(self, role: str, start: float, end: float) -> None:
        """Overwrite the span [start, end) seconds of a role's recording with zeros (redacted speech).

        A write error is kept in ``failed`` (the call's next frame ends it), not raised: this runs
        as a final goes out, away from the stream."""
        def overwrite():
            self._files[role].flush()
            with open(self._paths[role], "r+b") as f:
                size = f.seek(0, os.SEEK_END)
                first = max(0, int(start * MODEL_RATE)) * 2
                last = min(size, int(end * MODEL_RATE) * 2)
                if last > first:
                    f.seek(first)
                    f.write(bytes(last - first))

        if self.failed is None:
            self._guard(overwrite)

    def flush(self) -> None:
        for f in self._files.values():
            if self.failed is None:
                self._guard(f.flush)
        if self.failed is not None:
            raise RecordingFailed(str(self.failed))

    def close(self) -> None:
        for f in self._files.values():
            try:
                f.close()
            except OSError as exc:  # the buffer could not be written: what reached the disk stays
                self.failed = self.failed or exc

    def _guard(self, write) -> None:
        try:
            write()
        except OSError as exc:
            self.failed = exc
            for f in self._files.values():
                try:  # closing drops what the buffer still holds, so nothing tries to write it again
                    f.close()
                except OSError:
                    pass


class Recording:
    """A recording as WAV bytes: its size, and any byte range read chunk by chunk from disk."""

    def __init__(self, wav: BinaryIO | None = None, tracks: dict[str, BinaryIO] | None = None):
        self._wav = wav
        self._tracks = tracks or {}
        if wav is not None:
            self.size = os.fstat(wav.fileno()).st_size
            self._lengths: dict[str, int] = {}
        else:
            # The length is taken now: samples appended while the response streams are not part of it.
            self._lengths = {role: os.fstat(f.fileno()).st_size // 2 for role, f in self._tracks.items()}
            self.frames = max(self._lengths.values())
            self.size = HEADER_BYTES + self.frames * FRAME_BYTES
            self._header = wav_header(self.frames)

    def chunks(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Bytes ``start`` to ``end`` (exclusive) of the WAV; the files are closed when done."""
        end = self.size if end is None else min(end, self.size)
        try:
            if self._wav is not None:
                self._wav.seek(start)
                while start < end:
                    data = self._wav.read(min(CHUNK_FRAMES * FRAME_BYTES, end - start))
                    if not data:
                        return
                    start += len(data)
                    yield data
                return
            if start < HEADER_BYTES:
                yield self._header[start:min(end, HEADER_BYTES)]
                start = HEADER_BYTES
            while start < end:
                first = (start - HEADER_BYTES) // FRAME_BYTES
                last = min(first + CHUNK_FRAMES, (end - HEADER_BYTES + FRAME_BYTES - 1) // FRAME_BYTES)
                data = self._interleave(first, last)
                skip = (start - HEADER_BYTES) - first * FRAME_BYTES
                data = data[skip: skip + end - start]
                start += len(data)
                yield data
        finally:
            self.close()

    def _interleave(self, first: int, last: int) -> bytes:
        stereo = np.zeros((last - first, CHANNELS), dtype="<i2")
        for channel, role in enumerate(ROLE_ORDER):
            f = self._tracks.get(role)
            if f is None or first >= self._lengths[role]:
                continue
            count = min(last, self._lengths[role]) - first
            f.seek(first * 2)
            samples = np.frombuffer(f.read(count * 2), dtype="<i2")
            stereo[: len(samples), channel] = samples
        return stereo.tobytes()

    def close(self) -> None:
        for f in [self._wav, *self._tracks.values()]:
            if f is not None:
                f.close()


def wav_header(frames: int) -> bytes:
    return pcm16_header(frames, CHANNELS, MODEL_RATE)


class AudioFiles:
    def __init__(self, data_dir: Path):
        self.root = data_dir / "audio"
        # Striped locks: one call always maps to the same lock, and their number stays fixed.
        self._locks = [threading.Lock() for _ in range(64)]

    def open(self, call_id: str, roles: list[str]) -> CallAudio:
        return CallAudio(self.root / call_id, roles)

    def wav_path(self, call_id: str) -> Path:
        return self.root / call_id / "call.wav"

    def recording(self, call_id: str) -> Recording | None:
        """The call's recording as it is now (final WAV, or the raw tracks so far), or None when there is none.

        Files are opened here, so a finalize that removes the tracks meanwhile does not cut the response.
        """
        with self._lock(call_id):
            try:
                return Recording(wav=open(self.wav_path(call_id), "rb"))
            except FileNotFoundError:
                return self._tracks(call_id)

    def finalize(self, call_id: str) -> Path | None:
        """Once, at the end of a call: write the WAV from the tracks, then remove them.

        On a write error (a full disk) the tracks stay and keep being served; nothing is lost.
        """
        path = self.wav_path(call_id)
        with self._lock(call_id):
            if path.exists():
                return path
            recording = self._tracks(call_id)
            if recording is None:
                return None
            tmp = None
            try:
                with tempfile.NamedTemporaryFile(dir=path.parent, prefix="call.", suffix=".part", delete=False) as out:
                    tmp = Path(out.name)
                    for chunk in recording.chunks():
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, path)
            except OSError as exc:
                log.warning("recording not finalized, its tracks are kept", extra={"call_id": call_id, "error": str(exc)})
                if tmp is not None:
                    tmp.unlink(missing_ok=True)
                return None
            finally:
                recording.close()
            for role in ROLE_ORDER:
                (path.parent / f"{role}.pcm").unlink(missing_ok=True)
            return path

    def _tracks(self, call_id: str) -> Recording | None:
        tracks = {}
        for role in ROLE_ORDER:
            try:
                tracks[role] = open(self.root / call_id / f"{role}.pcm", "rb")
            except FileNotFoundError:
                pass
        return Recording(tracks=tracks) if tracks else None

    def delete(self, call_id: str) -> None:
        with self._lock(call_id):
            shutil.rmtree(self.root / call_id, ignore_errors=True)

    def _lock(self, call_id: str) -> threading.Lock:
        return self._locks[zlib.crc32(call_id.encode()) % len(self._locks)]
