from pathlib import Path

import _source_tree  # noqa: F401  (first: regnn from this workflow's own source tree)
from regnn import protocols
from regnn.logs import log_to

with log_to(snakemake.log[0]):
    train = snakemake.input.train
    protocols.get(snakemake.params.protocol).evaluate_baseline(
        name=snakemake.wildcards.name,
        dataset={name: Path(path) for name, path in snakemake.input.items() if name != "train"},
        output=Path(snakemake.output[0]),
        settings=snakemake.params.settings,
        threads=snakemake.threads,
        train_dataset={"emotions": Path(train[0])} if train else None,
    )
