from pathlib import Path

from regnn.logs import log_to
from regnn.metrics.summary import summarize

experiments, seeds = snakemake.params.experiments, snakemake.params.seeds
runs = [Path(p) for p in snakemake.input.runs]  # experiment-major, seed-minor (as the rule lists them)
with log_to(snakemake.log[0]):
    summarize(
        split=snakemake.wildcards.split,
        runs={e: runs[i * len(seeds):(i + 1) * len(seeds)] for i, e in enumerate(experiments)},
        baselines=dict(zip(snakemake.params.baselines, (Path(p) for p in snakemake.input.baselines))),
        table=Path(snakemake.output.table),
        latex=Path(snakemake.output.latex),
        methods_figure=Path(snakemake.output.methods),
        reactions={e: (Path(p), Path(f)) for e, p, f in zip(experiments, snakemake.input.predictions,
                                                            snakemake.output.reactions)},
        emotions_h5=Path(snakemake.input.emotions),
        settings=snakemake.params.settings,
    )
