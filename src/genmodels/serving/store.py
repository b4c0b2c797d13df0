"""The model store: one onnxruntime session per ONNX graph, its metadata and its status.

Graphs come from exported/<instance>/<graph>.onnx or from the champion versions of the MLflow
registry. A graph that is missing, unreadable or off the ONNX contract is kept as unavailable
with the reason, so /health can say what is wrong while the other models keep serving.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from genmodels.checksums import CHECKSUMS, instance_folders, read_checksums, sha256_bytes
from genmodels.families import FAMILIES, TASKS, task_of

log = logging.getLogger(__name__)

IMAGE_SIDE = 28


@dataclass
class TensorInfo:
    name: str
    shape: list[int | str | None]
    type: str

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "shape": self.shape, "type": self.type}


@dataclass
class Graph:
    """One ONNX graph: its session (None when unavailable), metadata and signature."""

    instance: str
    name: str
    source: str  # a path, or the registry's models:/<name>/<version>
    version: str | None = None
    session: ort.InferenceSession | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    inputs: list[TensorInfo] = field(default_factory=list)
    outputs: list[TensorInfo] = field(default_factory=list)
    task: str | None = None
    error: str | None = None
    run_options: ort.RunOptions | None = None  # the arena's shrinkage after each run

    @property
    def ok(self) -> bool:
        return self.session is not None and self.error is None

    def input(self, name: str) -> TensorInfo | None:
        return next((i for i in self.inputs if i.name == name), None)

    @property
    def latent_dim(self) -> int | None:
        z = self.input("z")
        if z is not None and len(z.shape) == 2 and isinstance(z.shape[1], int):
            return z.shape[1]
        return None

    @property
    def truncation_psi(self) -> float:
        """The scale of the latents the generator was evaluated on (1: plain N(0, I))."""
        try:
            psi = float(self.metadata.get("truncation_psi", "1"))
        except ValueError:
            return 1.0
        return psi if 0 < psi <= 1 else 1.0

    def meta_int(self, key: str) -> int | None:
        try:
            return int(self.metadata[key])
        except (KeyError, ValueError):
            return None

    @property
    def class_names(self) -> list[str]:
        """The data's class names (metadata class_names, a JSON list); [] when not recorded."""
        try:
            names = json.loads(self.metadata.get("class_names", "[]"))
        except ValueError:
            return []
        return [str(n) for n in names] if isinstance(names, list) else []

    @property
    def latent_range(self) -> list[list[float]]:
        """Per latent axis, the [low, high] its codes of real images span (metadata
        latent_range, a JSON list; recorded for a decoder whose codes follow no prior)."""
        try:
            ranges = json.loads(self.metadata.get("latent_range", "[]"))
            return [[float(low), float(high)] for low, high in ranges]
        except (ValueError, TypeError):
            return []

    @property
    def trained_size(self) -> tuple[int, int]:
        """The (height, width) of the images it learned from (metadata image_height and
        image_width; 28x28 for graphs exported before they were recorded)."""
        height, width = self.meta_int("image_height"), self.meta_int("image_width")
        return (height, width) if height and width else (IMAGE_SIDE, IMAGE_SIDE)

    @property
    def image_output(self) -> str | None:
        """The output that holds images: "image", else the first 4-D output.

        An image-to-image graph cannot name its output "image" too (ONNX names are SSA).
        """
        names = [o.name for o in self.outputs]
        if "image" in names:
            return "image"
        return next((o.name for o in self.outputs if len(o.shape) == 4), None)

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.session is None:
            raise RuntimeError(f"{self.instance}/{self.name} is unavailable: {self.error}")
        names = [o.name for o in self.outputs]
        outputs = self.session.run(names, dict(feed), self.run_options)
        return dict(zip(names, outputs, strict=True))

    def as_json(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.ok else "unavailable",
            "task": self.task,
            "version": self.version,
            "source": self.source,
            "inputs": [i.as_json() for i in self.inputs],
            "outputs": [o.as_json() for o in self.outputs],
            "error": self.error,
        }


