import hashlib
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

import genmodels.export as export_mod
from genmodels.export import (
    ParityError,
    check_parity,
    export_and_check,
    export_onnx,
    random_inputs_like,
    session_for,
)
from genmodels.training.recipe import Exportable
from helpers import REPO

TOL = 1e-5


class Decoder(nn.Module):
    """Linear -> ConvTranspose2d -> Conv2d -> Sigmoid, like the AE/VAE/GAN decoders."""

    def __init__(self, z_dim=8):
        super().__init__()
        self.fc = nn.Linear(z_dim, 16 * 7 * 7)
        self.up = nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.out = nn.Conv2d(8, 1, 3, padding=1)

    def forward(self, z):
        h = torch.relu(self.fc(z)).view(-1, 16, 7, 7)
        return torch.sigmoid(self.out(torch.relu(self.bn(self.up(h)))))


class CondGenerator(nn.Module):
    """A label embedding concatenated with a float input, like the cGAN generator."""

    def __init__(self, z_dim=8, classes=10):
        super().__init__()
        self.emb = nn.Embedding(classes, 6)
        self.fc = nn.Linear(z_dim + 6, 28 * 28)

    def forward(self, noise, y):  # argument names differ from the graph's on purpose
        return torch.sigmoid(self.fc(torch.cat([noise, self.emb(y)], dim=1))).view(-1, 1, 28, 28)


class Upscaler(nn.Module):
    """Conv2d -> PixelShuffle x2, like the SRGAN generator: works at any input size."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x):
        return torch.sigmoid(self.shuffle(self.conv(x)))


def mlp_exportable():
    torch.manual_seed(0)
    return Exportable(
        name="mlp",
        module=nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 3)),
        example_inputs=(torch.randn(1, 5),),  # batch 1 example: the axis must stay dynamic
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "batch"}},
        doc="a small MLP",
        metadata={"family": "test", "latent_dim": "5"},
    )


def decoder_exportable():
    torch.manual_seed(1)
    module = Decoder()
    with torch.no_grad():  # non-trivial running stats, so eval-mode BatchNorm matters
        module.bn.running_mean.uniform_(-0.5, 0.5)
        module.bn.running_var.uniform_(0.5, 2.0)
    return Exportable(
        name="decoder",
        module=module,
        example_inputs=(torch.randn(4, 8),),
        input_names=["z"],
        output_names=["images"],
        dynamic_axes={"z": {0: "batch"}},
    )


def cond_exportable():
    torch.manual_seed(2)
    return Exportable(
        name="generator",
        module=CondGenerator(),
        example_inputs=(torch.randn(3, 8), torch.tensor([0, 9, 4])),
        input_names=["z", "labels"],
        output_names=["images"],
        dynamic_axes={"z": {0: "batch"}, "labels": {0: "batch"}},
    )


def upscaler_exportable():
    torch.manual_seed(3)
    return Exportable(
        name="upscaler",
        module=Upscaler(),
        example_inputs=(torch.rand(2, 1, 7, 7),),
        input_names=["low_res"],
        output_names=["high_res"],
        dynamic_axes={"low_res": {0: "batch", 2: "height", 3: "width"}},
    )


FACTORIES = [mlp_exportable, decoder_exportable, cond_exportable, upscaler_exportable]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Each test graph exported once: name -> (exportable, path)."""
    out = {}
    for factory in FACTORIES:
        exportable = factory()
        path = tmp_path_factory.mktemp(exportable.name) / f"{exportable.name}.onnx"
        out[exportable.name] = (exportable, export_onnx(exportable, path, opset=18))
    return out


@pytest.mark.parametrize("name", ["mlp", "decoder", "generator", "upscaler"])
def test_parity_at_batch_1_and_7(exported, name):
    exportable, path = exported[name]
    inputs = random_inputs_like(exportable, batch_sizes=(1, 7))
    assert check_parity(exportable, path, inputs) < TOL
    session = session_for(path)
    for batch in inputs:
        feed = {n: t.numpy() for n, t in zip(exportable.input_names, batch, strict=True)}
        (out,) = session.run(None, feed)
        assert out.shape[0] == batch[0].shape[0]


