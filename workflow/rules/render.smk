# Look at the reactions: reaction videos (speaker video | real listener | generated listeners, drawn with
# regnn.face) for a few clips per split and experiment, and the training curves of every experiment. The
# videos show each experiment's first seed, like the summary figures.


rule render:
    input:
        predictions=RESULTS.predictions("{experiment}", "{seed}", "{split}"),
        emotions=RESULTS.emotions("{split}"),
        index=RESULTS.index("{split}"),
    output:
        videos=[RESULTS.reaction_video("{experiment}", "{seed}", "{split}", k) for k in range(RENDER["clips"])],
        thumbnails=[RESULTS.reaction_thumbnail("{experiment}", "{seed}", "{split}", k) for k in range(RENDER["clips"])],
        page=report(
            RESULTS.reaction_page("{experiment}", "{seed}", "{split}"),
            caption="../report/reaction_videos.rst",
            category="2. Reaction videos",
            subcategory="{split}",
            labels={"experiment": "{experiment}", "seed": "{seed}", "split": "{split}"},
        ),
    params:
        *code("render.py"),
        settings=RENDER,
        title=lambda w: f"{w.experiment} \u00b7 {w.split} \u00b7 seed {w.seed}",
        note=lambda w: "Config: experiment {} ({} video, {} audio features), seed {}.".format(
            w.experiment, *(experiment_settings(config, w.experiment)[m] for m in ("video", "audio")), w.seed
        ),
    log:
        RESULTS.run_log("render", "{experiment}", "{seed}", "{split}"),
    wildcard_constraints:
        experiment="|".join(config["experiments"]),
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/regnn.yaml"
    script:
        "../scripts/render.py"


rule training_curves:
    input:
        logs=lambda w: [RESULTS.train_tsv(w.experiment, s) for s in config["seeds"]],
    output:
        report(
            RESULTS.training_curves("{experiment}"),
            caption="../report/training_curves.rst",
            category="4. Training curves",
            labels={"experiment": "{experiment}"},
        ),
    params:
        *code("training_curves.py"),
        seeds=config["seeds"],
        settings=lambda w: experiment_settings(config, w.experiment),
    log:
        RESULTS.log("training_curves", "{experiment}"),
    wildcard_constraints:
        experiment="|".join(config["experiments"]),
    conda:
        "../../envs/regnn.yaml"
    script:
        "../scripts/training_curves.py"
