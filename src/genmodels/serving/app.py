"""The HTTP app: FastAPI over the model store; JSON or PNG out, 4xx with a message on bad input.

Request bodies are JSON (Content-Type: application/json); images travel as base64 files (PNG,
JPEG, WebP, BMP, TIFF) in an `image` field. docs/deployment.md lists every endpoint.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from genmodels.config import ServeParams
from genmodels.families import ENDPOINT_TASKS
from genmodels.serving.images import ImageError, decode_base64_image, png_grid, resize
from genmodels.serving.store import Graph, ModelStore, ServedModel

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
# inputs up to this size run on the event loop: a thread hop costs more than the inference
# (a 28x28 CycleGAN translation: 0.17 ms); larger images go to worker threads
INLINE_BATCH = 4
INLINE_PIXELS = 28 * 28
MAX_SEED = 2**63 - 1


class ApiError(HTTPException):
    """A client error with one message (FastAPI's {"detail": message} body)."""


# ---------------------------------------------------------------- request bodies


class Body(BaseModel):
    # strict: "3" or true is not a number and "yes" is not a boolean (JSON ints are floats)
    model_config = ConfigDict(extra="forbid", strict=True)


Nrow = Annotated[int, Field(ge=1, le=256)] | None


class GenerateBody(Body):
    n: int | None = None  # images; defaults to len(z), len(labels) or 1
    seed: int | None = None  # z ~ N(0, I) from this seed; none: a fresh one, returned
    labels: list[int] | None = None  # conditional models: one class per image
    z: list[list[float]] | None = None  # explicit latent vectors instead of a seed
    nrow: Nrow = None  # images per row of the PNG grid


class DecodeBody(Body):
    z: list[list[float]]
    nrow: Nrow = None


class ImageBody(Body):
    image: str  # a base64 image file (PNG, JPEG, WebP, BMP, TIFF), a data: URL prefix allowed
    invert: bool = False  # dark object on a light background: invert to the training look
    convert: bool = True  # grayscale <-> RGB as the model takes it; false: refuse the other kind


class TranslateBody(ImageBody):
    direction: Literal["ab", "ba"] = "ab"


# ---------------------------------------------------------------- body size limit


class RequestGuard:
    """POST bodies must be JSON, at most max_bytes (by Content-Length or while read), and all
    in within body_timeout seconds of their headers (else 408: a client that declares a body
    and never sends it does not hold the connection)."""

    def __init__(self, app: ASGIApp, max_bytes: int, body_timeout: float = 10.0):
        self.app = app
        self.max_bytes = max_bytes
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        kind = headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()
        length = headers.get(b"content-length")
        refusal = None
        if kind != "application/json":
            refusal = (415, f"Content-Type must be application/json, not {kind or 'none'!r}")
        elif length is not None and not length.isdigit():
            refusal = (400, "Content-Length is not a number")
        elif length is not None and int(length) > self.max_bytes:
            refusal = (413, self._too_large())
        if refusal is not None:
            response = JSONResponse({"detail": refusal[1]}, status_code=refusal[0])
            await response(scope, receive, send)
            return
        seen = 0
        complete = False
        deadline = asyncio.get_running_loop().time() + self.body_timeout

        async def limited() -> Message:
            nonlocal seen, complete
            if complete:  # after the body, receive() waits for a disconnect: no deadline
                return await receive()
            left = deadline - asyncio.get_running_loop().time()
            try:
                message = await asyncio.wait_for(receive(), max(left, 0.0))
            except TimeoutError:
                raise ApiError(
                    408,
                    f"request body not received within {self.body_timeout:g} s of its headers",
                    headers={"Connection": "close"},  # the rest of the body is not waited for
                ) from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:  # a chunked body has no Content-Length
                    raise ApiError(413, self._too_large())
                complete = not message.get("more_body", False)
            return message

        await self.app(scope, limited, send)

    def _too_large(self) -> str:
        return f"request body is larger than the limit of {self.max_bytes} bytes"


# ---------------------------------------------------------------- helpers


def _accepts_png(request: Request) -> bool:
    """PNG when the Accept header prefers image/png (or image/*) to JSON; JSON by default."""
    header = request.headers.get("accept", "").strip()
    if not header:
        return False
    q = {"png": 0.0, "json": 0.0, "any": 0.0}
    for part in header.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        weight = 1.0
        for p in params:
            if p.startswith("q="):
                try:
                    weight = float(p[2:])
                except ValueError:
                    weight = 0.0
        kind = {
            "image/png": "png",
            "image/*": "png",
            "application/json": "json",
            "application/*": "any",
            "*/*": "any",
        }.get(media.lower())
        if kind is not None:
            q[kind] = max(q[kind], weight)
    q["json"] = max(q["json"], q["any"])  # a wildcard gets the default, JSON
    if q["png"] <= 0 and q["json"] <= 0:
        raise ApiError(406, "Accept must allow application/json or image/png")
    return q["png"] > q["json"]


def _headers(model: ServedModel, graph: Graph, extra: dict[str, Any]) -> dict[str, str]:
    headers = {"X-Model": model.name, "X-Model-Version": str(graph.version)}
    if "seed" in extra:
        headers["X-Seed"] = str(extra["seed"])
    return headers


def _respond(
    request: Request,
    model: ServedModel,
    graph: Graph,
    images: np.ndarray,
    cause: str,
    nrow: int | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    """The images as a PNG grid or JSON; a non-finite output is the client's input overflowing
    the graph: a 422 naming that input (`cause`), never a response with bare NaN."""
    if not np.isfinite(images).all():
        raise ApiError(
            422,
            f"{cause}: the model's output for it is not finite (NaN or infinity); its values are "
            f"too large for the model, send {cause} of an ordinary size",
        )
    extra = extra or {}
    headers = _headers(model, graph, extra)
    if _accepts_png(request):
        return Response(png_grid(images, nrow), media_type="image/png", headers=headers)
    body = {
        "model": model.name,
        "graph": graph.name,
        "version": graph.version,
        "shape": list(images.shape),
        "images": images.tolist(),
        **extra,
    }
    # allow_nan=False: a non-finite number left anywhere fails here, not in the client's parser
    return Response(json.dumps(body, allow_nan=False), media_type="application/json",
                    headers=headers)  # fmt: skip


def _matrix(rows: list[list[float]], what: str, width: int, max_n: int) -> np.ndarray:
    """A finite float32 [n, width] array from JSON rows, or a 422 naming the problem."""
    if not rows:
        raise ApiError(422, f"{what}: empty; give at least one row of {width} numbers")
    if len(rows) > max_n:
        raise ApiError(422, f"{what}: {len(rows)} rows is above the limit of {max_n}")
    bad = next((i for i, r in enumerate(rows) if len(r) != width), None)
    if bad is not None:
        raise ApiError(
            422, f"{what}[{bad}] has {len(rows[bad])} numbers; this model needs {width} per row"
        )
    array = np.asarray(rows, dtype=np.float32)
    if not np.isfinite(array).all():
        raise ApiError(422, f"{what}: contains NaN or infinity (or a number too large)")
    return array


class InferenceGate:
    """At most `limit` inferences at once in this worker (each holds its activations in
    memory); the next `max_waiting` requests wait up to `timeout` seconds for a turn, and the
    others get 503 with Retry-After at once."""

    def __init__(self, limit: int, max_waiting: int, timeout: float):
        self.limit, self.max_waiting, self.timeout = limit, max_waiting, timeout
        self.slots = asyncio.Semaphore(limit)
        self.running = self.waiting = self.refused = 0

    def _busy(self, why: str) -> ApiError:
        self.refused += 1
        return ApiError(503, f"busy: {why}; try again shortly", headers={"Retry-After": "1"})

    async def run(self, graph: Graph, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.slots.locked():
            if self.waiting >= self.max_waiting:
                raise self._busy(f"{self.limit} inferences running and {self.waiting} waiting")
            self.waiting += 1
            try:
                await asyncio.wait_for(self.slots.acquire(), self.timeout)
            except TimeoutError:
                raise self._busy(f"no turn within {self.timeout:g} s") from None
            finally:
                self.waiting -= 1
        else:
            await self.slots.acquire()
        self.running += 1
        try:
            return await _infer(graph, feed)
        finally:
            self.running -= 1
            self.slots.release()

    def as_json(self) -> dict[str, int]:
        return {"running": self.running, "waiting": self.waiting, "refused": self.refused}


async def _infer(graph: Graph, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Small inputs run on the event loop, the rest on worker threads."""
    first = next(iter(feed.values()))
    if first.shape[0] <= INLINE_BATCH and (
        graph.task in ("decode", "generate", "encode") or first[0].size <= INLINE_PIXELS
    ):
        return graph.run(feed)
    return await run_in_threadpool(graph.run, feed)


def _image_input(body: ImageBody, graph: Graph, settings: ServeParams, resize_to: bool) -> Any:
    """The uploaded image as float32 [1, C, H, W] in the graph's channels, resized to its input
    when fixed (with resize_to: to the size it learned from when it takes any size)."""
    shape = graph.input("image").shape  # type: ignore[union-attr]
    channels = shape[1] if isinstance(shape[1], int) else graph.meta_int("image_channels") or 1
    try:
        image = decode_base64_image(body.image, settings.max_image_side, channels, body.convert)
    except ImageError as exc:
        raise ApiError(exc.status, str(exc)) from None
    if body.invert:
        image = 1.0 - image
    height, width = shape[2], shape[3]
    if resize_to:
        height = height if isinstance(height, int) else graph.trained_size[0]
        width = width if isinstance(width, int) else graph.trained_size[1]
        image = resize(image, height, width)
    elif isinstance(height, int) and isinstance(width, int):
        image = resize(image, height, width)
    return image[None]


class _Revalidated(StaticFiles):
    """Static files a browser revalidates (ETag) on each load: a new version shows at once."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        return response


# ---------------------------------------------------------------- the app


def create_app(store: ModelStore, settings: ServeParams | None = None) -> FastAPI:
    settings = settings or ServeParams()
    # the OpenAPI pages load their scripts from a CDN: off, as the service runs offline
    # FastAPI's /docs and /redoc pages load their scripts from a CDN; these serve them from
    # the installed package, so the API docs work offline
    app = FastAPIOffline(
        title="genmodels",
        description="Generative models of the lecture, served from ONNX by onnxruntime.",
        docs_url="/docs",
        redoc_url="/redoc",
        static_url="/docs-assets",
    )
    app.state.store = store
    app.state.settings = settings
    gate = InferenceGate(
        settings.max_concurrent_inference, settings.max_waiting, settings.queue_timeout_seconds
    )
    app.state.gate = gate
    app.add_middleware(
        RequestGuard,
        max_bytes=settings.max_body_bytes,
        body_timeout=settings.body_timeout_seconds,
    )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
            problems.append(f"{where}: {error.get('msg', 'invalid')}")
        return JSONResponse({"detail": "; ".join(problems)}, status_code=422)

    def lookup(name: str, endpoint: str, pick: Callable[[ServedModel], Any]) -> tuple:
        model = store.get(name)
        if model is None:
            known = ", ".join(sorted(store.models)) or "none"
            raise ApiError(404, f"unknown model {name!r}; served models: {known}")
        found = pick(model) if model.offers(endpoint.split()[0]) else None
        if found is None or found is False:
            # 503 when a graph that would serve this is broken; 404 when none ever could
            tasks = ENDPOINT_TASKS[endpoint.split()[0]]
            broken = [g.error for g in model.graphs.values() if not g.ok and g.task in tasks]
            if broken:
                raise ApiError(503, f"{name} cannot {endpoint} now: " + "; ".join(broken))
            serves = ", ".join(model.endpoints) or "nothing"
            raise ApiError(404, f"model {name!r} does not {endpoint}; it serves: {serves}")
        return model, found

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(
            STATIC / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"}
        )

    app.mount("/static", _Revalidated(directory=STATIC), name="static")

    @app.get("/health")
    def health() -> dict[str, Any]:
        models = {
            name: {
                "status": m.status,
                "family": m.family,
                "graphs": {
                    g.name: {"status": "ok" if g.ok else "unavailable", "error": g.error}
                    for g in m.graphs.values()
                },
            }
            for name, m in store.models.items()
        }
        statuses = {m["status"] for m in models.values()}
        overall = "ok" if statuses == {"ok"} else ("unavailable" if not models else "degraded")
        # the worker process answering: tells apart the workers of `serve --workers N`
        return {"status": overall, "origin": store.origin, "worker": os.getpid(),
                "inference": gate.as_json(), "models": models}  # fmt: skip

    @app.get("/models")
    def models() -> dict[str, Any]:
        return {
            "models": [m.describe() for m in store.models.values()],
            "limits": {
                "max_n": settings.max_n,
                "max_body_bytes": settings.max_body_bytes,
                "max_image_side": settings.max_image_side,
                "max_upscale_side": settings.max_upscale_side,
                "max_concurrent_inference": settings.max_concurrent_inference,
            },
        }

    @app.post("/generate/{name}")
    async def generate(name: str, body: GenerateBody, request: Request) -> Response:
        model, graph = lookup(name, "generate", lambda m: m.generator)
        k = graph.latent_dim
        n = body.n
        sizes = {"n": n}
        if body.z is not None:
            sizes["z"] = len(body.z)
        if body.labels is not None:
            sizes["labels"] = len(body.labels)
        given = {v for v in sizes.values() if v is not None}
        if len(given) > 1:
            shown = ", ".join(f"{key}: {v}" for key, v in sizes.items() if v is not None)
            raise ApiError(422, f"the batch sizes disagree ({shown})")
        n = given.pop() if given else 1
        if not 1 <= n <= settings.max_n:
            raise ApiError(422, f"n must be between 1 and {settings.max_n}, not {n}")
        extra: dict[str, Any] = {}
        if body.z is not None:
            z = _matrix(body.z, "z", k, settings.max_n)
        else:
            seed = body.seed
            if seed is None:
                seed = int(np.random.default_rng().integers(0, 2**31))
            if not 0 <= seed <= MAX_SEED:
                raise ApiError(422, f"seed must be between 0 and {MAX_SEED}")
            z = np.random.default_rng(seed).standard_normal((n, k), dtype=np.float32)
            z *= graph.truncation_psi  # drawn as the evaluation drew them
            extra["seed"] = seed
        feed = {"z": z}
        if graph.input("label") is not None:
            classes = graph.meta_int("num_classes") or 0
            labels = np.arange(n) % classes if body.labels is None else np.array(body.labels)
            if labels.min() < 0 or labels.max() >= classes:
                raise ApiError(
                    422, f"labels must be classes 0 to {classes - 1}; got {labels.tolist()}"
                )
            feed["label"] = labels.astype(np.int64)
            extra["labels"] = feed["label"].tolist()
        elif body.labels is not None:
            raise ApiError(422, f"model {name!r} is not conditional: drop 'labels'")
        out = await gate.run(graph, feed)
        extra["z"] = z.tolist()
        return _respond(request, model, graph, out[graph.image_output], "z", body.nrow, extra)

    @app.post("/decode/{name}")
    async def decode(name: str, body: DecodeBody, request: Request) -> Response:
        model, graph = lookup(name, "decode", lambda m: m.decoder)
        z = _matrix(body.z, "z", graph.latent_dim, settings.max_n)
        out = await gate.run(graph, {"z": z})
        return _respond(request, model, graph, out[graph.image_output], "z", body.nrow)

    @app.post("/reconstruct/{name}")
    async def reconstruct(name: str, body: ImageBody, request: Request) -> Response:
        def both(m: ServedModel) -> tuple[Graph, Graph] | None:
            enc, dec = m.graph_for("encode"), m.decoder
            return (enc, dec) if enc is not None and dec is not None else None

        model, (encoder, decoder) = lookup(name, "reconstruct", both)
        image = _image_input(body, encoder, settings, resize_to=True)
        codes = await gate.run(encoder, {"image": image})
        # a VAE reconstructs from the posterior mean; an autoencoder from its code
        z = codes.get("mean", codes.get("z", next(iter(codes.values()))))
        out = await gate.run(decoder, {"z": z.astype(np.float32)})
        extra = {"z": z.tolist(), "input": image.tolist()}
        return _respond(request, model, decoder, out[decoder.image_output], "image", None, extra)

    @app.post("/translate/{name}")
    async def translate(name: str, body: TranslateBody, request: Request) -> Response:
        direction = body.direction
        model, graph = lookup(name, f"translate {direction}", lambda m: m.translator(direction))
        image = _image_input(body, graph, settings, resize_to=True)
        out = await gate.run(graph, {"image": image})
        images = out[graph.image_output]
        return _respond(request, model, graph, images, "image", None, {"direction": direction})

    @app.post("/upscale/{name}")
    async def upscale(name: str, body: ImageBody, request: Request) -> Response:
        model, graph = lookup(name, "upscale", lambda m: m.graph_for("upscale"))
        image = _image_input(body, graph, settings, resize_to=False)
        side = max(image.shape[2:])
        if side > settings.max_upscale_side:
            raise ApiError(
                413,
                f"image: {image.shape[3]}x{image.shape[2]} is larger than the upscale limit "
                f"of {settings.max_upscale_side} pixels a side",
            )
        out = await gate.run(graph, {"image": image})
        extra = {"scale": graph.meta_int("scale")}
        return _respond(request, model, graph, out[graph.image_output], "image", None, extra)

    return app
