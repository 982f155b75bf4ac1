# Feature extraction: one job per extractor x split x shard, never one per clip.
# Each job's params are exactly its extractor's config section, so changing one extractor reruns only its
# shards, and an experiment switched back to an earlier extractor finds that extractor's shards still valid.
# GPU: a job asks for one (resources gpu=1, which the SLURM profile turns into a GPU request) unless the
# extractor's `device` is cpu, and `device: auto` uses the GPU the job is given. Threads: the extractor's
# `workers` (background decoding) plus one for the network; torch uses as many for its own ops.
# Needs only `config["extractors"]` (tests include this file alone); `data.protocol` (default react2024) says
# which clips an index holds and how long each is, `data.length_tolerance` how far a MARS clip's media may
# differ from its length.
# Params name the code a job runs (regnn.provenance): the extract script's, and its extractor kind's module,
# which the script imports by name (no digest can follow that), so editing VGGish reruns no Swin job.
import re

from regnn import protocols
from regnn.devices import gpus_for
from regnn.features.kinds import implementing_module
from regnn.paths import RESULTS
from regnn.provenance import WorkflowCode
from regnn.settings import extractor_setting

code = WorkflowCode(workflow.current_basedir)  # as in common.smk: tests include this file alone
EXTRACT_DATA = config.get("data") or {}
EXTRACT_PROTOCOL = protocols.get(EXTRACT_DATA.get("protocol"))
EXTRACT_CODE = code("extract.py", f"{type(EXTRACT_PROTOCOL).__module__}:extraction_clips")


rule extract:
    input:
        index=RESULTS.index("{split}"),
    output:
        RESULTS.feature_shard("{extractor}", "{split}", "{shard}"),
    params:
        *EXTRACT_CODE,
        settings=lambda wildcards: config["extractors"][wildcards.extractor],
        protocol=EXTRACT_PROTOCOL.name,
        length_tolerance=EXTRACT_DATA.get("length_tolerance"),
        extractor_code=lambda wildcards: code.modules(
            implementing_module(wildcards.extractor, config["extractors"][wildcards.extractor]), exclude=EXTRACT_CODE
        ),
    log:
        RESULTS.shard_log("{extractor}", "{split}", "{shard}"),
    wildcard_constraints:
        extractor="|".join(re.escape(name) for name in config["extractors"]),
    threads: lambda wildcards: int(extractor_setting(config, wildcards.extractor, "workers")) + 1
    resources:
        gpu=lambda wildcards: gpus_for(extractor_setting(config, wildcards.extractor, "device")),
    conda:
        "../../envs/regnn.yaml"
    script:
        "../scripts/extract.py"
