from regnn.data.index import index_split
from regnn.logs import log_to

with log_to(snakemake.log[0]) as log:
    data = snakemake.params.data
    n = index_split(data["root"], snakemake.wildcards.split, snakemake.output.index, snakemake.output.emotions,
                    frames=data.get("frames", 750))
    log.info("indexed %d mirrored samples of %s", n, snakemake.wildcards.split)
