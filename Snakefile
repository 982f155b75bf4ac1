# REGNN facial-reaction generation on REACT: dataset -> features -> training -> generation -> metrics.
# Real data:  snakemake --cores all                       (config/config.yaml: set data.root first)
# Demo:       snakemake --cores 2 --configfile config/demo.yaml
# The workflow itself is workflow/Snakefile (the Snakemake workflow catalog's layout); this entry point
# includes it, so both work.


include: "workflow/Snakefile"


# An included file's rules never become the default target: build `all`, as `-s workflow/Snakefile` does.
workflow.default_target = "all"
