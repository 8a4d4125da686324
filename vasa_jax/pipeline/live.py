"""Latency as a live source sees it: speech delivered at the wall-clock pace it is spoken, every frame timed.

    report = live_latency(pipeline, portrait, waveform, online=True)   # Pipeline.stream options
    report.first_frame_seconds, report.p50_seconds, report.p95_seconds, report.keeps_up

The audio goes to Pipeline.stream in chunks of chunk_seconds, each handed over no earlier than the moment its
last sample would have been spoken (the stream asks for the next chunk when it has nothing else to do, as a
loop reading a microphone would). The speech of frame t has arrived once the audio up to the end of frame t
has ((t + 1) * 40 ms after the start); its latency is from then to the moment the frame is on the host. When
the stream is slower than speech, chunks are handed over late and the latencies grow: keeps_up says whether
they did (their trend over the clip, and the frames per second the compute managed while not waiting).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from vasa_jax.audio.features import FPS, SAMPLES_PER_FRAME
from vasa_jax.io import SAMPLE_RATE

CHUNK_SECONDS = 0.02  # a microphone's typical buffer
BACKLOG_TOLERANCE = 0.01  # seconds of latency gained per second of speech still counted as keeping up


@dataclasses.dataclass
class LiveReport:
    latencies: np.ndarray  # [T] seconds from each frame's speech arriving to the frame being ready
    wall_seconds: float  # from the first sample's moment to the last frame
    waiting_seconds: float  # of which the stream waited for speech to arrive
    chunk_seconds: float

    @property
    def frames(self) -> int:
        return len(self.latencies)

    @property
    def first_frame_seconds(self) -> float:
        return float(self.latencies[0])

    @property
    def p50_seconds(self) -> float:
        return float(np.percentile(self.latencies, 50))

    @property
    def p95_seconds(self) -> float:
        return float(np.percentile(self.latencies, 95))

    @property
    def compute_frames_per_second(self) -> float:
        """Frames per second of time not spent waiting for speech: >= 25 keeps up with real time."""
        busy = self.wall_seconds - self.waiting_seconds
        return self.frames / busy if busy > 0 else float("inf")

    @property
    def backlog_seconds_per_second(self) -> float:
        """The latencies' trend: seconds of latency gained per second of speech (0 when keeping up)."""
        if self.frames < 2:
            return 0.0
        t = np.arange(self.frames) / FPS
        return float(np.polyfit(t, self.latencies, 1)[0])

    @property
    def keeps_up(self) -> bool:
        return self.backlog_seconds_per_second <= BACKLOG_TOLERANCE

    def summary(self) -> dict:
        return {"frames": self.frames, "first_frame_seconds": self.first_frame_seconds,
                "p50_seconds": self.p50_seconds, "p95_seconds": self.p95_seconds,
                "max_seconds": float(self.latencies.max()),
                "frames_per_second": self.compute_frames_per_second,
                "wall_frames_per_second": self.frames / self.wall_seconds,
                "backlog_seconds_per_second": self.backlog_seconds_per_second, "keeps_up": self.keeps_up,
                "chunk_seconds": self.chunk_seconds}


class PacedAudio:
    """Chunks of a waveform handed over no earlier than the moment their last sample is spoken (from the first
    chunk taken; paced=False: as fast as they are taken); records when the first was taken (start) and the time
    spent waiting for speech. on_chunk(chunk) is called with each as it is handed over. iter() it once."""

    def __init__(self, waveform: np.ndarray, chunk_seconds: float = CHUNK_SECONDS, *, paced: bool = True,
                 on_chunk=None):
        self.waveform = np.asarray(waveform, np.float32)
        self.step = max(1, int(round(chunk_seconds * SAMPLE_RATE)))
        self.start, self.waited, self.paced, self._on_chunk = None, 0.0, paced, on_chunk

    def __iter__(self):
        self.start = time.perf_counter()
        n = self.waveform.size
        for a in range(0, n, self.step):
            b = min(a + self.step, n)
            wait = self.start + b / SAMPLE_RATE - time.perf_counter()
            if self.paced and wait > 0:
                time.sleep(wait)
                self.waited += wait
            if self._on_chunk is not None:
                self._on_chunk(self.waveform[a:b])
            yield self.waveform[a:b]

    def report(self, ready: list[float], end: float) -> LiveReport:
        """The LiveReport of frames that were ready at the times `ready` (perf_counter seconds, in order)."""
        t = np.arange(len(ready))
        arrived = self.start + np.minimum((t + 1) * SAMPLES_PER_FRAME, self.waveform.size) / SAMPLE_RATE
        return LiveReport(np.asarray(ready) - arrived, end - self.start, self.waited, self.step / SAMPLE_RATE)


def live_latency(pipeline, portrait, waveform: np.ndarray, *, chunk_seconds: float = CHUNK_SECONDS,
                 **options) -> LiveReport:
    """Streams `waveform` through pipeline.stream(portrait, ...) at the pace of speech and times every frame.
    options: Pipeline.stream's."""
    audio = PacedAudio(waveform, chunk_seconds)
    ready = []
    for batch in pipeline.stream(portrait, audio, **options):
        ready.extend([time.perf_counter()] * len(batch))
    return audio.report(ready, time.perf_counter())
