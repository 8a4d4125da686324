"""The recorded upstream-layout test checkpoints, kept as plain numpy archives and laid out as upstream saves
them (torch.save pickles, the template pickle) by the tests themselves, in a temporary folder.

    folder = unpack(DATA / "liveportrait_small", tmp)   # base_models/*.pth, retargeting_models/*.pth
    folder = unpack(DATA / "joyvasa_small", tmp)        # motion_generator/*.pt, motion_template/*.pkl, hubert/

pack(folder) turns a folder of such files (what tests/reference/*_parity.py --record writes) into the archive:
PACKED holds every tensor under "relative/path.pth::key" (a nested state dict's inner keys joined by '/'), the
JoyVASA checkpoint's args and iteration in ARGS (json; args.data_root, a pathlib path upstream's parser makes,
marked as such), the template's arrays under "relative/path.pkl::name". No pickle is ever committed.
"""

import argparse
import json
import pathlib
import pickle
import shutil

import numpy as np

PACKED = "weights.npz"
ARGS = "args.json"
PICKLED = (".pth", ".pt", ".pkl")


def pack(folder) -> None:
    """Replaces the folder's .pth / .pt / .pkl files by PACKED (and ARGS)."""
    import torch

    folder = pathlib.Path(folder)
    arrays, args = {}, {}
    for file in sorted(p for p in folder.rglob("*") if p.suffix in PICKLED):
        relative = file.relative_to(folder).as_posix()
        if file.suffix == ".pkl":
            with open(file, "rb") as f:  # our own recording, read back once to pack it
                arrays.update({f"{relative}::{k}": np.asarray(v) for k, v in pickle.load(f).items()})
        else:
            with torch.serialization.safe_globals([argparse.Namespace, pathlib.PosixPath]):
                saved = torch.load(file, weights_only=True)
            if "model" in saved and "args" in saved:
                args[relative] = {"iter": saved.get("iter"), "args": {
                    k: {"path": str(v)} if isinstance(v, pathlib.PurePath) else v
                    for k, v in vars(saved["args"]).items()}}
                saved = saved["model"]
            for key, value in saved.items():
                if isinstance(value, dict):
                    arrays.update({f"{relative}::{key}/{k}": v.numpy() for k, v in value.items()})
                else:
                    arrays[f"{relative}::{key}"] = value.numpy()
        file.unlink()
    np.savez_compressed(folder / PACKED, **arrays)
    if args:
        (folder / ARGS).write_text(json.dumps(args, indent=1) + "\n")
    for empty in sorted((p for p in folder.rglob("*") if p.is_dir()), reverse=True):
        if not any(empty.iterdir()):
            empty.rmdir()


def unpack(packed, out) -> pathlib.Path:
    """Lays the archive out as upstream's files in `out` (plus any other file beside it, e.g. hubert/config.json)."""
    import torch

    packed, out = pathlib.Path(packed), pathlib.Path(out)
    shutil.copytree(packed, out, ignore=shutil.ignore_patterns(PACKED, ARGS, "reference.npz"), dirs_exist_ok=True)
    files: dict[str, dict] = {}
    with np.load(packed / PACKED) as archive:
        for name in archive.files:
            relative, key = name.split("::")
            outer, _, inner = key.partition("/")
            target = files.setdefault(relative, {})
            value = archive[name]
            if inner:
                target.setdefault(outer, {})[inner] = value
            else:
                target[outer] = value
    args = json.loads((packed / ARGS).read_text()) if (packed / ARGS).is_file() else {}
    for relative, content in files.items():
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".pkl":
            with open(path, "wb") as f:
                pickle.dump(content, f)
            continue
        tensors = {k: {i: torch.from_numpy(v) for i, v in d.items()} if isinstance(d, dict) else torch.from_numpy(d)
                   for k, d in content.items()}
        if relative in args:
            namespace = argparse.Namespace(**{
                k: pathlib.Path(v["path"]) if isinstance(v, dict) and "path" in v else v
                for k, v in args[relative]["args"].items()})
            tensors = {"args": namespace, "model": tensors, "iter": args[relative]["iter"]}
        torch.save(tensors, path)
    return out
