from pathlib import Path

import _source_tree  # noqa: F401  (first: regnn from this workflow's own source tree)
from regnn import protocols
from regnn.logs import log_to

with log_to(snakemake.log[0]):
    protocols.get(snakemake.params.protocol).evaluate_run(
        predictions_h5=Path(snakemake.input.predictions),
        dataset={name: Path(path) for name, path in snakemake.input.items() if name != "predictions"},
        output=Path(snakemake.output[0]),
        settings=snakemake.params.settings,
        threads=snakemake.threads,
    )
