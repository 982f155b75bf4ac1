from pathlib import Path

from regnn.logs import log_to
from regnn.render import render_split

with log_to(snakemake.log[0]):
    render_split(
        predictions_h5=Path(snakemake.input.predictions),
        emotions_h5=Path(snakemake.input.emotions),
        index_tsv=Path(snakemake.input.index),
        videos=[Path(p) for p in snakemake.output.videos],
        thumbnails=[Path(p) for p in snakemake.output.thumbnails],
        page=Path(snakemake.output.page),
        settings=snakemake.params.settings,
        title=snakemake.params.title,
        config_note=snakemake.params.note,
    )
