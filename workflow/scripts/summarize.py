from pathlib import Path

import _source_tree  # noqa: F401  (first: regnn from this workflow's own source tree)
from regnn.logs import log_to
from regnn.metrics.summary import summarize

inputs = snakemake.params.inputs  # the rule's inputs by name: runs[experiment] (one per seed), baselines[name], ...
with log_to(snakemake.log[0]):
    summarize(
        split=snakemake.wildcards.split,
        runs={e: [Path(p) for p in paths] for e, paths in inputs["runs"].items()},
        baselines={name: Path(p) for name, p in inputs["baselines"].items()},
        table=Path(snakemake.output.table),
        latex=Path(snakemake.output.latex),
        methods_figure=Path(snakemake.output.methods),
        reactions={e: (Path(inputs["predictions"][e]), Path(figure))
                   for e, figure in snakemake.params.reaction_figures.items()},
        emotions_h5=Path(snakemake.input.emotions),
        settings=snakemake.params.settings,
        skipped=Path(snakemake.input.skipped[0]) if snakemake.input.skipped else None,
        protocol=snakemake.params.protocol,
    )
