"""The one WAV module: reads and writes WAV files (PCM 8/16/32-bit, G.711 mu-law and A-law, as float32 frames x
channels), and the 16-bit PCM header the server streams recordings under."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from models import codecs

PCM, ALAW, MULAW, EXTENSIBLE = 1, 6, 7, 0xFFFE
_PCM_DTYPES = {1: np.uint8, 2: np.dtype("<i2"), 4: np.dtype("<i4")}


def read_wav(path: str | Path | bytes) -> tuple[np.ndarray, int]:
    """A WAV file, or its bytes (a recording fetched over HTTP), as float32 frames x channels and its rate."""
    raw = path if isinstance(path, bytes) else Path(path).read_bytes()
    path = "WAV bytes" if isinstance(path, bytes) else path
    if raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a WAV file")
    fmt = data = None
    pos = 12
    while pos + 8 <= len(raw):
        cid, size = raw[pos:pos + 4], struct.unpack("<I", raw[pos + 4:pos + 8])[0]
        body = raw[pos + 8:pos + 8 + size]
        if cid == b"fmt ":
            fmt = body
        elif cid == b"data":
            data = body
        pos += 8 + size + (size & 1)
    if fmt is None or data is None:
        raise ValueError(f"{path}: WAV file without fmt or data chunk")
    tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", fmt[:16])
    if tag == EXTENSIBLE and len(fmt) >= 26:
        tag = struct.unpack("<H", fmt[24:26])[0]
    if channels not in (1, 2):
        raise ValueError(f"{path}: {channels} channels; a call is mono or stereo (caller left, agent right)")
    if tag in (MULAW, ALAW) and bits == 8:
        samples = codecs.to_float(codecs.decode("mulaw" if tag == MULAW else "alaw", data))
    elif tag == PCM and bits // 8 in _PCM_DTYPES:
        width = bits // 8
        ints = np.frombuffer(data[: len(data) // width * width], dtype=_PCM_DTYPES[width]).astype(np.float32)
        samples = (ints - 128) / 128 if width == 1 else ints / float(2 ** (bits - 1))
    else:
        raise ValueError(f"{path}: WAV format {tag} with {bits}-bit samples is not supported "
                         "(use PCM 8/16/32-bit, mu-law or A-law)")
    samples = samples[: len(samples) // channels * channels]
    return samples.reshape(-1, channels).astype(np.float32), rate


def pcm16_header(frames: int, channels: int, rate: int) -> bytes:
    """The header of a 16-bit PCM WAV of ``frames`` frames, the sizes capped at 4 GiB (a header written before
    the data's length is known, as a recording streamed while the call goes on, may say less than follows)."""
    data = frames * 2 * channels
    return (b"RIFF" + struct.pack("<I", min(36 + data, 2**32 - 1)) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, PCM, channels, rate, rate * 2 * channels, 2 * channels, 16)
            + b"data" + struct.pack("<I", min(data, 2**32 - 1)))


def write_wav(path: str | Path, audio: np.ndarray, rate: int, encoding: str = "pcm16") -> None:
    """``audio``: float32 frames x channels. ``encoding``: pcm16, mulaw or alaw."""
    audio = audio.reshape(len(audio), -1)
    data = codecs.encode(encoding, codecs.to_int16(audio.reshape(-1)))
    width = codecs.SAMPLE_WIDTH[encoding]
    tag = {"pcm16": PCM, "mulaw": MULAW, "alaw": ALAW}[encoding]
    channels = audio.shape[1]
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * width * channels, width * channels, 8 * width)
    chunks = [(b"fmt ", fmt + (b"\x00\x00" if tag != PCM else b""))]
    if tag != PCM:
        chunks.append((b"fact", struct.pack("<I", len(audio))))
    chunks.append((b"data", data + (b"\x00" if len(data) & 1 else b"")))
    body = b"WAVE" + b"".join(cid + struct.pack("<I", len(c) - (1 if cid == b"data" and len(data) & 1 else 0)) + c
                              for cid, c in chunks)
    Path(path).write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
