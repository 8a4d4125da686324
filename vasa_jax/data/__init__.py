"""Data: the procedural toy talking-face world, stage-1 face pairs (face_pairs), and (later) preprocessed
real-video shards."""
