# Config helpers and wildcard constraints shared by every rule file.
from pathlib import Path

from snakemake.exceptions import WorkflowError

DEMO = "demo_data" in config
DATA_ROOT = config["data"]["root"]
SPLITS = sorted({config["splits"]["train"], *config["splits"]["evaluate"]})

if not DEMO and not Path(DATA_ROOT).is_dir():
    raise WorkflowError(
        f"data.root {DATA_ROOT!r} does not exist. Set data.root in config/config.yaml to your REACT "
        "dataset folder (the one holding train.csv and neighbour_emotion_train.npy), or run the "
        "synthetic demo with --configfile config/demo.yaml."
    )


wildcard_constraints:
    split="|".join(SPLITS),
    shard=r"\d+",
    seed=r"\d+",


def dataset_ready():
    """The synthetic dataset folder when the demo generates it; a real dataset is not a workflow output."""
    return {"root": DATA_ROOT} if DEMO else {}


def final_targets():
    """The metrics table of every evaluated split (which pulls in the whole DAG)."""
    return expand("results/metrics/{split}.tsv", split=config["splits"]["evaluate"])
