from pathlib import Path

import _source_tree  # noqa: F401  (first: regnn from this workflow's own source tree)
from regnn import protocols
from regnn.logs import log_to

with log_to(snakemake.log[0]) as log:
    data = snakemake.params.data
    protocol = protocols.get(data.get("protocol"))
    outputs = {name: Path(path) for name, path in snakemake.output.items()}
    n = protocol.index_split(data["root"], snakemake.wildcards.split, outputs, data)
    log.info("indexed %d samples of %s (%s)", n, snakemake.wildcards.split, protocol.name)