def test_pixel_shuffle_graph_takes_any_spatial_size(exported):
    exportable, path = exported["upscaler"]
    session = session_for(path)
    for size in (7, 14):
        x = torch.rand(3, 1, size, size)
        (out,) = session.run(None, {"low_res": x.numpy()})
        assert out.shape == (3, 1, 2 * size, 2 * size)
        assert check_parity(exportable, path, [(x,)]) < TOL
    assert session.get_inputs()[0].shape == ["batch", 1, "height", "width"]


def test_labels_are_int64_and_share_the_batch_dim(exported):
    _, path = exported["generator"]
    inputs = session_for(path).get_inputs()
    assert [(i.name, i.type) for i in inputs] == [
        ("z", "tensor(float)"),
        ("labels", "tensor(int64)"),
    ]
    assert inputs[0].shape[0] == inputs[1].shape[0] == "batch"


def test_names_metadata_and_opset(exported):
    exportable, path = exported["mlp"]
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == ["x"]
    assert [o.name for o in model.graph.output] == ["y"]
    assert {o.domain: o.version for o in model.opset_import}[""] == 18
    props = {p.key: p.value for p in model.metadata_props}
    assert props == {
        "family": "test",
        "latent_dim": "5",
        "doc": "a small MLP",
        "input_names": "x",
        "output_names": "y",
        "producer": "genmodels",
    }
    gen_props = {p.key: p.value for p in onnx.load(str(exported["generator"][1])).metadata_props}
    assert gen_props["input_names"] == "z,labels"


def test_export_writes_one_self_contained_file(exported):
    for _, path in exported.values():
        assert [p.name for p in path.parent.iterdir()] == [path.name]
        # loading without the directory's other files works: no external data
        model = onnx.load_from_string(path.read_bytes())
        assert not any(
            onnx.external_data_helper.uses_external_data(t) for t in model.graph.initializer
        )


def test_random_inputs_like():
    exportable = cond_exportable()
    batches = random_inputs_like(exportable, batch_sizes=(1, 5), seed=0)
    assert [tuple(t.shape) for t in batches[1]] == [(5, 8), (5,)]
    z, labels = batches[1]
    assert z.dtype == torch.float32 and labels.dtype == torch.int64
    assert labels.min() >= 0 and labels.max() <= 9
    assert (z < 0).any()  # 2-D float input: normal, not uniform
    images = random_inputs_like(upscaler_exportable(), batch_sizes=(7,))[0][0]
    assert images.shape == (7, 1, 7, 7) and images.min() >= 0 and images.max() < 1
    again = random_inputs_like(exportable, batch_sizes=(1, 5), seed=0)
    assert all(torch.equal(a, b) for a, b in zip(batches[1], again[1], strict=True))


def test_changed_weights_break_parity(tmp_path):
    exportable = mlp_exportable()
    path = export_onnx(exportable, tmp_path / "mlp.onnx", opset=18)
    inputs = random_inputs_like(exportable)
    assert check_parity(exportable, path, inputs) < TOL
    with torch.no_grad():
        exportable.module[2].bias.add_(0.5)
    assert check_parity(exportable, path, inputs) == pytest.approx(0.5, abs=1e-5)


