from pathlib import Path

from regnn.generation import export_official
from regnn.logs import log_to

with log_to(snakemake.log[0]):
    export_official(Path(snakemake.input[0]), Path(snakemake.output[0]))
