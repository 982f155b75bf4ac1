# Dataset stage: (demo) synthetic data, in-place cleanup of nested feature files, checked index + emotion cache.


rule demo_data:
    output:
        root=directory(DATA_ROOT),
    params:
        *code("demo_data.py", f"{PROTOCOL_MODULE}:write_demo_data"),
        protocol=PROTOCOL.name,
        settings=config.get("demo_data", {}),
    log:
        RESULTS.log("demo_data"),
    conda:
        "../../envs/regnn.yaml"
    script:
        "../scripts/demo_data.py"


rule clean_dataset:
    input:
        unpack(lambda w: dataset_ready()),
    output:
        journal=RESULTS.cleanup_journal("{split}"),
    params:
        *code("clean_dataset.py"),
        root=DATA_ROOT,
    log:
        RESULTS.log("clean_dataset", "{split}"),
    conda:
        "../../envs/regnn.yaml"
    script:
        "../scripts/clean_dataset.py"


rule index_split:
    input:
        journal=RESULTS.cleanup_journal("{split}"),
    output:
        **dataset_files("{split}"),
    params:
        *code("index_split.py", f"{PROTOCOL_MODULE}:index_split"),
        data=config["data"],
    log:
        RESULTS.log("index_split", "{split}"),
    conda:
        "../../envs/regnn.yaml"
    script:
        "../scripts/index_split.py"
