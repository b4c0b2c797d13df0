"""The real `dvc repro` in a temporary copy of the repository, on tiny params, logging to a real
`mlflow server` (sqlite backend, its own artifact store) as a team's runs would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import yaml
from mlflow.tracking import MlflowClient

from helpers import REPO
from pipeline_runs import (
    DATASET,
    EVALUATOR_EPOCHS,
    SAME_PATH_AS_AE_K32,
    copy_repo,
    dvc,
    tiny_params,
)
from server_helpers import free_port, stop, wait_until_up

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory) -> Path:
    return copy_repo(tmp_path_factory.mktemp("repo"), tiny_params())


@pytest.fixture(scope="module")
def server_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mlflow-server")


@pytest.fixture(scope="module")
def tracking_server(server_dir) -> Iterator[str]:
    """`mlflow server` as docs/team.md starts it, on a free loopback port; stopped at the end."""
    port = free_port()
    log_path = server_dir / "server.log"
    # its log goes to a file: a pipe nobody reads fills up and blocks the server mid-request
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
             "--workers", "1", "--backend-store-uri", f"sqlite:///{server_dir / 'mlflow.db'}",
             "--artifacts-destination", str(server_dir / "artifacts")],
            cwd=server_dir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_until_up(url + "/health", server, timeout=120)
        except AssertionError as error:
            raise AssertionError(f"{error}\n{log_path.read_text()[-4000:]}") from None
        yield url
    finally:
        stop(server, group=True)


@pytest.fixture(scope="module")
def reproduced(repo_copy, tracking_server) -> Path:
    dvc(repo_copy, "repro", tracking_uri=tracking_server)
    return repo_copy


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_prepare_outputs(reproduced):
    data = read_json(reproduced / "metrics/data.json")
    assert data["train_count"] == 512 and data["test_count"] == 256
    manifest = read_json(reproduced / "data/prepared/manifest.json")
    assert manifest["dataset"] == DATASET and manifest["counts"] == {"train": 512, "test": 256}
    # the CycleGAN's domains: the two training halves, and the test set's true pairs
    assert manifest["domains"]["counts"] == {"train_a": 256, "train_b": 256, "test": 256}


PARAMS = tiny_params()
INSTANCES = list(PARAMS["models"])
FAMILY = {name: model["family"] for name, model in PARAMS["models"].items()}
AUTOENCODERS = {name for name, family in FAMILY.items() if family == "autoencoder"}
STEPS = 512 // 64
# the first logged columns of each family's training curve (monitor columns follow)
LOGGED = {
    "ae_k32": "loss,recon_loss", "ae_sparse": "loss,recon_loss,penalty",
    "ae_denoise": "loss,recon_loss,plain_loss", "vae": "loss,recon,kl",
    "gan": "d_loss,d_grad_norm,d_real,d_fake,g_grad_norm,g_loss",
    "cyclegan": "loss,g_adv_ab,g_adv_ba,cycle_a,cycle_b,identity_a,identity_b,d_a,d_b",
    "srresnet": "mse", "srgan": "mse",
}  # fmt: skip
MONITORED = {
    "autoencoder": {"monitor_test_mse", "monitor_recon_accuracy"},
    "vae": {"monitor_fid", "monitor_recall", "monitor_recon_accuracy"},
    "gan": {"monitor_fid", "monitor_precision", "monitor_recall", "monitor_class_coverage"},
    "cgan": {"monitor_fid", "monitor_recall", "monitor_class_kl", "monitor_class_9"},
    "cyclegan": {"monitor_l1_ab", "monitor_l1_ba", "monitor_label_preservation"},
    "srgan": {"monitor_psnr", "monitor_accuracy"},
}
GRAPHS = {"autoencoder": {"encoder", "decoder"}, "vae": {"encoder", "decoder"},
          "gan": {"generator"}, "cgan": {"generator"},
          "cyclegan": {"generator_ab", "generator_ba"}, "srgan": {"generator"}}  # fmt: skip
TRANSLATION_KEYS = {"l1", "mse", "psnr", "ssim", "identity", "l1_ratio_vs_identity", "cycle_l1",
                    "fid", "fid_true_pairs"}  # fmt: skip
UPSCALING_KEYS = {"psnr", "ssim", "mse", "fid", "accuracy", "psnr_y", "ssim_y",
                  "perceptual_distance", "perceptual_by_block"}  # fmt: skip
SAMPLE_KEYS = {"fid", "kid", "kid_std", "precision", "recall", "density", "coverage",
               "class_coverage", "class_kl", "classifier_score", "memorisation"}  # fmt: skip


def test_every_lecture_model_is_an_instance():
    lecture = {"ae_k2", "ae_k8", "ae_k32", "ae_sparse", "ae_denoise", "vae_lecture", "vae", "gan",
               "cgan", "cyclegan", "srresnet", "srgan"}  # fmt: skip
    default = yaml.safe_load((REPO / "params.yaml").read_text())["models"]
    assert lecture <= set(default)
    # the tiny DAG leaves out only instances whose code path another one runs
    assert lecture - set(SAME_PATH_AS_AE_K32) <= set(INSTANCES)
    for twin in SAME_PATH_AS_AE_K32:
        assert {k: v for k, v in default[twin].items() if k != "latent_dim"} == {
            k: v for k, v in default["ae_k32"].items() if k != "latent_dim"
        }


def test_evaluator_and_reference(reproduced):
    train = read_json(reproduced / "metrics/train/evaluator.json")
    assert train["steps"] == EVALUATOR_EPOCHS * 512 // 32
    accuracy = read_json(reproduced / "metrics/eval/evaluator.json")["accuracy"]
    assert 0.2 < accuracy <= 1  # 80 steps on 512 images: well above chance (0.1)
    reference = read_json(reproduced / "metrics/eval/reference.json")
    assert set(reference) >= SAMPLE_KEYS and reference["n_samples"] == 200
    assert reference["feature_space"] == "evaluator (classes)"
    assert reference["precision"] > 0.5 and reference["recall"] > 0.5
    assert (reproduced / "data/reference/features.pt").stat().st_size > 0
    parity = read_json(reproduced / "metrics/export/evaluator.json")
    assert parity["classifier"]["max_abs_diff"] <= 1e-4


@pytest.mark.parametrize("instance", INSTANCES)
def test_train_outputs(reproduced, instance):
    final = read_json(reproduced / f"metrics/train/{instance}.json")
    assert final["steps"] == STEPS
    rows = (reproduced / f"plots/train/{instance}.csv").read_text().splitlines()
    assert len(rows) == 1 + STEPS
    header = rows[0].split(",")
    assert header[:2] == ["step", "epoch"]
    if instance in LOGGED:
        assert ",".join(header[2:]).startswith(LOGGED[instance])
    # watched in the evaluator space every train.monitor_every steps (4 here): rows 4 and 8
    assert MONITORED[FAMILY[instance]] <= set(header)
    column = header.index(sorted(MONITORED[FAMILY[instance]])[0])
    filled = [row.split(",")[0] for row in rows[1:] if row.split(",")[column] != ""]
    assert filled == ["4", "8"]
    if FAMILY[instance] in ("gan", "cgan"):
        assert "oscillation_index" in final and final["collapse"]["recall_final"] >= 0
    assert (reproduced / f"models/{instance}/model.pt").stat().st_size > 0
    assert not (reproduced / f"checkpoints/{instance}/last.pt").exists()


@pytest.mark.parametrize("instance", INSTANCES)
def test_evaluate_outputs(reproduced, instance):
    metrics = read_json(reproduced / f"metrics/eval/{instance}.json")
    family = metrics["family"]
    assert family == FAMILY[instance] and metrics["train_seconds"] > 0
    assert metrics["feature_space"] == "evaluator (classes)" and "class_metrics" not in metrics
    if family == "autoencoder":
        assert {"mse", "psnr", "ssim", "latent_dim", "recon_accuracy"} <= set(metrics)
        assert set(metrics["pca"]) == {"mse", "psnr", "ssim", "recon_accuracy"}
        assert 0 <= metrics["sparsity"] <= 1
    if family == "vae":
        assert {"elbo", "recon", "kl", "nll_iwae", "iwae_k", "active_units"} <= set(metrics)
        assert set(metrics["samples"]) >= SAMPLE_KEYS
    if family in ("gan", "cgan"):
        assert SAMPLE_KEYS | {"oscillation_index", "collapse"} <= set(metrics)
        assert metrics["n_samples"] == 200 and len(metrics["class_histogram"]) == 10
        # the truncation trick keeps the plain N(0, I) samples' figures beside its own
        psi = tiny_params()["models"][instance].get("truncation_psi", 1.0)
        assert metrics["truncation_psi"] == psi
        assert ("untruncated" in metrics) == (psi < 1)
        if psi < 1:
            assert set(metrics["untruncated"]) >= SAMPLE_KEYS
    if family == "cgan":
        assert len(metrics["per_class"]) == 10
        assert {"conditional_accuracy", "diversity_ratio_min", "fid_per_class_mean"} <= set(metrics)
    if family == "cyclegan":
        assert metrics["n_test"] == 256 and {"ab", "ba", "l1_ratio_min"} <= set(metrics)
        for direction in ("ab", "ba"):
            assert set(metrics[direction]) >= TRANSLATION_KEYS
            assert set(metrics[direction]["identity"]) == {"l1", "mse", "psnr", "ssim"}
        assert 0 <= metrics["ba"]["label_preservation"] <= 1
    if family == "srgan":
        assert metrics["scale"] == 4 and metrics["low_res"] == [7, 7] and metrics["n_test"] == 256
        assert set(metrics["bicubic"]) == set(metrics["model"]) == UPSCALING_KEYS
        assert metrics["psnr_gain"] == pytest.approx(metrics["psnr"] - metrics["bicubic"]["psnr"])
        assert metrics["border"] == 4 and metrics["feature_space"] == "evaluator (classes)"
        gain = metrics["psnr_y"] - metrics["bicubic"]["psnr_y"]
        assert metrics["psnr_y_gain"] == pytest.approx(gain)
        assert ("phase1" in metrics) == (metrics["variant"] == "srgan")
    if instance == "ae_denoise":
        assert set(metrics["denoising"]) == {"sigma_0.1", "sigma_0.3", "sigma_0.5"}
    index = read_json(reproduced / f"reports/figures/{instance}/figures.json")
    for name in index.values():
        assert (reproduced / f"reports/figures/{instance}/{name}").read_bytes()[:4] == b"\x89PNG"
    if family in ("gan", "cgan"):
        assert {"samples.png", "progression.png", "game.png"} <= set(index.values())
    if family == "cyclegan":
        assert {"translation_ab.png", "translation_ba.png"} <= set(index.values())
    if family == "srgan":
        assert "upscaling.png" in index.values()


def test_report_has_every_table_and_figure(reproduced):
    report = (reproduced / "reports/evaluation.md").read_text()
    for title in ("against PCA", "Sparsity of the code", "Denoising", "VAE: test-set bound",
                  "Sample quality in the feature space evaluator (classes)",
                  "reference: real test images",
                  "GAN: the game", "cGAN: the class that is asked for",
                  "CycleGAN: translation against the true pairs",
                  "SRGAN: super-resolution against bicubic"):  # fmt: skip
        assert title in report
    for instance in INSTANCES:
        assert f"| {instance} |" in report and f"figures/{instance}/" in report
    assert (
        "figures/vae_lecture/manifold.png" in report
        and "figures/ae_denoise/denoising.png" in report
        and "figures/gan/progression.png" in report
    )


@pytest.mark.parametrize("instance", INSTANCES)
def test_export_outputs_run_in_onnxruntime(reproduced, instance):
    parity = read_json(reproduced / f"metrics/export/{instance}.json")
    assert set(parity) == GRAPHS[FAMILY[instance]]
    assert all(graph["max_abs_diff"] <= 1e-4 for graph in parity.values())
    if FAMILY[instance] == "cyclegan":
        for graph in parity:
            session = ort.InferenceSession(str(reproduced / f"exported/{instance}/{graph}.onnx"))
            (out,) = session.run(None, {"image": np.full((3, 1, 28, 28), 0.5, np.float32)})
            assert out.shape == (3, 1, 28, 28) and out.min() >= 0 and out.max() <= 1
            meta = session.get_modelmeta().custom_metadata_map
            assert meta["task"] == "translate" and meta["direction"] == graph[-2:]
        return
    if FAMILY[instance] == "srgan":  # any input size: 14x14 -> 56x56 at scale 4
        session = ort.InferenceSession(str(reproduced / f"exported/{instance}/generator.onnx"))
        (out,) = session.run(None, {"image": np.full((2, 1, 14, 14), 0.5, np.float32)})
        assert out.shape == (2, 1, 56, 56) and out.min() >= 0 and out.max() <= 1
        assert session.get_modelmeta().custom_metadata_map["task"] == "upscale"
        return
    latent = read_json(reproduced / f"metrics/eval/{instance}.json")["latent_dim"]
    name = "decoder" if "decoder" in parity else "generator"
    session = ort.InferenceSession(str(reproduced / f"exported/{instance}/{name}.onnx"))
    feed = {"z": np.zeros((3, latent), dtype=np.float32)}
    if FAMILY[instance] == "cgan":
        feed["label"] = np.array([0, 5, 9], dtype=np.int64)
    (image,) = session.run(None, feed)
    assert image.shape == (3, 1, 28, 28) and image.min() >= 0 and image.max() <= 1
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["instance"] == instance and meta["task"] in ("decode", "generate")


def test_every_stage_logged_to_mlflow(reproduced, tracking_server, server_dir):
    client = MlflowClient(tracking_server)
    experiment = client.get_experiment_by_name(f"genmodels-{DATASET}")
    # the UI opens it on its runs, not on MLflow 3's GenAI traces
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    (parent,) = [r for r in runs if "dvc_repro_parent" in r.data.tags]
    stage_runs = [r for r in runs if "dvc_stage" in r.data.tags]
    stages = {run.data.tags["dvc_stage"] for run in stage_runs}
    per_instance = {f"{stage}@{m}" for stage in ("train", "evaluate", "export") for m in INSTANCES}
    evaluator = {"train_evaluator", "evaluate_evaluator", "export_evaluator"}
    assert stages == {"prepare", "report"} | evaluator | per_instance
    # one `dvc repro`: one parent run over all of its stage runs, one tag to filter them by
    assert parent.info.run_name.startswith("dvc repro ") and parent.info.status == "FINISHED"
    assert parent.data.tags["dvc_command"] == "dvc repro"
    assert {r.data.tags["mlflow.parentRunId"] for r in stage_runs} == {parent.info.run_id}
    assert {r.data.tags["dvc_repro"] for r in stage_runs} == {parent.data.tags["dvc_repro_parent"]}
    assert parent.info.end_time >= max(r.info.end_time for r in stage_runs)
    train = next(r for r in stage_runs if r.data.tags["dvc_stage"] == "train@ae_k32")
    assert train.data.params["model.latent_dim"] == "32" and "git_commit" in train.data.tags
    assert len(client.get_metric_history(train.info.run_id, "loss")) == STEPS
    assert len(client.get_metric_history(train.info.run_id, "monitor_recon_accuracy")) == 2
    # artifacts go through the server into its store, nothing into the repository
    report = next(r for r in stage_runs if r.data.tags["dvc_stage"] == "report")
    listed = {a.path for a in client.list_artifacts(report.info.run_id)}
    assert listed, "the report stage logged no artifacts"
    local = Path(client.download_artifacts(report.info.run_id, sorted(listed)[0], str(server_dir)))
    assert local.exists()
    assert any((server_dir / "artifacts").rglob("*.onnx"))
    assert not (reproduced / "mlartifacts").exists() and not (reproduced / "mlflow.db").exists()


def test_registry_holds_every_graph_with_the_metrics_its_gate_judged(reproduced, tracking_server):
    record = read_json(reproduced / "reports/registry.json")
    client = MlflowClient(tracking_server)
    names = {m.name for m in client.search_registered_models()}
    for instance in INSTANCES:
        for graph in GRAPHS[FAMILY[instance]]:
            assert f"{instance}-{graph}" in names
    for entry in record["versions"]:
        version = client.get_model_version(entry["name"], entry["version"])
        assert version.tags["gate"] == entry["gate"]
        evaluated = read_json(reproduced / f"metrics/eval/{entry['instance']}.json")
        evaluation = client.search_runs(  # the newest, which the register stage read
            [e.experiment_id for e in client.search_experiments()],
            f"tags.instance = '{entry['instance']}' and tags.dvc_stage LIKE 'evaluate%'",
            order_by=["attributes.start_time DESC"], max_results=1,
        )[0]  # fmt: skip
        # the model page lists the training run's metrics too (MLflow links them on logging)
        model_metrics = {
            m.key: m
            for m in client.get_logged_model(version.source.removeprefix("models:/")).metrics
        }
        assert entry["metrics"], entry["name"]
        for path, value in entry["metrics"].items():
            node = evaluated
            for part in path.split("."):
                node = node[part]
            metric = model_metrics[path]
            assert metric.value == value == pytest.approx(node), (entry["name"], path)
            assert metric.run_id == evaluation.info.run_id
            assert version.tags[f"eval.{path}"] == f"{node:.6g}"
    # a fresh registry: the alias exactly where the gate passed, at least the autoencoders'
    assert all(bool(e["alias"]) == (e["gate"] == "passed") for e in record["versions"])
    assert {e["instance"] for e in record["versions"] if e["alias"]} >= AUTOENCODERS


def test_the_registry_on_the_server_is_served(reproduced, tracking_server):
    """`genmodels serve --from-registry` against the server: the champions are downloaded
    through it and answer; an instance without a champion is unavailable, with the reason."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "genmodels.cli", "serve", "--from-registry", "--params",
         str(reproduced / "params.yaml"), "--port", str(port)],
        cwd=reproduced, env=dict(os.environ, MLFLOW_TRACKING_URI=tracking_server),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url + "/health", server, timeout=120)
        health = httpx.get(url + "/health", timeout=10).json()
        assert health["origin"] == "registry"
        status = {name: model["status"] for name, model in health["models"].items()}
        record = read_json(reproduced / "reports/registry.json")["versions"]
        champions = {e["instance"] for e in record if e["alias"]} & set(status)
        assert {name for name, s in status.items() if s == "ok"} == champions
        assert all(s == "unavailable" for name, s in status.items() if name not in champions)
        instance = "ae_k32"
        z = np.zeros((2, PARAMS["models"][instance]["latent_dim"]), np.float32)
        body = httpx.post(f"{url}/decode/{instance}", json={"z": z.tolist()}, timeout=30).json()
        (want,) = ort.InferenceSession(str(reproduced / f"exported/{instance}/decoder.onnx")).run(
            None, {"z": z}
        )
        np.testing.assert_allclose(np.array(body["images"], np.float32), want, atol=1e-6)
    finally:
        stop(server)


