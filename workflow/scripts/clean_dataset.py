import _source_tree  # noqa: F401  (first: regnn from this workflow's own source tree)
from regnn.data.cleanup import clean_dataset, write_journal
from regnn.logs import log_to

with log_to(snakemake.log[0]) as log:
    root = snakemake.params.root
    cleanup = clean_dataset(root, splits=[snakemake.wildcards.split])
    write_journal(cleanup, root, snakemake.output.journal)
    log.info("moved %d nested feature file(s) and removed %d empty folder(s) in split %s",
             len(cleanup.moves), len(cleanup.removed), snakemake.wildcards.split)
