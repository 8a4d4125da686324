"""Preprocessing on Apache Beam: the local pool's work, spread by any Beam runner (an optional extra).

Orchestration only. The per-video function (preprocess.run_task) and the shard writer (preprocess.write_shard)
are the local pool's own, and the driver (preprocess.preprocess) lists the videos, decides the split and writes
the manifest as it does for the pool, so a dataset is byte-identical whichever runner made it.

Two pipelines: tasks -> run_task (each video's result lands in <output>/work/; the summaries come back as text
files there), then, once every video is done, shard jobs -> write_shard. Both lists travel as text files in
work/ that the pipeline reads, not as data embedded in the job (a million videos would overflow a runner's
job-graph limit), and a Reshuffle after the read spreads them over the workers (without it a runner fuses the
whole map into the read of one small file: one worker). Every worker must see the input and output folders at
the same paths (a shared filesystem: NFS, Filestore, a GCS FUSE mount) and have vasa-jax installed.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import create_runner

from vasa_jax.data import preprocess
from vasa_jax.errors import ConfigError


class _RunTasks(beam.DoFn):
    """preprocess.run_task, with the face models loaded once per DoFn instance (setup), not per video."""

    def __init__(self, settings: preprocess.Settings):
        self.settings = settings
        self.processor = None

    def setup(self):
        self.processor = preprocess.VideoProcessor(self.settings)

    def process(self, task: dict):
        yield preprocess.run_task(self.processor, task)


class BeamRunner:
    """The Beam side of preprocess(): runner is a Beam runner's name, options Beam pipeline options as on a
    command line (--direct_num_workers 2, --project ..., --flink_master ...)."""

    def __init__(self, runner: str, options: Sequence[str] = ()):
        try:
            create_runner(runner)
        except ValueError as e:
            raise ConfigError(f"--runner {runner}: {e}") from None
        self.name = runner
        self.options = [*options, f"--runner={runner}"]

    def _over(self, items: list[dict], work: Path, apply: Callable) -> Path:
        """Runs one pipeline: `items` written to a text file in a fresh folder of work/, read, spread over the
        workers and parsed, then apply(parsed, folder) adds the rest. Returns the folder (the caller removes it)."""
        folder = Path(work) / "beam" / uuid.uuid4().hex[:12]
        folder.mkdir(parents=True)
        (folder / "items.jsonl").write_text("".join(json.dumps(item, sort_keys=True) + "\n" for item in items))
        with beam.Pipeline(options=PipelineOptions(self.options)) as p:
            parsed = (p
                      | "Read" >> beam.io.ReadFromText(str(folder / "items.jsonl"))
                      | "Spread" >> beam.Reshuffle()
                      | "Parse" >> beam.Map(json.loads))
            apply(parsed, folder)
        return folder

    def process_videos(self, tasks: list[dict], settings: preprocess.Settings, work: Path) -> list[dict]:
        """run_task over `tasks`; returns their summaries (in no particular order)."""
        folder = self._over(tasks, work, lambda parsed, folder: (
            parsed
            | "RunTask" >> beam.ParDo(_RunTasks(settings))
            | "Encode" >> beam.Map(json.dumps, sort_keys=True)
            | "WriteSummaries" >> beam.io.WriteToText(str(folder / "summaries"), file_name_suffix=".jsonl")))
        summaries = [json.loads(line) for path in sorted(folder.glob("summaries*.jsonl"))
                     for line in path.read_text().splitlines() if line]
        shutil.rmtree(folder)
        return summaries

    def write_shards(self, jobs: list[dict], work: Path) -> None:
        """write_shard over plan_shards' jobs, one shard per element."""
        if not jobs:
            return
        folder = self._over(jobs, work, lambda parsed, _: parsed | "WriteShard" >> beam.Map(preprocess.write_shard))
        shutil.rmtree(folder)
