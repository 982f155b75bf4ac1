"""Snakemake adapter for rule `extract`: one extractor over one shard of one split (see regnn.features.extract)."""

from regnn.features.extract import extract_shard

extract_shard(
    index_tsv=snakemake.input.index,  # noqa: F821 (injected by Snakemake)
    output=snakemake.output[0],  # noqa: F821
    name=snakemake.wildcards.extractor,  # noqa: F821
    settings=dict(snakemake.params.settings),  # noqa: F821
    shard=int(snakemake.wildcards.shard),  # noqa: F821
    threads=snakemake.threads,  # noqa: F821
    log_file=snakemake.log[0],  # noqa: F821
)
