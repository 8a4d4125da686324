"""Data: the procedural toy talking-face world, real talking-face video preprocessed into shards (faces,
preprocess, shards), and stage-1 face pairs from either (face_pairs)."""