def test_export_and_check_reports_every_graph_before_failing(tmp_path, monkeypatch):
    good, bad = mlp_exportable(), upscaler_exportable()
    bad.real_inputs = (torch.rand(5, 1, 7, 7),)
    real_export = export_mod.export_onnx

    def export_then_perturb(exportable, path, opset):
        path = real_export(exportable, path, opset)
        if exportable.name == "upscaler":
            with torch.no_grad():
                exportable.module.conv.bias.add_(0.1)
        return path

    monkeypatch.setattr(export_mod, "export_onnx", export_then_perturb)
    out_dir = tmp_path / "instance"
    export_and_check([mlp_exportable()], out_dir, opset=18, atol=TOL, real_batch=2)
    before = {p.name: p.read_bytes() for p in out_dir.iterdir()}
    # the bad graph comes first: the good one must still be exported and checked
    with pytest.raises(ParityError, match=r"upscaler differs by .* \(tolerance 1e-05\)") as err:
        export_and_check([bad, good], out_dir, opset=18, atol=TOL, real_batch=2)
    report = err.value.report
    assert set(report) == {"upscaler", "mlp"}
    assert report["upscaler"]["max_abs_diff"] > TOL
    assert report["mlp"]["max_abs_diff"] < TOL
    # all or nothing: the previous graphs stay, and no staging folder or temporary file is left
    assert {p.name: p.read_bytes() for p in out_dir.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["instance"]


def test_export_swaps_in_checked_graphs_with_their_checksums(tmp_path):
    out_dir = tmp_path / "instance"
    out_dir.mkdir()
    (out_dir / "stale.onnx").write_bytes(b"an old graph no longer exported")
    killed = tmp_path / ".instance.staging"  # what an export killed with SIGKILL leaves
    killed.mkdir()
    (killed / ".mlp.onnx.x1y2.tmp").write_bytes(b"half a graph")
    export_and_check([mlp_exportable()], out_dir, opset=18, atol=TOL, real_batch=2)
    assert sorted(p.name for p in out_dir.iterdir()) == ["checksums.json", "mlp.onnx"]
    recorded = json.loads((out_dir / "checksums.json").read_text())
    assert recorded == {"mlp.onnx": hashlib.sha256((out_dir / "mlp.onnx").read_bytes()).hexdigest()}
    assert [p.name for p in tmp_path.iterdir()] == ["instance"]

    # killed between its two renames: the instance folder is aside; the next export restores it
    os.rename(out_dir, tmp_path / ".instance.previous")
    monkey = export_mod.export_onnx
    try:
        export_mod.export_onnx = lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt())
        with pytest.raises(KeyboardInterrupt):
            export_and_check([mlp_exportable()], out_dir, opset=18, atol=TOL, real_batch=2)
    finally:
        export_mod.export_onnx = monkey
    assert sorted(p.name for p in out_dir.iterdir()) == ["checksums.json", "mlp.onnx"]
    assert [p.name for p in tmp_path.iterdir()] == ["instance"]


def test_export_and_check_report(tmp_path):
    exportable = cond_exportable()
    exportable.real_inputs = (torch.randn(5, 8), torch.arange(5))
    report = export_and_check([exportable], tmp_path / "cgan", opset=17, atol=TOL, real_batch=2)
    entry = report["generator"]
    assert entry["max_abs_diff"] < TOL
    assert entry == {
        "max_abs_diff": entry["max_abs_diff"],
        "path": str(tmp_path / "cgan" / "generator.onnx"),
        "opset": 17,
        "inputs": ["z", "labels"],
        "outputs": ["images"],
    }
    model = onnx.load(entry["path"])
    assert {o.domain: o.version for o in model.opset_import}[""] == 17


def test_max_abs_diff_treats_mismatches_as_infinite():
    diff = export_mod._max_abs_diff
    assert diff(np.zeros(3), np.zeros(4)) == float("inf")
    assert diff(np.array([np.nan, 1.0]), np.array([np.nan, 1.5])) == 0.5
    assert diff(np.array([np.nan]), np.array([0.0])) == float("inf")


