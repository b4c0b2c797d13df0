"""`genmodels generate | reconstruct | translate | upscale` on files the tests write, with the
tiny graphs of every kind (tests/tiny_graphs.py)."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genmodels.cli import main
from tiny_graphs import export_rgb_models

RNG = np.random.default_rng(0)


def run_cli(capsys, *args: str) -> tuple[int, str]:
    """The command's exit status and what it printed on stderr."""
    kept = logging.root.handlers[:]
    logging.root.handlers.clear()  # basicConfig binds to this test's stderr
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        logging.root.handlers[:] = kept  # later tests keep pytest's own handlers
    return code, capsys.readouterr().err


def write(path: Path, size: tuple[int, int], mode: str = "RGB", fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = {"RGB": 3, "L": 1}[mode]
    pixels = RNG.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels).save(path, format=fmt)
    return path


@pytest.fixture(autouse=True)
def no_params_file(tmp_path, monkeypatch):
    """Run where there is no params.yaml: the defaults, the families from the graphs."""
    monkeypatch.chdir(tmp_path)


def test_upscale_takes_files_folders_and_globs_and_names_each_output_after_its_input(
    tiny_exported, tmp_path, capsys
):
    photos = tmp_path / "photos"
    write(photos / "a.png", (30, 20))
    write(photos / "day" / "b.jpg", (17, 33), fmt="JPEG")
    write(photos / "night" / "c.webp", (40, 40), mode="L")
    loose = write(tmp_path / "loose.bmp", (12, 9))
    write(tmp_path / "glob1.png", (8, 8))
    write(tmp_path / "glob2.png", (9, 8))
    out = tmp_path / "up"
    code, err = run_cli(
        capsys, "upscale", "srgan", str(photos), str(loose), str(tmp_path / "glob*.png"),
        "--out", str(out), "--exported-dir", str(tiny_exported),
    )  # fmt: skip
    assert code == 0, err
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*.png"))
    assert written == ["a.png", "day/b.png", "glob1.png", "glob2.png", "loose.png", "night/c.png"]
    assert Image.open(out / "a.png").size == (60, 40)  # the tiny upscaler's 2x
    assert Image.open(out / "day" / "b.png").size == (34, 66)
    assert Image.open(out / "a.png").mode == "L"  # a grayscale model's output
    assert "6 of 6 images written" in err


@pytest.mark.faults
def test_an_unreadable_file_is_named_the_rest_are_written_and_the_status_is_1(
    tiny_exported, tmp_path, capsys
):
    folder = tmp_path / "in"
    write(folder / "good.png", (10, 10))
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (folder / "notes.png").write_text("a text file with an image's name")
    write(folder / "z_after.png", (11, 10))
    out = tmp_path / "out"
    code, err = run_cli(capsys, "upscale", "srgan", str(folder), "--out", str(out),
                        "--exported-dir", str(tiny_exported))  # fmt: skip
    assert code == 1
    assert sorted(p.name for p in out.glob("*.png")) == ["good.png", "z_after.png"]
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 2
    assert all("not a readable image" in line and "fix or remove it" in line for line in errors)
    assert any(str(folder / "broken.png") in line for line in errors)
    assert "2 of 4 images written" in err
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_a_large_image_is_tiled_and_equals_the_whole_image_run_inside(
    tiny_exported, tmp_path, capsys
):
    import onnxruntime as ort

    source = write(tmp_path / "big.png", (300, 260), mode="L")
    params = tmp_path / "tiles.yaml"
    params.write_text(
        "models:\n  ae: {family: autoencoder, epochs: 1}\ninfer: {tile_side: 64, tile_overlap: 16}\n"
    )
    out = tmp_path / "out"
    code, err = run_cli(capsys, "upscale", "srgan", str(source), "--out", str(out),
                        "--params", str(params), "--exported-dir", str(tiny_exported))  # fmt: skip
    assert code == 0, err
    tiled = np.asarray(Image.open(out / "big.png"), dtype=np.float32)
    session = ort.InferenceSession(str(tiny_exported / "srgan" / "generator.onnx"))
    image = np.asarray(Image.open(source), dtype=np.float32)[None, None] / 255
    whole = session.run(None, {"image": image})[0][0, 0]
    whole = np.floor(np.clip(whole, 0, 1) * 255 + 0.5)
    assert tiled.shape == whole.shape == (520, 600)
    assert np.abs(tiled - whole).max() <= 1  # one 8-bit step at most


