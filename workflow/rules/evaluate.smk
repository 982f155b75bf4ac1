# Metrics stage: the official REACT metrics per experiment x seed x split, the reference rows (ground truth,
# random, mime), and the per-split summary table and figures. Each rule's params hold only the settings that
# change its numbers, so editing the figure settings does not rerun hours of FRD.


rule evaluate:
    input:
        **scoring_inputs("{split}"),
        predictions=RESULTS.predictions("{experiment}", "{seed}", "{split}"),
    output:
        RESULTS.run_metrics("{experiment}", "{seed}", "{split}"),
    params:
        *code("evaluate.py", f"{PROTOCOL_MODULE}:evaluate_run"),
        protocol=PROTOCOL.name,
        settings=METRIC_SETTINGS,
    log:
        RESULTS.run_log("evaluate", "{experiment}", "{seed}", "{split}"),
    threads: EVALUATE["threads"]
    resources:
        gpu=gpus_for(EVALUATE["device"]),
        mem_mb=16000,
        runtime=120,
    conda:
        "../../envs/regnn.yaml"
    script:
        "../scripts/evaluate.py"


rule baseline:
    input:
        unpack(lambda w: scoring_inputs(w.split)),
        # the mean-frame baseline is the training split's mean listener frame
        train=lambda w: [RESULTS.emotions(TRAIN_SPLIT)] if w.name == "mean_frame" else [],
    output:
        RESULTS.baseline_metrics("{name}", "{split}"),
    params:
        *code("baseline.py", f"{PROTOCOL_MODULE}:evaluate_baseline"),
        protocol=PROTOCOL.name,
        settings={**METRIC_SETTINGS, "baselines": EVALUATE["baselines"]},
    log:
        RESULTS.log("baseline", "{name}", "{split}"),
    wildcard_constraints:
        name="|".join(BASELINE_NAMES),
    threads: EVALUATE["threads"]
    resources:
        gpu=gpus_for(EVALUATE["device"]),
        mem_mb=16000,
        runtime=120,
    conda:
        "../../envs/regnn.yaml"
    script:
        "../scripts/baseline.py"


rule summarize:
    input:
        # the same files as params.inputs, which names each one (the script reads the names from there)
        runs=lambda w: [path for paths in summary_inputs(w.split)["runs"].values() for path in paths],
        baselines=lambda w: list(summary_inputs(w.split)["baselines"].values()),
        predictions=lambda w: list(summary_inputs(w.split)["predictions"].values()),
        emotions=RESULTS.emotions("{split}"),
        # data.incomplete: skip -> the table says it was computed on a reduced split
        skipped=lambda w: [p for name, p in dataset_files(w.split).items() if name == "skipped"],
    output:
        table=report(RESULTS.metrics_table("{split}"), caption="../report/metrics.rst", category="1. Metrics"),
        latex=RESULTS.metrics_latex("{split}"),
        methods=report(RESULTS.methods_figure("{split}"), caption="../report/methods.rst", category="1. Metrics"),
        reactions=[
            report(
                RESULTS.reactions_figure("{split}", e),
                caption="../report/reactions.rst",
                category="3. Attributes over time",
            )
            for e in config["experiments"]
        ],
    params:
        *code("summarize.py", f"{PROTOCOL_MODULE}:reaction_series"),
        protocol=PROTOCOL.name,
        settings=EVALUATE["summary"],
        inputs=lambda w: summary_inputs(w.split),
        reaction_figures=lambda w: {e: str(RESULTS.reactions_figure(w.split, e)) for e in config["experiments"]},
    log:
        RESULTS.log("summarize", "{split}"),
    conda:
        "../../envs/regnn.yaml"
    script:
        "../scripts/summarize.py"
