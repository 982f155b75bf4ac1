# REGNN facial-reaction generation on REACT: dataset -> features -> training -> generation -> metrics.
# Real data:  snakemake --cores all                       (config/config.yaml: set data.root first)
# Demo:       snakemake --cores 2 --configfile config/demo.yaml
from snakemake.utils import min_version, validate

min_version("9.0")

if not workflow.overwrite_configfiles:
    configfile: "config/config.yaml"

validate(config, "workflow/schemas/config.schema.yaml")

report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/dataset.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/model.smk"
include: "workflow/rules/evaluate.smk"


rule all:
    input:
        final_targets(),
    default_target: True
