from pathlib import Path

import _source_tree  # noqa: F401  (first: regnn from this workflow's own source tree)
from regnn import protocols
from regnn.logs import log_to

with log_to(snakemake.log[0]):
    protocols.get(snakemake.params.protocol).generate(
        checkpoint=Path(snakemake.input.checkpoint),
        emotions=Path(snakemake.input.emotions),
        video_shards=[Path(p) for p in snakemake.input.video],
        audio_shards=[Path(p) for p in snakemake.input.audio],
        settings=snakemake.params.settings,
        seed=int(snakemake.wildcards.seed),
        output=Path(snakemake.output[0]),
        threads=snakemake.threads,
    )
