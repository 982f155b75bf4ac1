import _source_tree  # noqa: F401  (first: regnn from this workflow's own source tree)
from regnn import protocols
from regnn.logs import log_to

with log_to(snakemake.log[0]) as log:
    protocol = protocols.get(snakemake.params.protocol)
    description = protocol.write_demo_data(snakemake.output.root, snakemake.params.settings)
    log.info("wrote a synthetic %s dataset to %s with %s", protocol.name, snakemake.output.root, description)
