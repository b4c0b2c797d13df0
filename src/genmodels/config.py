"""The schema of params.yaml: every stage validates its params here before doing any work."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from genmodels.errors import UserError

InstanceName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataParams(Strict):
    name: Literal["fashion_mnist", "mnist", "kmnist", "digits"] = "fashion_mnist"
    raw_dir: str = "data/raw"
    prepared_dir: str = "data/prepared"
    download: bool = True
    limit_train: Annotated[int, Field(gt=0)] | None = None
    limit_test: Annotated[int, Field(gt=0)] | None = None
    subset_seed: int = 0
    digits_test_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2


class TrainParams(Strict):
    device: Annotated[str, Field(pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$")] = "auto"
    seed: int = 0
    num_threads: Annotated[int, Field(ge=0)] = 0  # 0 keeps torch's default
    log_every: Annotated[int, Field(gt=0)] = 50
    checkpoint_every: Annotated[int, Field(gt=0)] = 500
    checkpoint_dir: str = "checkpoints"
    progress: Literal["auto", "bar", "log"] = "auto"


class ModelBase(Strict):
    """Fields every model instance has: its family and its training budget."""

    epochs: Annotated[int, Field(gt=0)] | None = None
    steps: Annotated[int, Field(gt=0)] | None = None
    batch_size: Annotated[int, Field(gt=0, le=65536)] = 128
    lr: Annotated[float, Field(gt=0, le=1)] = 1e-3
    weight_decay: Annotated[float, Field(ge=0)] = 0.0

    @model_validator(mode="after")
    def _one_budget(self):
        if (self.epochs is None) == (self.steps is None):
            raise ValueError("set exactly one of 'epochs' or 'steps' as the training budget")
        return self


Channels = Annotated[list[Annotated[int, Field(gt=0)]], Field(min_length=1, max_length=2)]
Hidden = Annotated[list[Annotated[int, Field(gt=0)]], Field(min_length=1)]


class SparsityParams(Strict):
    """A penalty on the code activations (lecture 2.1, sparse autoencoder)."""

    kind: Literal["none", "l1", "kl"] = "none"
    weight: Annotated[float, Field(ge=0)] = 1e-3
    rho: Annotated[float, Field(gt=0, lt=1)] = 0.05  # kl: the target mean activation


class NoiseParams(Strict):
    """Corruption of the input, drawn afresh for every batch (denoising autoencoder)."""

    kind: Literal["none", "gaussian", "mask"] = "none"
    level: Annotated[float, Field(ge=0, lt=1)] = 0.3  # gaussian: sigma; mask: fraction dropped


class AutoencoderParams(ModelBase):
    family: Literal["autoencoder"]
    arch: Literal["mlp", "conv"] = "conv"
    latent_dim: Annotated[int, Field(gt=0, le=784)] = 32
    hidden_dims: Hidden = [512, 256]
    channels: Channels = [32, 64]
    loss: Literal["mse", "bce"] = "mse"
    code_activation: Literal["linear", "relu", "sigmoid"] = "linear"
    sparsity: SparsityParams = SparsityParams()
    noise: NoiseParams = NoiseParams()
    # evaluation: a code unit with |activation| below this counts as silent
    sparsity_threshold: Annotated[float, Field(gt=0)] = 0.05
    # evaluation of a denoising instance: noise levels of its own kind
    eval_noise_levels: Annotated[list[Annotated[float, Field(ge=0, lt=1)]], Field(min_length=1)] = [
        0.1,
        0.3,
        0.5,
    ]

    @model_validator(mode="after")
    def _kl_needs_unit_interval(self):
        if self.sparsity.kind == "kl" and self.code_activation != "sigmoid":
            raise ValueError("sparsity.kind 'kl' needs code_activation 'sigmoid' (rates in (0, 1))")
        return self


class VAEParams(ModelBase):
    family: Literal["vae"]
    arch: Literal["mlp", "conv"] = "conv"
    latent_dim: Annotated[int, Field(gt=0, le=784)] = 16
    hidden_dims: Hidden = [512]
    channels: Channels = [32, 64]
    # bernoulli: dynamically binarised pixels; gaussian: recon_weight x per-image mean squared
    # error, a Gaussian of variance D / (2 recon_weight) (the lecture's 1000 x MSE)
    likelihood: Literal["bernoulli", "gaussian"] = "bernoulli"
    recon_weight: Annotated[float, Field(gt=0)] = 1000.0
    beta: Annotated[float, Field(ge=0)] = 1.0
    kl_warmup_steps: Annotated[int, Field(ge=0)] = 0
    iwae_k: Annotated[int, Field(gt=0, le=100000)] = 500
    iwae_images: Annotated[int, Field(gt=0)] = 1000  # test images the IWAE bound is computed on
    iwae_chunk: Annotated[int, Field(gt=0)] = 20000  # decoded samples per batch: bounds memory
    active_unit_threshold: Annotated[float, Field(gt=0)] = 0.01


class EvaluatorParams(ModelBase):
    """The CNN classifier whose features are the space sample metrics are computed in."""

    family: Literal["evaluator"]
    channels: Channels = [32, 64]
    features: Annotated[int, Field(gt=0)] = 128
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.3
    lr_decay: Annotated[float, Field(gt=0, le=1)] = 0.7  # learning-rate factor per epoch
    label_smoothing: Annotated[float, Field(ge=0, lt=1)] = 0.0


# Each family's params class, by the `family` tag of a models.<instance> entry.
FAMILY_PARAMS: dict[str, type[ModelBase]] = {
    "autoencoder": AutoencoderParams,
    "vae": VAEParams,
    "evaluator": EvaluatorParams,
}
ModelParams = Annotated[
    AutoencoderParams | VAEParams | EvaluatorParams, Field(discriminator="family")
]


class EvaluateParams(Strict):
    batch_size: Annotated[int, Field(gt=0)] = 1000
    n_grid: Annotated[int, Field(gt=0, le=256)] = 16
    ssim_window: Annotated[int, Field(ge=3, le=27)] = 11
    ssim_sigma: Annotated[float, Field(gt=0)] = 1.5
    seed: int = 0

    @model_validator(mode="after")
    def _odd_window(self):
        if self.ssim_window % 2 == 0:
            raise ValueError("ssim_window must be odd")
        return self


class ExportParams(Strict):
    dir: str = "exported"
    opset: Annotated[int, Field(ge=17, le=23)] = 18
    atol: Annotated[float, Field(gt=0)] = 1e-4
    n_parity: Annotated[int, Field(gt=0, le=4096)] = 64


class Params(Strict):
    data: DataParams = DataParams()
    train: TrainParams = TrainParams()
    models: dict[InstanceName, ModelParams] = Field(min_length=1)
    evaluate: EvaluateParams = EvaluateParams()
    export: ExportParams = ExportParams()

    def model(self, instance: str) -> ModelParams:
        if instance not in self.models:
            raise UserError(
                f"params.yaml: models.{instance} does not exist; "
                f"known instances: {', '.join(sorted(self.models))}"
            )
        return self.models[instance]


def _schema_at(loc: tuple, raw: Any) -> type[BaseModel] | None:
    """The pydantic model that validates the mapping at `loc` (to list its allowed keys)."""
    model: type[BaseModel] | None = Params
    node = raw
    for depth, part in enumerate(loc):
        node = node.get(part) if isinstance(node, dict) else None
        if depth == 1 and loc[0] == "models":  # an instance: its family picks the schema
            model = FAMILY_PARAMS.get(node.get("family")) if isinstance(node, dict) else None
            continue
        field = model.model_fields.get(part) if model is not None else None
        annotation = getattr(field, "annotation", None)
        is_model = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        model = annotation if is_model else None
    return model


def _describe(error: dict, raw: Any) -> str:
    # pydantic puts the union tag into the location; the user never wrote it
    loc = tuple(p for p in error["loc"] if p not in FAMILY_PARAMS)
    path = ".".join(str(p) for p in loc)
    families = ", ".join(FAMILY_PARAMS)
    if error["type"] == "extra_forbidden":
        schema = _schema_at(loc[:-1], raw)
        allowed = ", ".join(sorted(schema.model_fields)) if schema else "see params.yaml"
        return f"{path}: unknown key; allowed keys here: {allowed}"
    if error["type"] == "union_tag_invalid":
        return (
            f"{path}.family: unknown family {error['input'].get('family')!r}; allowed: {families}"
        )
    if error["type"] == "union_tag_not_found":
        return f"{path}.family: missing; allowed: {families}"
    given = error.get("input")
    shown = "" if isinstance(given, dict) or given is None else f" (got {given!r})"
    return f"{path or '<top>'}: {error['msg']}{shown}"


def parse_params(raw: Any, source: str = "params.yaml") -> Params:
    if not isinstance(raw, dict):
        raise UserError(f"{source}: expected a mapping of sections (data, train, models, ...)")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        lines = [_describe(e, raw) for e in exc.errors()]
        raise UserError(
            f"{source} is invalid ({len(lines)} problem{'s' if len(lines) > 1 else ''}); "
            "fix these keys and run again:\n  " + "\n  ".join(lines)
        ) from None


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: params file not found; run from the repository root")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({exc}); fix the syntax and run again") from None
    return parse_params(raw, str(path))


def section_dict(params: Params, *path: str) -> dict:
    """A params section as plain data, for logging to MLflow."""
    node: Any = params
    for part in path:
        node = node[part] if isinstance(node, dict) else getattr(node, part)
    return node.model_dump(mode="json") if isinstance(node, BaseModel) else node
