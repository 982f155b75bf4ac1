from pathlib import Path

import _source_tree  # noqa: F401  (first: regnn from this workflow's own source tree)
from regnn.generation import export_official
from regnn.logs import log_to

with log_to(snakemake.log[0]):
    export_official(Path(snakemake.input[0]), Path(snakemake.output[0]))
