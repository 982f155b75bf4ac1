from pathlib import Path

import _source_tree  # noqa: F401  (first: regnn from this workflow's own source tree)
from regnn.logs import log_to
from regnn.training import train

with log_to(snakemake.log[0]):
    train(
        emotions=Path(snakemake.input.emotions),
        video_shards=[Path(p) for p in snakemake.input.video],
        audio_shards=[Path(p) for p in snakemake.input.audio],
        settings=snakemake.params.settings,
        seed=int(snakemake.wildcards.seed),
        checkpoint_dir=Path(snakemake.output.checkpoints[0]).parent,
        train_tsv=Path(snakemake.output.tsv),
        tensorboard_dir=Path(snakemake.output.tensorboard),
        resume_dir=Path(snakemake.params.resume),
        threads=snakemake.threads,
        protocol=snakemake.params.protocol,
        resampling=snakemake.params.resampling,
    )