def test_an_output_above_the_memory_bound_is_refused_naming_the_knob(
    tiny_exported, tmp_path, capsys
):
    source = write(tmp_path / "huge.png", (3000, 3000), mode="L")
    small = write(tmp_path / "small.png", (20, 20), mode="L")
    params = tmp_path / "tight.yaml"
    params.write_text(
        "models:\n  ae: {family: autoencoder, epochs: 1}\ninfer: {max_memory_mb: 64}\n"
    )
    code, err = run_cli(capsys, "upscale", "srgan", str(source), str(small), "--out",
                        str(tmp_path / "o"), "--params", str(params),
                        "--exported-dir", str(tiny_exported))  # fmt: skip
    assert code == 1
    assert "huge.png" in err and "infer.max_memory_mb" in err
    assert (tmp_path / "o" / "small.png").is_file()


def test_generate_draws_from_the_seed_and_names_the_classes(tiny_exported, tmp_path, capsys):
    args = ["--exported-dir", str(tiny_exported), "--n", "4", "--labels", "0,Sneaker"]
    assert run_cli(capsys, "generate", "cgan", "--seed", "5", "--out", "a", *args)[0] == 0
    assert run_cli(capsys, "generate", "cgan", "--seed", "5", "--out", "b", *args)[0] == 0
    assert run_cli(capsys, "generate", "cgan", "--seed", "6", "--out", "c", *args)[0] == 0
    names = sorted(p.name for p in Path("a").iterdir())
    # the classes by name (a "/" would make a folder), in the order given, repeated
    pairs = enumerate(("T-shirt_top", "Sneaker", "T-shirt_top", "Sneaker"))
    assert names == [f"cgan-seed5-{i:04d}-{c}.png" for i, c in pairs]
    first = [np.asarray(Image.open(Path("a") / n)) for n in names]
    again = [np.asarray(Image.open(Path("b") / n)) for n in names]
    other = [np.asarray(Image.open(Path("c") / n.replace("seed5", "seed6"))) for n in names]
    assert all(np.array_equal(x, y) for x, y in zip(first, again, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(first, other, strict=True))
    assert first[0].shape == (28, 28)


def test_generate_refuses_a_class_the_model_does_not_have(tiny_exported, capsys):
    code, err = run_cli(capsys, "generate", "cgan", "--labels", "3,12",
                        "--exported-dir", str(tiny_exported))  # fmt: skip
    assert code == 2
    assert err.strip().startswith("error: --labels: '12' is not a class; use 0 to 9 or one of ")
    assert "Ankle boot" in err
    code, err = run_cli(capsys, "generate", "gan", "--labels", "1",
                        "--exported-dir", str(tiny_exported))  # fmt: skip
    assert code == 2 and "gan is not conditional" in err


def test_reconstruct_and_translate_fit_each_file_to_the_models_size(
    tiny_exported, tmp_path, capsys
):
    shirt = write(tmp_path / "shirt.jpg", (50, 40), fmt="JPEG")
    for command, extra in (
        ("reconstruct", ["ae"]),
        ("translate", ["cyclegan", "--direction", "ba"]),
    ):
        out = tmp_path / command
        code, err = run_cli(capsys, command, extra[0], str(shirt), *extra[1:], "--out", str(out),
                            "--exported-dir", str(tiny_exported))  # fmt: skip
        assert code == 0, err
        assert Image.open(out / "shirt.png").size == (28, 28)


def test_bad_arguments_get_one_line_naming_the_thing_and_the_fix(tiny_exported, tmp_path, capsys):
    exported = ["--exported-dir", str(tiny_exported)]
    image = write(tmp_path / "x.png", (8, 8))
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    cases = {
        ("upscale", "nosuch", str(image)): "nosuch: no such model",
        ("upscale", "srgan", str(tmp_path / "missing*.png")): "no file matches it as a glob",
        ("upscale", "srgan", str(image), "--out", str(blocker / "sub")): "cannot be written",
        ("upscale", "ae", str(image)): "ae does not upscale; it serves: ",
        ("translate", "srgan", str(image)): "srgan does not translate ab",
    }
    for args, message in cases.items():
        code, err = run_cli(capsys, *args, *exported)
        assert code == 2, args
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err


def test_each_command_helps_with_its_options_and_an_example(capsys):
    for command, option in (("generate", "--labels"), ("reconstruct", "--out"),
                            ("translate", "--direction"), ("upscale", "--from-registry")):  # fmt: skip
        with pytest.raises(SystemExit) as exit_:
            main([command, "--help"])
        assert exit_.value.code == 0
        shown = capsys.readouterr().out
        assert option in shown
        assert f"example:\n  genmodels {command} " in shown


def test_the_commands_never_import_torch(tiny_exported, tmp_path):
    image = write(tmp_path / "x.png", (16, 12))
    script = (
        "import sys\n"
        "from genmodels.cli import main\n"
        "try:\n"
        f"    main(['upscale', 'srgan', {str(image)!r}, '--out', {str(tmp_path / 'o')!r},"
        f" '--exported-dir', {str(tiny_exported)!r}])\n"
        "finally:\n"
        "    print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=tmp_path, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert (tmp_path / "o" / "x.png").is_file()


def test_translate_tiles_a_fully_convolutional_graph_at_any_size(tmp_path, capsys):
    """The CycleGAN's ResNet generator takes sides that are multiples of 4: tiles of other
    sizes are mirrored up to one and cropped back."""
    exported = export_rgb_models(tmp_path / "exported")
    photo = write(tmp_path / "odd.png", (70, 45))
    params = tmp_path / "tiles.yaml"
    params.write_text(
        "models:\n  ae: {family: autoencoder, epochs: 1}\ninfer: {tile_side: 32, tile_overlap: 8}\n"
    )
    code, err = run_cli(capsys, "translate", "photo2edges", str(photo), "--out", "t",
                        "--params", str(params), "--exported-dir", str(exported))  # fmt: skip
    assert code == 0, err
    translated = Image.open(Path("t") / "odd.png")
    assert translated.size == (70, 45) and translated.mode == "RGB"
    # a grayscale file goes to the RGB model as RGB
    gray = write(tmp_path / "gray.png", (20, 24), mode="L")
    code, err = run_cli(capsys, "upscale", "photo_sr", str(gray), "--out", "u",
                        "--exported-dir", str(exported))  # fmt: skip
    assert code == 0, err
    upscaled = Image.open(Path("u") / "gray.png")
    assert upscaled.size == (40, 48) and upscaled.mode == "RGB"
    # with --no-convert it is refused by name, and a colour file beside it still runs
    colour = write(tmp_path / "colour.png", (20, 24))
    code, err = run_cli(capsys, "upscale", "photo_sr", str(gray), str(colour), "--out", "n",
                        "--exported-dir", str(exported), "--no-convert")  # fmt: skip
    assert code == 1
    [error] = [line for line in err.splitlines() if line.startswith("error:")]
    assert f"{gray}: grayscale, but the model takes RGB images" in error
    assert "leave out --no-convert" in error
    assert sorted(p.name for p in Path("n").iterdir()) == ["colour.png"]


def test_a_graph_changed_since_export_is_refused_by_name(tiny_exported, tmp_path, capsys):
    exported = Path(shutil.copytree(tiny_exported, tmp_path / "exported"))
    graph = exported / "srgan" / "generator.onnx"
    graph.write_bytes(graph.read_bytes() + b"\x00")  # still loads; no longer what was checked
    image = write(tmp_path / "x.png", (8, 8))
    code, err = run_cli(capsys, "upscale", "srgan", str(image), "--out", "o",
                        "--exported-dir", str(exported))  # fmt: skip
    assert code == 2
    assert "recorded when it was exported" in err and "dvc repro export@srgan" in err
    assert not Path("o").exists() or not list(Path("o").iterdir())
