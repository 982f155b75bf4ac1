"""The result layout: where every stage writes, in one place for the rules, the CLI and the library.

Standard library only, because the workflow imports it while it parses the rule files (before any job runs,
and without the installed package's torch). Every method takes its parts as strings or numbers, so the rules
pass wildcards (`"{split}"`) and get Snakemake patterns, and the library passes values and gets real paths:

    results/dataset/{split}/cleanup.tsv, index.tsv, emotions.h5, targets.tsv (react2025), skipped.tsv (skip)
    results/features/{extractor}/{split}/shard-{k}.h5
    results/experiments/{experiment}/seed-{seed}/checkpoints/after-{NNN}-epochs.pt, train.tsv, tensorboard/, .resume/,
        predictions/{split}.h5, metrics/{split}.tsv, official/{split}/,
        reactions/{split}/clip-{k}.mp4, clip-{k}.webp, reactions.html
    results/experiments/{experiment}/training-curves.png
    results/baselines/{name}/metrics/{split}.tsv
    results/metrics/{split}.tsv, {split}.tex, figures/{split}-methods.png, figures/{split}-reactions-{e}.png
    results/logs/{rule}/.../{last part}.log
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

Part = str | int


def checkpoint_name(epochs: int) -> str:
    """The file name of the checkpoint holding the weights after `epochs` epochs of training.

    The count is explicit ("after 96 epochs"), never a 0-based epoch index: the reference's `mhp-epoch95`
    is the run's `after-096-epochs.pt`.
    """
    return f"after-{epochs:03d}-epochs.pt"


CHECKPOINT_GLOB = "after-*-epochs.pt"


@dataclass(frozen=True)
class Results:
    """The result layout under one root folder (`results` relative to the working directory by default)."""

    root: Path = Path("results")

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    # --- dataset stage ---
    def dataset_dir(self, split: Part) -> Path:
        return self.root / "dataset" / str(split)

    def cleanup_journal(self, split: Part) -> Path:
        return self.dataset_dir(split) / "cleanup.tsv"

    def index(self, split: Part) -> Path:
        return self.dataset_dir(split) / "index.tsv"

    def emotions(self, split: Part) -> Path:
        return self.dataset_dir(split) / "emotions.h5"

    def targets(self, split: Part) -> Path:
        """react2025: the evaluation target set per sample (speaker, target)."""
        return self.dataset_dir(split) / "targets.tsv"

    def skipped(self, split: Part) -> Path:
        """`data.incomplete: skip`: the samples dropped and why."""
        return self.dataset_dir(split) / "skipped.tsv"

    # --- feature stage ---
    def feature_shard(self, extractor: Part, split: Part, shard: Part) -> Path:
        return self.root / "features" / str(extractor) / str(split) / f"shard-{shard}.h5"

    def feature_shards(self, extractor: str, split: Part, shards: int) -> list[Path]:
        """Every shard file of one extractor and split (`shards` of them, numbered from 0)."""
        return [self.feature_shard(extractor, split, k) for k in range(shards)]

    # --- model stage ---
    def experiment_dir(self, experiment: Part, seed: Part) -> Path:
        return self.root / "experiments" / str(experiment) / f"seed-{seed}"

    def checkpoint_dir(self, experiment: Part, seed: Part) -> Path:
        return self.experiment_dir(experiment, seed) / "checkpoints"

    def checkpoint(self, experiment: Part, seed: Part, epoch: int) -> Path:
        return self.checkpoint_dir(experiment, seed) / checkpoint_name(epoch)

    def train_tsv(self, experiment: Part, seed: Part) -> Path:
        return self.experiment_dir(experiment, seed) / "train.tsv"

    def tensorboard_dir(self, experiment: Part, seed: Part) -> Path:
        return self.experiment_dir(experiment, seed) / "tensorboard"

    def resume_dir(self, experiment: Part, seed: Part) -> Path:
        """Where an interrupted training run keeps its state (not a declared output, so a retry finds it)."""
        return self.experiment_dir(experiment, seed) / ".resume"

    def predictions(self, experiment: Part, seed: Part, split: Part) -> Path:
        return self.experiment_dir(experiment, seed) / "predictions" / f"{split}.h5"

    def official(self, experiment: Part, seed: Part, split: Part) -> Path:
        """The predictions exported as the official evaluation script's `<split>/<speaker>/result-{j}.pth`."""
        return self.experiment_dir(experiment, seed) / "official" / str(split)

    # --- metrics stage ---
    def run_metrics(self, experiment: Part, seed: Part, split: Part) -> Path:
        return self.experiment_dir(experiment, seed) / "metrics" / f"{split}.tsv"

    def reactions_dir(self, experiment: Part, seed: Part, split: Part) -> Path:
        return self.experiment_dir(experiment, seed) / "reactions" / str(split)

    def reaction_video(self, experiment: Part, seed: Part, split: Part, clip: int) -> Path:
        return self.reactions_dir(experiment, seed, split) / f"clip-{clip}.mp4"

    def reaction_thumbnail(self, experiment: Part, seed: Part, split: Part, clip: int) -> Path:
        return self.reactions_dir(experiment, seed, split) / f"clip-{clip}.webp"

    def reaction_page(self, experiment: Part, seed: Part, split: Part) -> Path:
        """The HTML page that plays a split's reaction videos (the report item)."""
        return self.reactions_dir(experiment, seed, split) / "reactions.html"

    def training_curves(self, experiment: Part) -> Path:
        """One figure per experiment, every seed overlaid."""
        return self.root / "experiments" / str(experiment) / "training-curves.png"

    def baseline_metrics(self, name: Part, split: Part) -> Path:
        return self.root / "baselines" / str(name) / "metrics" / f"{split}.tsv"

    def metrics_table(self, split: Part) -> Path:
        return self.root / "metrics" / f"{split}.tsv"

    def metrics_latex(self, split: Part) -> Path:
        return self.root / "metrics" / f"{split}.tex"

    def methods_figure(self, split: Part) -> Path:
        return self.root / "metrics" / "figures" / f"{split}-methods.png"

    def reactions_figure(self, split: Part, experiment: Part) -> Path:
        return self.root / "metrics" / "figures" / f"{split}-reactions-{experiment}.png"

    # --- logs ---
    def log(self, rule: str, *parts: Part) -> Path:
        """`logs/<rule>.log`, or `logs/<rule>/<part>/.../<last part>.log` for a job of a rule with wildcards."""
        if not parts:
            return self.root / "logs" / f"{rule}.log"
        *folders, last = (str(p) for p in parts)
        return self.root.joinpath("logs", rule, *folders, f"{last}.log")

    def run_log(self, rule: str, experiment: Part, seed: Part, *parts: Part) -> Path:
        """The log of an experiment x seed job: `logs/<rule>/<experiment>/seed-<seed>[/...].log`."""
        return self.log(rule, experiment, f"seed-{seed}", *parts)

    def shard_log(self, extractor: Part, split: Part, shard: Part) -> Path:
        """The log of one extract job: `logs/extract/<extractor>/<split>/shard-<k>.log`."""
        return self.log("extract", extractor, split, f"shard-{shard}")


RESULTS = Results()
"""The layout the workflow writes (relative to its working directory) and the CLI's default."""