def test_dvc_metrics_and_plots_work(reproduced):
    shown = json.loads(dvc(reproduced, "metrics", "show", "--json").stdout)
    files = next(iter(shown.values()))["data"]
    instances = [*yaml.safe_load((reproduced / "params.yaml").read_text())["models"], "evaluator"]
    # declared: the data's counts and each instance's headline numbers, nothing else
    assert set(files) == {"metrics/data.json"} | {f"metrics/summary/{i}.json" for i in instances}
    for instance in instances:
        headline = files[f"metrics/summary/{instance}.json"]["data"]
        assert 1 <= len(headline) <= 10 + 7 * (instance == "evaluator")  # + the reference row
        full = read_json(reproduced / f"metrics/eval/{instance}.json")
        if "fid" in headline:
            assert headline["fid"] == full["fid"]
    dvc(reproduced, "plots", "show", "-o", "plots_html")
    page = (reproduced / "plots_html/index.html").read_text()
    assert "GAN and cGAN: discriminator and generator losses" in page  # a per-family chart


def test_second_repro_does_nothing(reproduced, tracking_server):
    out = dvc(reproduced, "repro", tracking_uri=tracking_server).stdout
    assert "Running stage" not in out


def git(root: Path, *args: str) -> None:
    identity = ["-c", "user.name=genmodels tests", "-c", "user.email=tests@genmodels.invalid"]
    subprocess.run(["git", *identity, *args], cwd=root, check=True, capture_output=True)


