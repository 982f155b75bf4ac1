from pathlib import Path

from regnn.logs import log_to
from regnn.metrics.baselines import evaluate_baseline

with log_to(snakemake.log[0]):
    evaluate_baseline(
        name=snakemake.wildcards.name,
        emotions_h5=Path(snakemake.input.emotions),
        output=Path(snakemake.output[0]),
        settings=snakemake.params.settings,
        threads=snakemake.threads,
    )
