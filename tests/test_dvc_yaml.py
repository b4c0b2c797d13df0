"""dvc.yaml declares exactly what each stage reads: every genmodels module it imports (its family's
model file for the per-instance stages), no module it does not, and the params keys that change
its outputs, so that DVC reruns what a change touches and nothing else."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from genmodels.config import EVALUATOR
from genmodels.families import FAMILIES
from helpers import REPO
from import_graph import closure

DVC_YAML = yaml.safe_load((REPO / "dvc.yaml").read_text())
MODELS = yaml.safe_load((REPO / "params.yaml").read_text())["models"]


def expanded_stages() -> dict[str, dict]:
    """name -> {script, family, deps, outs}, foreach stages expanded over params models."""
    found = {}
    for name, stage in DVC_YAML["stages"].items():
        items = MODELS.items() if "foreach" in stage else [(None, None)]
        body = stage.get("do", stage)
        for key, item in items:

            def fill(text: str, key=key, item=item) -> str:
                text = text.replace("${key}", str(key))
                return text.replace("${item.family}", str((item or {}).get("family")))

            paths = lambda entries: [fill(next(iter(e)) if isinstance(e, dict) else e)  # noqa: E731
                                     for e in entries]  # fmt: skip
            cmd = fill(body["cmd"])
            instance = re.search(r"--instance (\S+)", cmd)
            family = item["family"] if item else (EVALUATOR if instance else None)
            found[f"{name}@{key}" if key else name] = {
                "script": REPO / cmd.split()[1],
                "family": family,
                "deps": paths(body.get("deps", [])),
                "outs": paths([*body.get("outs", []), *body.get("metrics", [])]),
            }
    return found


def covered(path: Path, deps: list[str]) -> bool:
    rel = path.relative_to(REPO).as_posix()
    return any(rel == d or rel.startswith(d.rstrip("/") + "/") for d in deps)


def stage_modules(stage: dict) -> set[Path]:
    family = stage["family"]
    extra = (FAMILIES[family].recipe.partition(":")[0],) if family else ()
    return closure([stage["script"]], extra)


@pytest.mark.parametrize("name", sorted(expanded_stages()))
def test_every_module_a_stage_imports_is_a_dep(name):
    stage = expanded_stages()[name]
    assert stage["script"].relative_to(REPO).as_posix() in stage["deps"]
    missing = sorted(str(p.relative_to(REPO)) for p in stage_modules(stage)
                     if not covered(p, stage["deps"]))  # fmt: skip
    assert missing == []


def test_no_stage_depends_on_a_module_none_of_its_instances_imports():
    by_stage: dict[str, tuple[set[str], set[Path]]] = {}
    for name, stage in expanded_stages().items():
        deps, used = by_stage.setdefault(name.split("@")[0], (set(), set()))
        deps.update(d for d in stage["deps"] if d.startswith("src/"))
        used.update(stage_modules(stage))
    for name, (deps, used) in by_stage.items():
        unused = [d for d in deps if not any(covered(p, [d]) for p in used)]
        assert unused == [], name


def test_source_deps_are_modules_not_folders():
    # a folder dep would outdate every stage it covers when a module no stage imports is added
    folders = sorted({d for stage in expanded_stages().values() for d in stage["deps"]
                      if d.startswith("src/") and not d.endswith(".py")})  # fmt: skip
    assert folders == []


def placeholder(root: Path, path: str, as_dir: bool) -> None:
    target = root / path
    if target.exists():
        return
    if as_dir:
        target.mkdir(parents=True)
        (target / "placeholder").write_text(path)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path)


def dvc(root: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DVC_")}
    result = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, env=env,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def out_of_date(root: Path) -> set[str]:
    return set(json.loads(dvc(root, "status", "--json") or "{}"))


@pytest.fixture(scope="module")
def committed_copy(tmp_path_factory) -> Path:
    """The repo's code and DAG with every data dep and output a placeholder, committed to a
    fresh dvc.lock: nothing is out of date until a test changes something."""
    root = tmp_path_factory.mktemp("dag")
    for name in ("dvc.yaml", "params.yaml", ".dvcignore"):
        shutil.copy(REPO / name, root / name)
    for folder in ("src", "pipeline"):
        shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (root / ".dvc").mkdir()
    shutil.copytree(REPO / ".dvc" / "plots", root / ".dvc" / "plots")
    (root / ".dvc" / "config").write_text("[core]\n    autostage = false\n")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    for stage in expanded_stages().values():
        for path in stage["deps"] + stage["outs"]:
            placeholder(root, path, as_dir=not Path(path).suffix)
    dvc(root, "commit", "--force", "--quiet")
    assert out_of_date(root) == set()
    return root


def edit_params(root: Path, change) -> str:
    path = root / "params.yaml"
    before = path.read_text()
    params = yaml.safe_load(before)
    change(params)
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return before


def test_progress_and_serving_keys_leave_every_stage_up_to_date(committed_copy):
    def change(params):
        params["train"]["progress"] = "bar"
        params["serve"]["port"] = 8123
        params["serve"]["max_n"] = 17
        params["infer"]["tile_side"] = 96

    before = edit_params(committed_copy, change)
    try:
        assert out_of_date(committed_copy) == set()
    finally:
        (committed_copy / "params.yaml").write_text(before)


def test_a_train_key_outdates_every_train_stage_and_nothing_else(committed_copy):
    before = edit_params(committed_copy, lambda p: p["train"].update(seed=7))
    try:
        stale = out_of_date(committed_copy)
    finally:
        (committed_copy / "params.yaml").write_text(before)
    trains = {"train_evaluator", *(f"train@{key}" for key in MODELS)}
    assert stale == trains | {f"export@{key}" for key in MODELS} | {"export_evaluator"}


def test_editing_a_family_file_outdates_only_that_familys_stages(committed_copy):
    family = "srgan"
    path = committed_copy / "src" / "genmodels" / "models" / f"{family}.py"
    before = path.read_text()
    path.write_text(before + "\n# an edit\n")
    try:
        stale = out_of_date(committed_copy)
    finally:
        path.write_text(before)
    members = [key for key, model in MODELS.items() if model["family"] == family]
    assert len(members) >= 2
    assert stale == {f"{kind}@{key}" for kind in ("train", "evaluate", "export") for key in members}
