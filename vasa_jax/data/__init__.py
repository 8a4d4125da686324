"""Data: the procedural toy talking-face world, and (later) preprocessed real-video shards."""
