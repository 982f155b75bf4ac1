"""Snakemake adapter for rule `extract`: one extractor over one shard of one split (see regnn.features.extract)."""

from pathlib import Path

import _source_tree  # noqa: F401  (first: regnn from this workflow's own source tree)
from regnn.features.extract import extract_shard
from regnn.logs import log_to

with log_to(snakemake.log[0]):
    extract_shard(
        index_tsv=Path(snakemake.input.index),
        output=Path(snakemake.output[0]),
        name=snakemake.wildcards.extractor,
        settings=dict(snakemake.params.settings),
        shard=int(snakemake.wildcards.shard),
        threads=snakemake.threads,
        protocol=snakemake.params.protocol,
        length_tolerance=snakemake.params.length_tolerance,
    )
