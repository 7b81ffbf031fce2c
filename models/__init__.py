"""Calmline's analysis: audio codecs, voice activity, transcription; no network or storage code."""
