"""End-to-end generation: portrait + speech -> talking-face video (the Python API behind sample.py).

    import vasa_jax
    pipeline = vasa_jax.load_pipeline()          # the bundled demo; load_pipeline("DIR") for a pipeline checkpoint
    video = pipeline.generate("portrait.png", "speech.wav", gaze=(0, 0), seed=0)
    pipeline.write("out.mp4", "portrait.png", "speech.wav")

pipeline.py: Pipeline, Video, the controls; checkpoint.py: the pipeline checkpoint and its export
(python -m vasa_jax.pipeline.export); portrait.py: face framing; pose.py: pose sources and motion files.
"""

from vasa_jax.pipeline.checkpoint import PipelineCheckpoint, bundled_demo_dir, export_pipeline, read_pipeline_checkpoint
from vasa_jax.pipeline.pipeline import (Generation, Pipeline, Settings, Video, WriteReport, check_output, fresh_path,
                                        load_pipeline, load_speech, provenance_metadata)
from vasa_jax.pipeline.portrait import NoFaceError, Portrait
from vasa_jax.pipeline.pose import load_motion_file, save_motion

__all__ = ["Generation", "NoFaceError", "Pipeline", "PipelineCheckpoint", "Portrait", "Settings", "Video",
           "WriteReport", "bundled_demo_dir", "check_output", "export_pipeline", "fresh_path", "load_motion_file",
           "load_pipeline", "load_speech", "provenance_metadata", "read_pipeline_checkpoint", "save_motion"]
