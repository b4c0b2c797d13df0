"""`genmodels generate | reconstruct | translate | upscale`: the exported graphs (or the
registry's champions) run by onnxruntime on the user's files. No torch is imported.

Each output is a PNG in --out named after its input. A file that cannot be used is reported by
name and the others are still processed; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from genmodels.checksums import instance_folders
from genmodels.errors import UserError
from genmodels.serving.files import (
    FileFailure,
    Job,
    check_output_folder,
    expand_inputs,
    read_image,
    to_uint8,
    write_png,
)
from genmodels.serving.store import Graph, ModelStore, ServedModel
from genmodels.serving.tiling import run_tiled, tile_count

log = logging.getLogger("genmodels.files")
GENERATE_BATCH = 64


# ---------------------------------------------------------------- the model and its settings


def _settings(params_path: str) -> tuple[Any, dict[str, str], str]:
    """The infer section, instance -> family and the registry alias from the params file; the
    defaults when the default params.yaml is absent (graphs carry their family)."""
    from genmodels.config import InferParams, load_params

    if params_path == "params.yaml" and not Path(params_path).is_file():
        return InferParams(), {}, "champion"
    params = load_params(params_path)
    expected = {name: model.family for name, model in params.models.items()}
    return params.infer, expected, params.registry.alias


def _load(args: argparse.Namespace) -> tuple[ServedModel, Any]:
    infer, expected, alias = _settings(args.params)
    threads = infer.threads
    if args.from_registry:
        store = ModelStore.from_registry(expected, alias, threads, 1, only=args.model)
        where = f"the MLflow registry (alias {alias!r})"
    else:
        store = ModelStore.scan(args.exported_dir, expected, threads, 1, only=args.model)
        where = f"{args.exported_dir}/"
    model = store.get(args.model)
    if model is None:
        known = _known_instances(args.exported_dir, expected)
        raise UserError(
            f"{args.model}: no such model in {where}; known: {known or 'none'} "
            "(export one with `dvc repro export@<instance>`)"
        )
    return model, infer


def _known_instances(exported_dir: str, expected: dict[str, str]) -> str:
    found = {p.name for p in instance_folders(exported_dir)}
    return ", ".join(sorted(found | set(expected)))


def _graph(model: ServedModel, endpoint: str, pick: Callable[[ServedModel], Any]) -> Any:
    found = pick(model) if model.offers(endpoint.split()[0]) else None
    if found:
        return found
    broken = [g.error for g in model.graphs.values() if not g.ok]
    if broken:
        raise UserError(f"{model.name} cannot {endpoint}: " + "; ".join(str(b) for b in broken))
    serves = ", ".join(model.endpoints) or "nothing"
    raise UserError(f"{model.name} does not {endpoint}; it serves: {serves}")


# ---------------------------------------------------------------- running over files


def _run_files(jobs: list[Job], out: Path, make: Callable[[Job], np.ndarray], what: str) -> int:
    """make(job) -> uint8 [H, W, C] for each job, written to out/job.output; the failures."""
    failed = 0
    with tqdm(total=len(jobs), unit="image", desc=what, dynamic_ncols=True) as bar:
        for job in jobs:
            try:
                write_png(make(job), out / job.output)
            except FileFailure as exc:
                failed += 1
                bar.write(f"error: {exc}", file=sys.stderr)
            except OSError as exc:  # the output could not be written: disk full, permissions
                failed += 1
                bar.write(
                    f"error: {out / job.output}: cannot be written ({exc.strerror or exc})",
                    file=sys.stderr,
                )
            bar.update()
    done = len(jobs) - failed
    log.info("%s: %d of %d images written to %s/", what, done, len(jobs), out)
    return failed


def _pad_to(multiple: int, run: Callable[[np.ndarray], np.ndarray], scale: int):
    """run on an input padded (mirrored) to a multiple of `multiple` a side, cropped back."""
    if multiple <= 1:
        return run

    def padded(batch: np.ndarray) -> np.ndarray:
        h, w = batch.shape[2:]
        ph, pw = -h % multiple, -w % multiple
        if not (ph or pw):
            return run(batch)
        grown = np.pad(batch, ((0, 0), (0, 0), (0, ph), (0, pw)), mode="symmetric")
        return run(grown)[:, :, : h * scale, : w * scale]

    return padded


def _image_size(graph: Graph) -> tuple[int, tuple[int, int] | None]:
    """The graph's input channels, and its (height, width) when fixed (None: any size)."""
    shape = graph.input("image").shape  # type: ignore[union-attr]
    channels = shape[1] if isinstance(shape[1], int) else 1
    if isinstance(shape[2], int) and isinstance(shape[3], int):
        return channels, (shape[2], shape[3])
    return channels, None


