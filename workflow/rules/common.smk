# Config helpers and wildcard constraints shared by every rule file.
import re
from pathlib import Path

from snakemake.exceptions import WorkflowError

from regnn.metrics.settings import resolve_settings
from regnn.settings import checkpoint_epochs, checkpoint_name, experiment_settings, resolve_generate_settings

DEMO = "demo_data" in config
DATA_ROOT = config["data"]["root"]
SPLITS = sorted({config["splits"]["train"], *config["splits"]["evaluate"]})

if not DEMO and not Path(DATA_ROOT).is_dir():
    raise WorkflowError(
        f"data.root {DATA_ROOT!r} does not exist. Set data.root in config/config.yaml to your REACT "
        "dataset folder (the one holding train.csv and neighbour_emotion_train.npy), or run the "
        "synthetic demo with --configfile config/demo.yaml."
    )


TRAIN_SPLIT = config["splits"]["train"]
EXPERIMENT_DIR = "results/experiments/{experiment}/seed-{seed}"
CHECKPOINT_EPOCHS = checkpoint_epochs(config["train"])
GENERATE = resolve_generate_settings(config["generate"])
GENERATE_EPOCH = GENERATE["epoch"] or CHECKPOINT_EPOCHS[-1]
if GENERATE_EPOCH not in CHECKPOINT_EPOCHS:
    raise WorkflowError(f"generate.epoch {GENERATE_EPOCH} has no checkpoint; checkpoints: {CHECKPOINT_EPOCHS}")
EVALUATE = resolve_settings(config["evaluate"])
# Only the settings that change the numbers: editing figure settings must not rerun hours of FRD.
METRIC_SETTINGS = {"corrected": EVALUATE["corrected"], "device": EVALUATE["device"]}
BASELINE_NAMES = EVALUATE["baselines"]["names"]


wildcard_constraints:
    split="|".join(SPLITS),
    shard=r"\d+",
    seed=r"\d+",


def dataset_ready():
    """The synthetic dataset folder when the demo generates it; a real dataset is not a workflow output."""
    return {"root": DATA_ROOT} if DEMO else {}


def feature_shards(extractor, split):
    """The shard files holding one extractor's features for one split (inputs of train / generate)."""
    shards = int(config["extractors"][extractor].get("shards", 1))
    return [f"results/features/{extractor}/{split}/shard-{k}.h5" for k in range(shards)]


def experiment_inputs(wildcards, split):
    """What an experiment's train or generate job reads: the split's emotions and its two extractors' shards."""
    s = experiment_settings(config, wildcards.experiment)
    return {
        "emotions": f"results/dataset/{split}/emotions.h5",
        "video": feature_shards(s["video"], split),
        "audio": feature_shards(s["audio"], split),
    }


def gpus_for(device):
    """GPUs a train or generate job asks for: none when its settings pin it to the CPU."""
    return 0 if device == "cpu" else 1


def metric_runs(split):
    """Every experiment x seed metrics file of a split (the summary's rows)."""
    return [f"results/experiments/{e}/seed-{s}/metrics/{split}.tsv" for e in config["experiments"]
            for s in config["seeds"]]


def final_targets():
    """The metrics table of every evaluated split (which pulls in the whole DAG), plus the official-layout
    export of the predictions when `generate.export_official` asks for it."""
    splits = config["splits"]["evaluate"]
    targets = expand("results/metrics/{split}.tsv", split=splits)
    if GENERATE["export_official"]:
        targets += expand(f"{EXPERIMENT_DIR}/official/{{split}}", experiment=config["experiments"],
                          seed=config["seeds"], split=splits)
    return targets
