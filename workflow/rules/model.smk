# Model stage: REGNN training (one job per experiment x seed) and generation (experiment x seed x split).
# Checkpoints are named by the epochs of training they hold (after-NNN-epochs.pt, regnn.paths); generation
# reads the one of generate.epoch (the paper: 96, the reference's mhp-epoch95).
# Params are each experiment's fully resolved settings (a pure function of the wildcards), so editing one
# experiment reruns only its jobs. Training resumes from results/experiments/<e>/seed-<s>/.resume/, which
# is not a declared output, so a job killed at its time limit (or preempted) continues where it stopped.


rule train:
    input:
        unpack(lambda w: experiment_inputs(w, TRAIN_SPLIT)),
    output:
        checkpoints=[RESULTS.checkpoint("{experiment}", "{seed}", e) for e in CHECKPOINT_EPOCHS],
        tsv=RESULTS.train_tsv("{experiment}", "{seed}"),
        tensorboard=directory(RESULTS.tensorboard_dir("{experiment}", "{seed}")),
    params:
        *code("train.py", f"{PROTOCOL_MODULE}:training_windows"),
        settings=lambda w: experiment_settings(config, w.experiment),
        # str: Snakemake fills wildcards into string params only (a Path would stay "{experiment}/seed-{seed}")
        resume=str(RESULTS.resume_dir("{experiment}", "{seed}")),
        protocol=PROTOCOL.name,
        resampling=TRAIN_RESAMPLING,
    log:
        RESULTS.run_log("train", "{experiment}", "{seed}"),
    wildcard_constraints:
        experiment="|".join(config["experiments"]),
    threads: 4
    retries: 2
    resources:
        gpu=lambda w: gpus_for(experiment_settings(config, w.experiment)["train"]["device"]),
        mem_mb=32000,
        runtime=360,
    conda:
        "../../envs/regnn.yaml"
    script:
        "../scripts/train.py"


rule generate:
    input:
        unpack(lambda w: experiment_inputs(w, w.split)),
        checkpoint=RESULTS.checkpoint("{experiment}", "{seed}", GENERATE_EPOCH),
    output:
        RESULTS.predictions("{experiment}", "{seed}", "{split}"),
    params:
        *code("generate.py", f"{PROTOCOL_MODULE}:generate"),
        protocol=PROTOCOL.name,
        # export_official only adds the export_official rule's outputs to the targets
        settings={k: v for k, v in GENERATE.items() if k != "export_official"},
    log:
        RESULTS.run_log("generate", "{experiment}", "{seed}", "{split}"),
    wildcard_constraints:
        experiment="|".join(config["experiments"]),
    threads: 4
    resources:
        gpu=gpus_for(GENERATE["device"]),
        mem_mb=16000,
        runtime=60,
    conda:
        "../../envs/regnn.yaml"
    script:
        "../scripts/generate.py"


rule export_official:
    input:
        RESULTS.predictions("{experiment}", "{seed}", "{split}"),
    output:
        directory(RESULTS.official("{experiment}", "{seed}", "{split}")),
    params:
        *code("export_official.py"),
    log:
        RESULTS.run_log("export_official", "{experiment}", "{seed}", "{split}"),
    conda:
        "../../envs/regnn.yaml"
    script:
        "../scripts/export_official.py"
