# Metrics stage: the official REACT metrics per experiment x seed x split, the reference rows (ground truth,
# random, mime), and the per-split summary table and figures. Each rule's params hold only the settings that
# change its numbers, so editing the figure settings does not rerun hours of FRD.

rule evaluate:
    input:
        predictions=f"{EXPERIMENT_DIR}/predictions/{{split}}.h5",
        emotions="results/dataset/{split}/emotions.h5",
    output:
        f"{EXPERIMENT_DIR}/metrics/{{split}}.tsv",
    params:
        settings=METRIC_SETTINGS,
    log:
        "results/logs/evaluate/{experiment}/seed-{seed}/{split}.log",
    threads: EVALUATE["threads"]
    resources:
        gpu=1 if EVALUATE["device"] == "cuda" else 0,
        mem_mb=16000,
        runtime=120,
    conda:
        "../../envs/regnn.yaml"
    script:
        "../scripts/evaluate.py"


rule baseline:
    input:
        emotions="results/dataset/{split}/emotions.h5",
    output:
        "results/baselines/{name}/metrics/{split}.tsv",
    params:
        settings={**METRIC_SETTINGS, "baselines": EVALUATE["baselines"]},
    log:
        "results/logs/baseline/{name}/{split}.log",
    wildcard_constraints:
        name="ground_truth|random|mime",
    threads: EVALUATE["threads"]
    resources:
        gpu=1 if EVALUATE["device"] == "cuda" else 0,
        mem_mb=16000,
        runtime=120,
    conda:
        "../../envs/regnn.yaml"
    script:
        "../scripts/baseline.py"


rule summarize:
    input:
        runs=lambda w: metric_runs(w.split),
        baselines=expand("results/baselines/{name}/metrics/{{split}}.tsv", name=BASELINE_NAMES),
        # the reaction figures show each experiment's first seed
        predictions=lambda w: [f"results/experiments/{e}/seed-{config['seeds'][0]}/predictions/{w.split}.h5"
                               for e in config["experiments"]],
        emotions="results/dataset/{split}/emotions.h5",
    output:
        table=report("results/metrics/{split}.tsv", caption="../report/metrics.rst", category="Metrics"),
        latex="results/metrics/{split}.tex",
        methods=report("results/metrics/figures/{split}-methods.png", caption="../report/methods.rst",
                       category="Metrics"),
        reactions=[report(path, caption="../report/reactions.rst", category="Reactions")
                   for path in expand("results/metrics/figures/{{split}}-reactions-{experiment}.png",
                                      experiment=list(config["experiments"]))],
    params:
        settings=EVALUATE["summary"],
        experiments=list(config["experiments"]),
        seeds=list(config["seeds"]),
        baselines=BASELINE_NAMES,
    log:
        "results/logs/summarize/{split}.log",
    conda:
        "../../envs/regnn.yaml"
    script:
        "../scripts/summarize.py"