@dataclass
class ServedModel:
    """An instance (ae_k8, vae, gan, ...): its graphs and what they let it do."""

    name: str
    family: str | None
    graphs: dict[str, Graph] = field(default_factory=dict)

    def by_task(self, task: str) -> list[Graph]:
        return [g for g in self.graphs.values() if g.task == task and g.ok]

    def graph_for(self, task: str) -> Graph | None:
        found = self.by_task(task)
        return found[0] if found else None

    @property
    def status(self) -> str:
        good = [g.ok for g in self.graphs.values()]
        if good and all(good):
            return "ok"
        return "degraded" if any(good) else "unavailable"

    @property
    def generator(self) -> Graph | None:
        """The graph /generate samples from: a generator, else a decoder fed N(0, I)."""
        return self.graph_for("generate") or self.graph_for("decode")

    @property
    def decoder(self) -> Graph | None:
        """The graph /decode feeds latent vectors: a decoder or an unconditional generator."""
        found = self.graph_for("decode")
        if found is None:
            found = next((g for g in self.by_task("generate") if g.input("label") is None), None)
        return found

    def translator(self, direction: str) -> Graph | None:
        for g in self.by_task("translate"):
            if g.metadata.get("direction", g.name.removeprefix("generator_")) == direction:
                return g
        return None

    def offers(self, endpoint: str) -> bool:
        """Whether its family serves `endpoint` (any endpoint for a family the table lacks)."""
        row = FAMILIES.get(self.family) if self.family else None
        return row is None or endpoint in row.endpoints

    @property
    def endpoints(self) -> list[str]:
        """The family's endpoints (genmodels.families) whose graphs loaded; for a family the
        table does not know, every endpoint its graphs' tasks allow."""
        can = {
            "generate": self.generator is not None,
            "decode": self.decoder is not None,
            "reconstruct": self.graph_for("encode") is not None and self.decoder is not None,
            "translate": bool(self.by_task("translate")),
            "upscale": self.graph_for("upscale") is not None,
        }
        return [name for name, ok in can.items() if ok and self.offers(name)]

    def describe(self) -> dict[str, Any]:
        """What /models tells a client: names, inputs, outputs, versions, what it can do."""
        row = FAMILIES.get(self.family) if self.family else None
        info: dict[str, Any] = {
            "name": self.name,
            "family": self.family,
            "status": self.status,
            "endpoints": self.endpoints,
            "generative": bool(row is not None and row.generative),
            "graphs": {name: g.as_json() for name, g in self.graphs.items()},
        }
        loaded = next((g for g in self.graphs.values() if g.ok), None)
        if loaded is not None:  # the images it learned from: what an input is brought to
            info["channels"] = loaded.meta_int("image_channels") or 1
            info["size"] = list(loaded.trained_size)
        source = self.generator or self.decoder
        if source is not None and source.latent_dim is not None:
            info["latent_dim"] = source.latent_dim
        conditional = self.graph_for("generate")
        if conditional is not None and conditional.input("label") is not None:
            info["num_classes"] = conditional.meta_int("num_classes")
        names = next((g.class_names for g in self.graphs.values() if g.ok and g.class_names), [])
        if names:  # the classes of the data it learned from, in label order
            info["class_names"] = names
        if source is not None and source.latent_range:
            info["latent_range"] = source.latent_range
        upscaler = self.graph_for("upscale")
        if upscaler is not None:
            info["scale"] = upscaler.meta_int("scale")
        directions = [d for d in ("ab", "ba") if self.translator(d) is not None]
        if directions:
            info["directions"] = directions
            meta = self.by_task("translate")[0].metadata
            info["domains"] = {"a": meta.get("domain_a"), "b": meta.get("domain_b")}
        return info


def _dims(node: Any) -> TensorInfo:
    shape = [d if isinstance(d, int) else (d or None) for d in node.shape]
    return TensorInfo(node.name, shape, node.type)


def _check_contract(graph: Graph) -> str | None:
    """Why a loaded graph cannot serve its task, or None when it follows the ONNX contract."""
    task = graph.task
    if task not in TASKS:
        return f"unknown task {task!r} in its metadata; known: {', '.join(TASKS)}"
    floats = {i.name for i in graph.inputs if i.type == "tensor(float)"}
    if task in ("decode", "generate"):
        if "z" not in floats or graph.latent_dim is None:
            return "expects a float input 'z' of shape [batch, latent_dim]"
        label = graph.input("label")
        if label is not None:
            if label.type != "tensor(int64)":
                return "input 'label' must be int64"
            if not (graph.meta_int("num_classes") or 0) > 0:
                return "a conditional generator needs metadata num_classes"
    elif "image" not in floats or len(graph.input("image").shape) != 4:  # type: ignore[union-attr]
        return "expects a float input 'image' of shape [batch, channels, height, width]"
    if task == "upscale" and not (graph.meta_int("scale") or 0) > 0:
        return "an upscaler needs metadata scale (a positive integer)"
    if task == "translate" and graph.metadata.get("direction") not in (None, "ab", "ba"):
        return f"metadata direction must be 'ab' or 'ba', not {graph.metadata['direction']!r}"
    makes_images = task in ("decode", "generate", "translate", "upscale")
    if makes_images and graph.image_output is None:
        return "has no image output ('image' or a 4-D output)"
    return None


ARENAS = ("shrink", "off", "keep")