def _spatial(graph: Graph, infer: Any, scale: int) -> Callable[[np.ndarray, Path], np.ndarray]:
    """An image -> uint8 output function for an image-to-image graph: tiled when the graph
    takes any size, the input fitted to its size when fixed."""
    output = graph.image_output
    _, fixed = _image_size(graph)

    def run(batch: np.ndarray) -> np.ndarray:
        return graph.run({"image": batch})[output]

    run = _pad_to(graph.meta_int("size_multiple") or 1, run, scale)
    limit = infer.max_memory_mb * 2**20

    def apply(image: np.ndarray, path: Path) -> np.ndarray:
        if fixed is not None:
            return to_uint8(run(image[None])[0])
        c, h, w = image.shape
        tile = min(infer.tile_side, h)
        # the 8-bit output, one band of float tiles and its weights, the float input
        out_h, out_w = h * scale, w * scale
        needed = out_h * out_w * c + (c + 1) * 4 * tile * scale * out_w + 4 * c * h * w
        if needed > limit:
            raise FileFailure(
                f"{path}: {w}x{h} pixels need about {needed // 2**20} MB at {scale}x, above "
                "infer.max_memory_mb; raise it or give a smaller image"
            )
        tiles = tile_count(h, w, infer.tile_side, infer.tile_overlap)
        with tqdm(total=tiles, unit="tile", leave=False, disable=tiles == 1, desc=path.name) as t:
            return run_tiled(run, image, scale, infer.tile_side, infer.tile_overlap,
                             on_tile=t.update)  # fmt: skip

    return apply


# ---------------------------------------------------------------- the commands


def _image_to_image(args: argparse.Namespace, endpoint: str, pick, scale_of, what: str) -> int:
    """upscale and translate: each file through one fully convolutional (or fixed-size) graph."""
    jobs, out = _prepare(args)
    model, infer = _load(args)
    graph = _graph(model, endpoint, pick)
    scale = scale_of(graph)
    channels, fixed = _image_size(graph)
    apply = _spatial(graph, infer, scale)
    convert = not args.no_convert

    def make(job: Job) -> np.ndarray:
        return apply(read_image(job.source, channels, fixed, convert), job.source)

    return _run_files(jobs, out, make, f"{what} {model.name}")


def cmd_upscale(args: argparse.Namespace) -> int:
    return _image_to_image(args, "upscale", lambda m: m.graph_for("upscale"),
                           lambda g: g.meta_int("scale") or 1, "upscale")  # fmt: skip


def cmd_translate(args: argparse.Namespace) -> int:
    direction = args.direction
    return _image_to_image(args, f"translate {direction}", lambda m: m.translator(direction),
                           lambda g: 1, f"translate ({direction})")  # fmt: skip


def cmd_reconstruct(args: argparse.Namespace) -> int:
    jobs, out = _prepare(args)
    model, _ = _load(args)

    def both(m: ServedModel) -> tuple[Graph, Graph] | None:
        encoder, decoder = m.graph_for("encode"), m.decoder
        return (encoder, decoder) if encoder is not None and decoder is not None else None

    encoder, decoder = _graph(model, "reconstruct", both)
    channels, fixed = _image_size(encoder)

    def make(job: Job) -> np.ndarray:
        image = read_image(job.source, channels, fixed, not args.no_convert)
        codes = encoder.run({"image": image[None]})
        z = codes.get("mean", codes.get("z", next(iter(codes.values()))))
        decoded = decoder.run({"z": z.astype(np.float32)})[decoder.image_output]
        return to_uint8(decoded[0])

    return _run_files(jobs, out, make, f"reconstruct {model.name}")


def _parse_labels(text: str, n: int, classes: int, names: list[str]) -> np.ndarray:
    """--labels: class numbers or names, comma-separated, repeated to n images."""
    labels = []
    for item in (part.strip() for part in text.split(",")):
        if item.isdigit() and int(item) < classes:
            labels.append(int(item))
        elif item in names:
            labels.append(names.index(item))
        else:
            named = f" or one of {', '.join(names)}" if names else ""
            raise UserError(f"--labels: {item!r} is not a class; use 0 to {classes - 1}{named}")
    return np.resize(np.array(labels, np.int64), n)