def test_a_dvc_remote_carries_the_run_to_a_fresh_clone_that_serves_it(reproduced, tmp_path):
    """`dvc push` to a local-folder remote; in a fresh clone `dvc pull` brings every output
    back (dvc status clean: nothing to rerun) and `genmodels serve` serves the pulled graphs."""
    remote, clone = tmp_path / "remote", tmp_path / "clone"
    dvc(reproduced, "remote", "add", "-d", "shared", str(remote))
    dvc(reproduced, "push")
    (reproduced / ".gitignore").write_text("mlflow.db\nmlartifacts/\ncheckpoints/\n")
    git(reproduced, "add", "-A")
    git(reproduced, "commit", "-q", "-m", "the tiny run")
    git(tmp_path, "clone", "-q", str(reproduced), str(clone))
    assert not list(clone.glob("exported/*/*.onnx")) and not list(clone.glob("models/*/*.pt"))
    dvc(clone, "pull")
    assert json.loads(dvc(clone, "status", "--json").stdout) == {}
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "genmodels.cli", "serve", "--params", str(clone / "params.yaml"),
         "--exported-dir", str(clone / "exported"), "--port", str(port)],
        cwd=clone, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url + "/health", server, timeout=60)
        served = httpx.get(url + "/models", timeout=10).json()["models"]
        assert set(INSTANCES) <= {m["name"] for m in served}
        assert all(m["status"] == "ok" for m in served), served
        answer = httpx.post(url + "/generate/gan", json={"n": 2, "seed": 0}, timeout=30)
        assert answer.status_code == 200, answer.text
    finally:
        stop(server)


