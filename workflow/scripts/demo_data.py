import _source_tree  # noqa: F401  (first: regnn from this workflow's own source tree)
from regnn.data.synthetic import SyntheticSettings, write_dataset
from regnn.logs import log_to

with log_to(snakemake.log[0]) as log:
    settings = SyntheticSettings(**snakemake.params.settings)
    write_dataset(snakemake.output.root, settings)
    log.info("wrote a synthetic REACT dataset to %s with %s", snakemake.output.root, settings)