def cmd_generate(args: argparse.Namespace) -> int:
    if not 1 <= args.n <= 100_000:
        raise UserError(f"--n {args.n}: give between 1 and 100000 images")
    out = Path(args.out)
    check_output_folder(out)
    model, _ = _load(args)
    graph = _graph(model, "generate", lambda m: m.generator)
    seed = args.seed
    z = np.random.default_rng(seed).standard_normal((args.n, graph.latent_dim), np.float32)
    z *= graph.truncation_psi  # drawn as the evaluation drew them, as /generate does
    feed: dict[str, np.ndarray] = {"z": z}
    names: list[str] = []
    if graph.input("label") is not None:
        classes = graph.meta_int("num_classes") or 0
        names = graph.class_names
        if args.labels:
            feed["label"] = _parse_labels(args.labels, args.n, classes, names)
        else:
            feed["label"] = np.arange(args.n, dtype=np.int64) % classes
    elif args.labels:
        raise UserError(f"--labels: {model.name} is not conditional; drop --labels")
    jobs = []
    for i in range(args.n):
        suffix = ""
        if "label" in feed:
            label = int(feed["label"][i])
            named = names[label] if label < len(names) else str(label)
            suffix = "-" + re.sub(r"[^A-Za-z0-9._-]+", "_", named)  # T-shirt/top: no folder
        jobs.append(Job(Path(), Path(f"{model.name}-seed{seed}-{i:04d}{suffix}.png")))
    index_of = {job.output: i for i, job in enumerate(jobs)}
    images: dict[int, np.ndarray] = {}

    def make(job: Job) -> np.ndarray:
        index = index_of[job.output]
        if index not in images:  # one batch at a time
            stop = min(index + GENERATE_BATCH, args.n)
            batch = {k: v[index:stop] for k, v in feed.items()}
            for offset, image in enumerate(graph.run(batch)[graph.image_output]):
                images[index + offset] = image
        return to_uint8(images.pop(index))

    return _run_files(jobs, out, make, f"generate {model.name} (seed {seed})")


def _prepare(args: argparse.Namespace) -> tuple[list[Job], Path]:
    jobs = expand_inputs(args.inputs)
    out = Path(args.out)
    check_output_folder(out)
    return jobs, out


# ---------------------------------------------------------------- argparse


def _common(parser: argparse.ArgumentParser, inputs: bool = True) -> None:
    parser.add_argument("model", help="the instance, as in params.yaml models: (e.g. srgan)")
    if inputs:
        parser.add_argument("inputs", nargs="+", help="image files, folders or quoted globs")
    parser.add_argument("--out", default="outputs", help="the folder for the PNG files (outputs)")
    parser.add_argument("--params", default="params.yaml", help="the params file (params.yaml)")
    parser.add_argument("--exported-dir", default="exported", help="graphs: <dir>/<model>/*.onnx")
    parser.add_argument("--from-registry", action="store_true",
                        help="the MLflow registry's champion versions instead of --exported-dir")  # fmt: skip


COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], int], str, str]] = {
    "generate": (cmd_generate, "new images from a generator or decoder",
                 "genmodels generate cgan --n 16 --seed 7 --labels Sneaker,Bag --out samples/"),
    "reconstruct": (cmd_reconstruct, "images through an autoencoder or VAE and back",
                    "genmodels reconstruct vae 'shirts/*.png' --out reconstructed/"),
    "translate": (cmd_translate, "images from one CycleGAN domain to the other",
                  "genmodels translate cyclegan photos/ --direction ab --out translated/"),
    "upscale": (cmd_upscale, "images upscaled by the SRResNet or SRGAN, in tiles",
                "genmodels upscale srgan photo.jpg --out upscaled/"),
}  # fmt: skip


def add_commands(commands: Any) -> None:
    for name, (_, summary, example) in COMMANDS.items():
        parser = commands.add_parser(
            name,
            help=summary,
            description=f"{summary[0].upper()}{summary[1:]}; one PNG per input in --out.",
            epilog=f"example:\n  {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _common(parser, inputs=name != "generate")
        if name == "generate":
            parser.add_argument("--n", type=int, default=16, help="how many images (16)")
            parser.add_argument("--seed", type=int, default=0, help="the latent draw's seed (0)")
            parser.add_argument("--labels", help="conditional models: classes, numbers or names, "
                                "comma-separated, repeated over --n")  # fmt: skip
        else:
            parser.add_argument("--no-convert", action="store_true",
                                help="refuse a grayscale file for an RGB model (and colour for "
                                "a grayscale one) instead of converting it")  # fmt: skip
        if name == "translate":
            parser.add_argument("--direction", choices=("ab", "ba"), default="ab",
                                help="a -> b (ab, the default) or b -> a")  # fmt: skip


def run_command(args: argparse.Namespace) -> int:
    """The command's failures count (0: every file written)."""
    logging.getLogger("genmodels.serving.store").setLevel(logging.WARNING)  # one line per graph
    return COMMANDS[args.command][0](args)
