# Feature extraction: one job per extractor x split x shard, never one per clip.
# Each job's params are exactly its extractor's config section, so changing one extractor reruns only its
# shards, and an experiment switched back to an earlier extractor finds that extractor's shards still valid.
# GPU: set `gpus: 1` in an extractor's settings; its jobs then ask for resources gpu=1 (the SLURM profile
# turns that into a GPU request) and `device: auto` uses the GPU the job is given. Threads: the extractor's
# `workers` (background decoding) plus one for the network; torch uses as many for its own ops.


rule extract:
    input:
        index=RESULTS.index("{split}"),
    output:
        RESULTS.feature_shard("{extractor}", "{split}", "{shard}"),
    params:
        settings=lambda wildcards: config["extractors"][wildcards.extractor],
    log:
        RESULTS.log("extract", "{extractor}", "{split}", "shard-{shard}"),
    wildcard_constraints:
        extractor="|".join(re.escape(name) for name in config["extractors"]),
    threads: lambda wildcards: int(config["extractors"][wildcards.extractor].get("workers", 2)) + 1
    resources:
        gpu=lambda wildcards: int(config["extractors"][wildcards.extractor].get("gpus", 0)),
    conda:
        "../../envs/regnn.yaml"
    script:
        "../scripts/extract.py"
