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


class AutoencoderParams(ModelBase):
    family: Literal["autoencoder"]
    arch: Literal["mlp", "conv"] = "conv"
    latent_dim: Annotated[int, Field(gt=0, le=784)] = 32
    hidden_dims: list[Annotated[int, Field(gt=0)]] = Field(default=[512, 256], min_length=1)
    channels: list[Annotated[int, Field(gt=0)]] = Field(
        default=[32, 64], min_length=1, max_length=2
    )
    loss: Literal["mse", "bce"] = "mse"


# Each family's params class, by the `family` tag of a models.<instance> entry.
FAMILY_PARAMS: dict[str, type[ModelBase]] = {"autoencoder": AutoencoderParams}
ModelParams = Annotated[AutoencoderParams, Field(discriminator="family")]


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
    for part in loc:
        if model is None or not isinstance(node, dict):
            return None
        if model is Params and part == "models":
            node = node.get(part, {})
            model = None  # a dict of instances: the next part is an instance name
            continue
        if model is None:
            return None
        node = node.get(part) if isinstance(node, dict) else None
        field = model.model_fields.get(part)
        annotation = getattr(field, "annotation", None)
        model = (
            annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel)
            else None
        )
    return model


def _instance_schema(node: Any) -> type[BaseModel] | None:
    return FAMILY_PARAMS.get(node.get("family")) if isinstance(node, dict) else None


def _describe(error: dict, raw: Any) -> str:
    # pydantic puts the union tag into the location; the user never wrote it
    loc = tuple(p for p in error["loc"] if p not in FAMILY_PARAMS)
    path = ".".join(str(p) for p in loc)
    families = ", ".join(FAMILY_PARAMS)
    if error["type"] == "extra_forbidden":
        parent_loc = loc[:-1]
        if len(parent_loc) == 2 and parent_loc[0] == "models":
            node = raw.get("models", {}).get(parent_loc[1])
            schema = _instance_schema(node)
        else:
            schema = _schema_at(parent_loc, raw)
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