def test_the_ablation_runs_on_dvcs_queue_and_leaves_the_workspace_as_it_was(reproduced):
    """Two GAN variants as queued experiments (tools/ablation.py on tools/sweep.py): their
    table is written, the workspace's params and git's HEAD stay, and a dirty params.yaml is
    refused before anything is queued. Needs the commit the remote test made."""

    def ablation(*args: str) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
        return subprocess.run([sys.executable, str(REPO / "tools/ablation.py"), *args],
                              cwd=reproduced, env=env, capture_output=True, text=True,
                              timeout=900)  # fmt: skip

    def head() -> tuple[str, str]:
        show = ["git", "rev-parse", "--abbrev-ref", "HEAD", "HEAD"]
        return tuple(subprocess.check_output(show, cwd=reproduced, text=True).split())

    params, before = (reproduced / "params.yaml").read_text(), head()
    result = ablation("--only", "minimax", "nonsaturating")  # the tiny params' budget
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = read_json(reproduced / "reports/ablation/gan.json")
    assert set(table) == {"minimax", "nonsaturating"}
    assert all("fid" in row for row in table.values())
    assert (reproduced / "params.yaml").read_text() == params and head() == before
    shown = dvc(reproduced, "exp", "show", "--json").stdout
    assert '"gan-minimax"' in shown and '"gan-nonsaturating"' in shown
    (reproduced / "params.yaml").write_text(params + "\n# a change\n")
    try:
        refused = ablation("--only", "minimax")
        assert refused.returncode == 2 and "uncommitted changes" in refused.stderr
        assert "params.yaml" in refused.stderr
    finally:
        (reproduced / "params.yaml").write_text(params)


def test_changing_epochs_reruns_training_and_dependents_only(reproduced, tracking_server):
    params = yaml.safe_load((reproduced / "params.yaml").read_text())
    params["models"]["ae_sparse"]["epochs"] = 2
    (reproduced / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    stale = set(json.loads(dvc(reproduced, "status", "--json").stdout))
    # the report and the registration read models: (instances and families)
    assert stale == {"train@ae_sparse", "evaluate@ae_sparse", "export@ae_sparse", "report",
                     "register"}  # fmt: skip
    out = dvc(reproduced, "repro", tracking_uri=tracking_server).stdout
    ran = {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")}
    assert ran == stale
    assert read_json(reproduced / "metrics/train/ae_sparse.json")["steps"] == 2 * STEPS
