# Config helpers and wildcard constraints shared by every rule file. Every rule's `gpu` resource is
# gpus_for(the device setting of its stage) (regnn.devices): the SLURM profile picks partitions, not GPUs.
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

# The rules import only regnn's torch-free modules (the result layout, the settings and their defaults), from
# the workflow's own source tree: planning the DAG needs no installed package, and a deployed workflow module
# reads the same code its jobs run.
sys.path.insert(0, str(Path(workflow.current_basedir).parents[1] / "src"))

from regnn.devices import gpus_for
from regnn import protocols
from regnn.metrics.settings import resolve_settings
from regnn.paths import RESULTS
from regnn.provenance import WorkflowCode
from regnn.settings import (
    checkpoint_epochs,
    experiment_files,
    experiment_settings,
    resolve_generate_settings,
    resolve_render_settings,
)

DEMO = "demo_data" in config
DATA_ROOT = config["data"]["root"]
SPLITS = sorted({config["splits"]["train"], *config["splits"]["evaluate"]})

if not DEMO and not Path(DATA_ROOT).is_dir():
    raise WorkflowError(
        f"data.root {DATA_ROOT!r} does not exist. Set data.root in config/config.yaml to your REACT "
        "dataset folder (the one holding train.csv and neighbour_emotion_train.npy), or run the "
        "synthetic demo with --configfile config/demo.yaml."
    )


# Everything protocol-specific (REACT 2024 or MARS) is answered by this object; no rule tests the name.
PROTOCOL = protocols.get(config["data"].get("protocol"))
INCOMPLETE = config["data"].get("incomplete", "error")
try:
    PROTOCOL.check_data(config["data"])
except ValueError as err:
    raise WorkflowError(str(err)) from None
# The protocol's train/generate defaults (react2025: the 2025/2026 baseline's) under the config's own values,
# before any rule reads those sections.
config.update(PROTOCOL.configured(config))
TRAIN_SPLIT = config["splits"]["train"]
CHECKPOINT_EPOCHS = checkpoint_epochs(config["train"])
GENERATE = resolve_generate_settings(config["generate"])
GENERATE_EPOCH = GENERATE["epoch"] or CHECKPOINT_EPOCHS[-1]
if GENERATE_EPOCH not in CHECKPOINT_EPOCHS:
    raise WorkflowError(f"generate.epoch {GENERATE_EPOCH} has no checkpoint; checkpoints: {CHECKPOINT_EPOCHS}")
EVALUATE = resolve_settings(config["evaluate"])
# Only the settings that change the numbers: editing figure settings must not rerun hours of FRD.
METRIC_SETTINGS = PROTOCOL.metric_settings(EVALUATE)
# react2025 trains on targets length-aligned as its metrics align them (evaluate.resampling); react2024: None
TRAIN_RESAMPLING = PROTOCOL.training_resampling(EVALUATE)
BASELINE_NAMES = EVALUATE["baselines"]["names"]
if set(BASELINE_NAMES) - set(PROTOCOL.baselines):
    raise WorkflowError(
        f"evaluate.baselines.names {sorted(set(BASELINE_NAMES) - set(PROTOCOL.baselines))} are not "
        f"available with data.protocol {PROTOCOL.name} (choose from {', '.join(PROTOCOL.baselines)})"
    )
RENDER = resolve_render_settings(config.get("render"))
RENDER_SPLITS = RENDER["splits"] if RENDER["splits"] is not None else config["splits"]["evaluate"]


# Each rule's params name the code its job runs (regnn.provenance): `*code("<script>.py")`. A script that
# calls the protocol adds the protocol method it runs, since the protocol module is imported by name.
code = WorkflowCode(workflow.current_basedir)
PROTOCOL_MODULE = type(PROTOCOL).__module__


wildcard_constraints:
    split="|".join(SPLITS),
    shard=r"\d+",
    seed=r"\d+",


def dataset_ready():
    """The synthetic dataset folder when the demo generates it; a real dataset is not a workflow output."""
    return {"root": DATA_ROOT} if DEMO else {}


def dataset_files(split):
    """What index_split writes for a split, by name (index, emotions, and per protocol targets / skipped)."""
    return {name: str(path) for name, path in PROTOCOL.dataset_outputs(split, INCOMPLETE).items()}


def scoring_inputs(split):
    """The dataset files the metrics read: everything index_split writes but the index itself."""
    return {name: path for name, path in dataset_files(split).items() if name != "index"}


def experiment_inputs(wildcards, split):
    """What an experiment's train or generate job reads: the split's emotions and its two extractors' shards."""
    return experiment_files(config, wildcards.experiment, split)


def summary_inputs(split):
    """What a split's summary reads, by name: each experiment's metrics per seed (its table row), each
    baseline's metrics, and the predictions each experiment's reaction figure draws (its first seed)."""
    experiments, seeds = list(config["experiments"]), config["seeds"]
    return {
        "runs": {e: [str(RESULTS.run_metrics(e, s, split)) for s in seeds] for e in experiments},
        "baselines": {name: str(RESULTS.baseline_metrics(name, split)) for name in BASELINE_NAMES},
        "predictions": {e: str(RESULTS.predictions(e, seeds[0], split)) for e in experiments},
    }


def final_targets():
    """The metrics table of every evaluated split (which pulls in the whole DAG), the training curves and
    reaction videos (for a protocol whose clips the renderer handles: react2024), plus the official-layout
    export of the predictions when `generate.export_official` asks for it. A protocol without model stages
    gets its evaluated splits' baselines instead."""
    splits = config["splits"]["evaluate"]
    if not PROTOCOL.model_stages:
        return [RESULTS.baseline_metrics(name, split) for name in BASELINE_NAMES for split in splits]
    targets = [RESULTS.metrics_table(split) for split in splits]
    targets += [RESULTS.training_curves(e) for e in config["experiments"]]
    if RENDER["clips"] > 0 and PROTOCOL.renders:  # reaction videos of each experiment's first seed
        targets += [
            RESULTS.reaction_page(e, config["seeds"][0], split)
            for e in config["experiments"]
            for split in RENDER_SPLITS
        ]
    if GENERATE["export_official"]:
        targets += [
            RESULTS.official(e, s, split) for e in config["experiments"] for s in config["seeds"] for split in splits
        ]
    return targets
