"""The command line's files: inputs given as files, folders or globs, decoded as `prepare`
decodes them; outputs written as PNG files named after their inputs, each one whole or not at
all."""

from __future__ import annotations

import glob
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from genmodels.atomic import atomic_path
from genmodels.data.pictures import SUFFIX_LIST, find_images, fit
from genmodels.errors import UserError
from genmodels.serving.images import is_grayscale


@dataclass(frozen=True)
class Job:
    source: Path
    output: Path  # relative to --out: the input's name (its path under a folder) as .png


def _output_name(relative: Path) -> Path:
    return relative.with_suffix(".png")


def expand_inputs(specs: list[str]) -> list[Job]:
    """Every input file: a file as it is named, a folder's image files (its subfolders kept in
    the output names), a glob's matches. A spec that names nothing is a UserError."""
    jobs: list[Job] = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            found = find_images(path)
            if not found:
                raise UserError(f"{spec}: a folder with no image files ({SUFFIX_LIST})")
            jobs += [Job(p, _output_name(p.relative_to(path))) for p in found]
        elif path.exists():
            jobs.append(Job(path, _output_name(Path(path.name))))
        else:
            matches = sorted(Path(m) for m in glob.glob(spec, recursive=True))
            files = [m for m in matches if m.is_file()]
            if not files:
                raise UserError(
                    f"{spec}: no such file or folder, and no file matches it as a glob; "
                    "give image files, folders of images or a quoted glob such as 'photos/*.jpg'"
                )
            jobs += [Job(m, _output_name(Path(m.name))) for m in files]
    return _distinct_outputs(jobs)


def _distinct_outputs(jobs: list[Job]) -> list[Job]:
    """a.jpg and a.png both become a.png: the later ones keep their suffix (a.png.png)."""
    seen: set[Path] = set()
    distinct = []
    for job in jobs:
        output = job.output
        if output in seen:
            output = job.output.with_name(job.source.name + ".png")
        seen.add(output)
        distinct.append(Job(job.source, output))
    return distinct


class FileFailure(Exception):
    """One input that cannot be used; the run goes on with the others."""


def read_image(
    path: Path, channels: int, size: tuple[int, int] | None = None, convert: bool = True
) -> np.ndarray:
    """A file as float32 [C, H, W] in [0, 1]: grayscale or RGB as the model needs (with
    convert off, a file of the other kind is refused), fitted to `size` (height, width: shorter
    side scaled, centre crop) when the model's size is fixed."""
    try:
        with Image.open(path) as opened:
            gray = is_grayscale(opened)
            if not convert and gray != (channels == 1):
                have, need = ("grayscale", "RGB") if gray else ("colour", "grayscale")
                raise FileFailure(
                    f"{path}: {have}, but the model takes {need} images; convert the file or "
                    "leave out --no-convert"
                )
            image = fit(opened, channels, None)
    except OSError as exc:  # unreadable, not an image, truncated
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise FileFailure(f"{path}: not a readable image ({reason}); fix or remove it") from None
    except (SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise FileFailure(f"{path}: not a readable image ({exc}); fix or remove it") from None
    if size is not None and image.size != (size[1], size[0]):
        image = ImageOps.fit(image, (size[1], size[0]), Image.Resampling.BICUBIC)
    pixels = np.asarray(image, dtype=np.float32) / 255.0
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1).copy()


def to_uint8(image: np.ndarray) -> np.ndarray:
    """[C, H, W] floats in [0, 1] (NaN as 0) as uint8 [H, W, C]."""
    values = np.nan_to_num(image.transpose(1, 2, 0), nan=0.0)
    return (np.clip(values, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def check_output_folder(folder: Path) -> None:
    """--out must be a folder this process can create files in; checked before any work."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe, name = tempfile.mkstemp(prefix=".genmodels-", dir=folder)
        os.close(probe)
        os.unlink(name)
    except OSError as exc:
        raise UserError(
            f"--out {folder}: cannot be written ({exc.strerror or exc}); "
            "choose a folder you can write to"
        ) from None


def write_png(pixels: np.ndarray, path: Path) -> None:
    """uint8 [H, W, C] as a PNG (grayscale for one channel), via a temporary file: an
    interrupted run never leaves a partial image."""
    image = Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
