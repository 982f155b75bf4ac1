from pathlib import Path

from regnn.logs import log_to
from regnn.metrics.evaluate import evaluate_run

with log_to(snakemake.log[0]):
    evaluate_run(
        predictions_h5=Path(snakemake.input.predictions),
        emotions_h5=Path(snakemake.input.emotions),
        output=Path(snakemake.output[0]),
        settings=snakemake.params.settings,
        threads=snakemake.threads,
    )
