from regnn.data.cleanup import clean_dataset, write_journal
from regnn.logs import log_to

with log_to(snakemake.log[0]) as log:
    root = snakemake.params.root
    moves = clean_dataset(root, splits=[snakemake.wildcards.split])
    write_journal(moves, root, snakemake.output.journal)
    log.info("moved %d nested feature file(s) in split %s", len(moves), snakemake.wildcards.split)
