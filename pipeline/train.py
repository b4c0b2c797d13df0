"""train@<instance>: trains one model instance with the Trainer; resumes from its checkpoint.

Under torchrun (`make train-ddp`) every process runs this script: DistributedDataParallel
over gloo (CPU) or nccl (CUDA), each process on its shard of every batch, rank 0 recording.
"""

import hashlib
import json
import logging

import torch

from genmodels.config import EVALUATOR, load_params, section_dict
from genmodels.data.prepared import load_prepared
from genmodels.models import build_recipe, data_info
from genmodels.models.evaluator import load_space
from genmodels.stage import dvc_stage_name, run_stage
from genmodels.tracking import stage_run
from genmodels.training import Budget, Trainer, TrainOutputs, distributed
from genmodels.training.runtime import seed_everything, select_device, set_threads


def main(args) -> None:
    params = load_params(args.params)
    model = params.model(args.instance)
    set_threads(params.train.num_threads)
    seed_everything(params.train.seed)
    world = distributed.world_from_env()
    device = distributed.start(world, select_device(params.train.device))
    if not world.is_main:  # one voice in the logs
        logging.getLogger().setLevel(logging.WARNING)
    data = load_prepared(params.data.prepared_dir)
    info = data_info(data)
    recipe = build_recipe(model, info, device, args.instance)
    extra_data = recipe.attach_data(params.data.prepared_dir)  # e.g. the CycleGAN's domains
    if args.instance != EVALUATOR and (params.train.monitor_every or recipe.needs_space):
        # every model is watched in the evaluator's feature space while it trains (and SRGAN's
        # content loss is computed in it); building the evaluator must not move the RNG the
        # training draws from
        with torch.random.fork_rng(devices=[]):
            space = load_space(params, data, device)
        recipe.attach_space(space, params.train.monitor_samples)

    logged = {"train": section_dict(params, "train"), "model": model.model_dump(mode="json")}
    if recipe.space is not None:  # the evaluator shapes the monitored numbers: a new one, anew
        logged["evaluator"] = params.evaluator.model_dump(mode="json")
    # everything that changes the numbers; a checkpoint from anything else is not resumed
    identity = {**logged, "data": data.manifest.get("source"), "counts": len(data.train_images)}
    identity["train"] = {k: v for k, v in identity["train"].items() if k != "progress"}
    identity["processes"] = world.size
    if extra_data:
        identity["extra_data"] = extra_data
    fingerprint = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()

    def open_run(run_id):
        tags = {"instance": args.instance, "family": model.family, "device": str(device),
                "processes": str(world.size)}  # fmt: skip
        return stage_run(
            dvc_stage_name("train", args.instance), info.dataset, logged, run_id=run_id, tags=tags
        )

    trainer = Trainer(
        recipe,
        data.train_images,
        data.train_labels,
        budget=Budget(epochs=model.epochs, steps=model.steps),
        batch_size=model.batch_size,
        settings=params.train,
        outputs=TrainOutputs.for_instance(args.instance, params.train.checkpoint_dir),
        fingerprint=fingerprint,
        open_run=open_run,
        name=dvc_stage_name("train", args.instance),
        world=world,
    )
    trainer.fit()
    distributed.stop(world)  # on an error, torchrun stops the other processes


if __name__ == "__main__":
    run_stage(
        main,
        "Train one model instance from params.yaml",
        lambda p: p.add_argument("--instance", required=True, help="a key of models: in params"),
    )