def session_options(intra_op_threads: int, inter_op_threads: int, spinning: bool = False,
                    arena: str = "keep") -> ort.SessionOptions:  # fmt: skip
    options = ort.SessionOptions()
    options.enable_cpu_mem_arena = arena != "off"
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = inter_op_threads
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # the service's own thread pool runs requests side by side: no spinning on 2 cores
    # (onnxruntime's default, spinning, suits one caller spreading one graph over the cores)
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return options


def arena_run_options(arena: str) -> ort.RunOptions | None:
    """With "shrink", each run hands the arena's memory beyond its initial block back (the
    burst of one request does not stay resident); None leaves onnxruntime's default."""
    if arena not in ARENAS:
        raise ValueError(f"arena must be one of {', '.join(ARENAS)}, not {arena!r}")
    if arena != "shrink":
        return None
    options = ort.RunOptions()
    options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return options


def load_graph(
    instance: str,
    name: str,
    path: Path,
    options: ort.SessionOptions,
    family: str | None = None,
    version: str | None = None,
    source: str | None = None,
    sha256: str | None = None,
    unverified: str | None = None,
) -> Graph:
    """A Graph for one .onnx file whose bytes must have the sha256 recorded for it (by export,
    or the registry version's tag); any failure, an unrecorded or different digest included,
    leaves it unavailable with the reason (`unverified`: why none was recorded)."""
    graph = Graph(instance=instance, name=name, source=source or str(path), version=version)
    graph.task = task_of(family, name)  # what it would do: a broken graph says so too
    if not path.is_file():
        graph.error = f"{path}: missing; run `dvc repro export@{instance}`"
        return graph
    try:
        data = path.read_bytes()
    except OSError as exc:
        graph.error = f"{path}: unreadable ({exc.strerror or exc})"
        return graph
    digest = sha256_bytes(data)
    if version is None:
        graph.version = "sha256:" + digest[:12]
    if sha256 is None:
        graph.error = f"{path}: not verified: {unverified or 'no sha256 recorded for it'}; " + (
            f"run `dvc repro export@{instance}`"
        )
        return graph
    if digest != sha256:
        graph.error = (
            f"{path}: its sha256 {digest[:12]} is not the {sha256[:12]} recorded when it was "
            f"exported: the file changed since; run `dvc repro export@{instance}`"
        )
        return graph
    outside = _external_data(data)
    if outside:
        graph.error = (
            f"{path}: refers to external data ({outside}); a served graph must be one "
            f"self-contained file: re-export it with `dvc repro export@{instance}`"
        )
        return graph
    try:
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises several types for a corrupt file
        graph.error = f"{path}: not a loadable ONNX graph ({str(exc).splitlines()[0][:200]})"
        return graph
    graph.metadata = dict(session.get_modelmeta().custom_metadata_map)
    graph.inputs = [_dims(i) for i in session.get_inputs()]
    graph.outputs = [_dims(o) for o in session.get_outputs()]
    family = graph.metadata.get("family", family)
    graph.task = graph.metadata.get("task", task_of(family, name))
    named = graph.metadata.get("graph", name)
    if named != name:
        graph.error = f"its metadata says it is the {named!r} graph, not {name!r}"
    else:
        graph.error = _check_contract(graph)
    if graph.error is None:
        graph.session = session
    else:
        graph.error = f"{path}: {graph.error}"
    return graph


def _external_data(data: bytes) -> str | None:
    """The external data files a graph's tensors name, or None. Loaded from bytes, onnxruntime
    would read them relative to the working directory, not the graph's folder."""
    import onnx  # torch-free; parsed only to read where the tensors live

    try:
        model = onnx.load_from_string(data)
    except Exception:  # not a protobuf: onnxruntime gives the reason
        return None
    tensors = [*model.graph.initializer, *(
        a.t for node in model.graph.node for a in node.attribute if a.HasField("t")
    )]  # fmt: skip
    names = {
        entry.value
        for tensor in tensors
        if onnx.external_data_helper.uses_external_data(tensor)
        for entry in tensor.external_data
        if entry.key == "location"
    }
    return ", ".join(sorted(names)) or None