def test_prelu_is_exported_rewritten_with_the_same_numbers(tmp_path):
    torch.manual_seed(0)
    module = nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1), nn.PReLU(6), nn.Conv2d(6, 1, 3, padding=1), nn.PReLU()
    ).eval()
    with torch.no_grad():  # slopes far from the default 0.25, and a negative one
        module[1].weight.copy_(torch.linspace(-0.5, 2.0, 6))
        module[3].weight.fill_(-0.3)
    friendly = export_mod.onnx_friendly(module)
    assert isinstance(module[1], nn.PReLU)  # the module itself is left as it was
    assert not any(isinstance(m, nn.PReLU) for m in friendly.modules())
    assert isinstance(friendly[3], nn.LeakyReLU)
    assert friendly[3].negative_slope == module[3].weight.item()
    x = torch.randn(4, 1, 9, 9)
    x[0, 0, 0, :3] = torch.tensor([0.0, -0.0, -1e-30])
    with torch.no_grad():
        assert torch.equal(friendly(x), module(x))
        flat = nn.PReLU(5)
        flat.weight.data.uniform_(-1, 1)
        v = torch.randn(3, 5)
        assert torch.equal(export_mod.onnx_friendly(flat)(v), flat(v))

    exportable = Exportable(
        name="prelu", module=module, example_inputs=(x,), input_names=("image",),
        output_names=("image_out",), dynamic_axes={"image": {0: "batch"}},
    )  # fmt: skip
    path = export_onnx(exportable, tmp_path / "prelu.onnx")
    ops = [node.op_type for node in onnx.load(path).graph.node]
    assert "PRelu" not in ops and "Relu" in ops and ops.count("LeakyRelu") == 1
    (out,) = session_for(path).run(None, {"image": x.numpy()})
    np.testing.assert_allclose(out, module(x).detach().numpy(), atol=1e-6)


@pytest.mark.parametrize("slopes", [1, 8])
def test_onnxruntime_fuses_a_shared_prelu_slope_into_its_convolution(tmp_path, slopes):
    """The reason for the LeakyReLU form: onnxruntime folds it into the conv (no pass over the
    activations of its own), which it cannot do with per-channel slopes."""
    module = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.PReLU(slopes)).eval()
    x = torch.randn(1, 8, 6, 6)
    exportable = Exportable(
        name="conv_prelu", module=module, example_inputs=(x,), input_names=("image",),
        output_names=("features",), dynamic_axes={"image": {0: "batch"}},
    )  # fmt: skip
    path = export_onnx(exportable, tmp_path / "conv_prelu.onnx")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    ops = [node.op_type for node in onnx.load(tmp_path / "optimized.onnx").graph.node]
    if slopes == 1:
        assert ops == ["FusedConv"]
    else:
        assert "FusedConv" not in ops and "Relu" in ops


def test_modules_without_prelu_are_exported_as_they_are():
    module = Decoder()
    assert export_mod.onnx_friendly(module) is module


def test_an_autoencoders_plane_is_where_its_codes_lie():
    """pipeline/export.py records the 1st and 99th percentile of each code axis of real
    images on an autoencoder's decoder; the page's latent explorer spans that range."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("export_stage", REPO / "pipeline/export.py")
    stage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage)

    class Codes(torch.nn.Module):  # codes 0..999 on axis 0, -2 * that on axis 1
        def forward(self, image):
            first = image.flatten(1)[:, 0] * 1000
            return torch.stack([first, -2 * first], dim=1)

    images = (torch.arange(1000.0) / 1000).view(1000, 1, 1, 1).expand(1000, 1, 2, 2)
    graphs = [Exportable(name="encoder", module=Codes(), example_inputs=(images[:2],),
                         input_names=["image"], output_names=["z"], dynamic_axes={})]  # fmt: skip
    [[low0, high0], [low1, high1]] = stage.latent_range(graphs, images)
    assert (low0, high0) == pytest.approx((9.99, 989.01), abs=0.01)
    assert (low1, high1) == pytest.approx((-1978.02, -19.98), abs=0.02)
    assert stage.latent_range(graphs[1:], images) is None  # no encoder: a prior, not a range
