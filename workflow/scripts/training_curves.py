from pathlib import Path

from regnn.curves import plot_training_curves
from regnn.logs import log_to

with log_to(snakemake.log[0]):
    plot_training_curves(
        logs=dict(zip(snakemake.params.seeds, (Path(p) for p in snakemake.input.logs))),
        path=Path(snakemake.output[0]),
        title=f"{snakemake.wildcards.experiment}: training, seeds {', '.join(map(str, snakemake.params.seeds))}",
    )
