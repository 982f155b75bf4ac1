# Dataset stage: (demo) synthetic data, in-place cleanup of nested feature files, checked index + emotion cache.


rule demo_data:
    output:
        root=directory(DATA_ROOT),
    params:
        settings=config.get("demo_data", {}),
    log:
        "results/logs/demo_data.log",
    conda:
        "../../envs/regnn.yaml"
    script:
        "../scripts/demo_data.py"


rule clean_dataset:
    input:
        unpack(lambda w: dataset_ready()),
    output:
        journal="results/dataset/{split}/cleanup.tsv",
    params:
        root=DATA_ROOT,
    log:
        "results/logs/clean_dataset/{split}.log",
    conda:
        "../../envs/regnn.yaml"
    script:
        "../scripts/clean_dataset.py"


rule index_split:
    input:
        journal="results/dataset/{split}/cleanup.tsv",
    output:
        index="results/dataset/{split}/index.tsv",
        emotions="results/dataset/{split}/emotions.h5",
    params:
        data=config["data"],
    log:
        "results/logs/index_split/{split}.log",
    conda:
        "../../envs/regnn.yaml"
    script:
        "../scripts/index_split.py"