class ModelStore:
    """Every served instance by name."""

    def __init__(self, models: Mapping[str, ServedModel], origin: str):
        self.models = dict(models)
        self.origin = origin  # "exported/" or "registry"

    def __contains__(self, name: str) -> bool:
        return name in self.models

    def get(self, name: str) -> ServedModel | None:
        return self.models.get(name)

    @classmethod
    def scan(
        cls,
        exported_dir: str | Path,
        expected: Mapping[str, str] | None = None,
        intra_op_threads: int = 1,
        inter_op_threads: int = 1,
        only: str | None = None,
        arena: str = "keep",
    ) -> ModelStore:
        """Graphs under exported_dir/<instance>/*.onnx (`only`: that instance alone).

        `expected` (instance -> family, from params) adds the instances and graphs that should
        be there: a missing one is listed as unavailable rather than silently absent.
        """
        root = Path(exported_dir)
        run_options = arena_run_options(arena)
        options = session_options(intra_op_threads, inter_op_threads, arena=arena)
        expected = dict(expected or {})
        found = [p.name for p in instance_folders(root)]
        instances = set(found) | set(expected)
        if only is not None:
            instances &= {only}
        models: dict[str, ServedModel] = {}
        for instance in sorted(instances):
            family = expected.get(instance)
            folder = root / instance
            names = {p.stem for p in folder.glob("*.onnx")} if folder.is_dir() else set()
            names |= set(FAMILIES[family].graph_names() if family in FAMILIES else ())
            model = ServedModel(instance, family)
            sums, unverified = read_checksums(folder)
            for name in sorted(names):
                file = f"{name}.onnx"
                missing = unverified or f"{folder / CHECKSUMS} has no entry for {file}"
                graph = load_graph(instance, name, folder / file, options, family,
                                   sha256=sums.get(file), unverified=missing)  # fmt: skip
                graph.run_options = run_options
                model.graphs[name] = graph
                if model.family is None:
                    model.family = graph.metadata.get("family")
            if not model.graphs:
                model.graphs["?"] = Graph(
                    instance, "?", str(folder), error=f"{folder}: no ONNX graphs"
                )
            models[instance] = model
            _log_model(model)
        return cls(models, origin=str(root))

    @classmethod
    def from_registry(
        cls,
        expected: Mapping[str, str],
        alias: str = "champion",
        intra_op_threads: int = 1,
        inter_op_threads: int = 1,
        cache_dir: str | Path | None = None,
        only: str | None = None,
        arena: str = "keep",
    ) -> ModelStore:
        """The `alias` versions of <instance>-<graph> in the MLflow registry (`only`: that
        instance alone).

        An expected graph without such a version (it failed its quality gate, or `register` has
        not run) is unavailable with that reason.
        """
        from genmodels import tracking  # mlflow only when the registry is asked for

        tracking.configure()
        run_options = arena_run_options(arena)
        options = session_options(intra_op_threads, inter_op_threads, arena=arena)
        cache = Path(cache_dir or tempfile.mkdtemp(prefix="genmodels-serve-"))
        champions = tracking.alias_versions(alias)
        wanted: dict[str, dict[str, str | None]] = {}
        for instance, family in expected.items():
            for name in FAMILIES[family].graph_names() if family in FAMILIES else ():
                wanted.setdefault(instance, {})[name] = family
        for registered, version in champions.items():
            instance, _, name = registered.rpartition("-")
            if instance and name:
                wanted.setdefault(instance, {}).setdefault(name, version.tags.get("family"))
        if only is not None:
            wanted = {only: wanted[only]} if only in wanted else {}
        models: dict[str, ServedModel] = {}
        for instance in sorted(wanted):
            model = ServedModel(instance, expected.get(instance))
            for name, family in sorted(wanted[instance].items()):
                registered = f"{instance}-{name}"
                version = champions.get(registered)
                if version is None:
                    model.graphs[name] = Graph(
                        instance,
                        name,
                        f"models:/{registered}@{alias}",
                        task=task_of(family, name),
                        error=f"{registered}: no version has the alias {alias!r} in the MLflow "
                        "registry (it failed its quality gate, or `make register` has not run)",
                    )
                    continue
                uri = f"models:/{registered}/{version.version}"
                try:
                    path = tracking.download_onnx(uri, cache / registered / str(version.version))
                except Exception as exc:  # a registry or artifact store error, shown in /health
                    model.graphs[name] = Graph(
                        instance,
                        name,
                        uri,
                        str(version.version),
                        task=task_of(family, name),
                        error=f"{uri}: {exc}",
                    )
                    continue
                model.graphs[name] = load_graph(
                    instance,
                    name,
                    path,
                    options,
                    family,
                    str(version.version),
                    uri,
                    sha256=version.tags.get("onnx_sha256"),
                    unverified=f"{registered} version {version.version} has no onnx_sha256 tag",
                )
                model.graphs[name].run_options = run_options
                model.family = model.family or model.graphs[name].metadata.get("family")
            models[instance] = model
            _log_model(model)
        return cls(models, origin="registry")


def _log_model(model: ServedModel) -> None:
    for graph in model.graphs.values():
        if graph.ok:
            log.info("%s/%s: %s (%s)", model.name, graph.name, graph.task, graph.version)
        else:
            log.warning("%s/%s unavailable: %s", model.name, graph.name, graph.error)
