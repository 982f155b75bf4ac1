"""`regnn`: one subcommand per pipeline stage, calling the same library functions as the workflow.

Heavy imports happen inside each command so `regnn --help` stays instant.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from regnn.paths import RESULTS, Results
from regnn.protocols import DEFAULT, NAMES


def _demo_data(args: argparse.Namespace) -> None:
    seed = {} if args.seed is None else {"seed": args.seed}  # else the settings' own default
    if args.protocol == "react2025":
        from regnn.data.mars_synthetic import MarsSyntheticSettings, write_mars_dataset

        write_mars_dataset(args.out, MarsSyntheticSettings(**seed))
        print(f"wrote a synthetic MARS (REACT 2025/2026) dataset to {args.out}")
        return
    from regnn.data.synthetic import SyntheticSettings, write_dataset

    settings = SyntheticSettings(**seed)
    if args.config:
        import yaml

        settings = SyntheticSettings(**(yaml.safe_load(args.config.read_text()) or {}).get("demo_data", {}))
    write_dataset(args.out, settings)
    print(f"wrote a synthetic REACT dataset to {args.out}")


def _clean(args: argparse.Namespace) -> None:
    from regnn.data.cleanup import clean_dataset

    splits = [args.split] if args.split else None
    cleanup = clean_dataset(args.root, splits=splits, dry_run=args.dry_run)
    verb, removal = ("would move", "would remove") if args.dry_run else ("moved", "removed")
    for move in cleanup.moves:
        print(f"{verb}\t{move.source}\t{move.target}")
    for folder in cleanup.removed:
        print(f"{removal}\t{folder}")
    print(f"{verb} {len(cleanup.moves)} file(s), {removal} {len(cleanup.removed)} empty folder(s)",
          file=sys.stderr)


def _index(args: argparse.Namespace) -> None:
    from regnn import protocols
    from regnn.logs import log_to

    protocol = protocols.get(args.protocol)
    outputs = protocol.dataset_outputs(args.split, args.incomplete)
    if args.out:
        outputs = {name: args.out / path.name for name, path in outputs.items()}
    data = {"frames": args.frames, "direction": args.direction, "incomplete": args.incomplete}
    try:
        with log_to(None):
            n = protocol.index_split(args.root, args.split, outputs, data)
    except ValueError as err:
        raise SystemExit(f"regnn index: {err}") from None
    print(f"indexed {n} samples of {args.split} ({protocol.name}) into {outputs['index'].parent}")


def _load_config(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text()) or {}


def _train(args: argparse.Namespace) -> None:
    from regnn.logs import log_to
    from regnn.training import train_experiment

    with log_to(None):
        train_experiment(_load_config(args.config), args.experiment, args.seed, args.results)


def _generate(args: argparse.Namespace) -> None:
    from regnn.generation import export_official, generate_experiment
    from regnn.logs import log_to

    config = _load_config(args.config)
    if args.modify:
        config["generate"] = {**config.get("generate", {}), "modify": True}
    with log_to(None):
        out = generate_experiment(config, args.experiment, args.seed, args.split, args.results, epoch=args.epoch)
        if args.official:
            export_official(out, Results(args.results).official(args.experiment, args.seed, args.split))


def _render(args: argparse.Namespace) -> None:
    from regnn.logs import log_to
    from regnn.render import render_experiment

    with log_to(None):
        page = render_experiment(_load_config(args.config), args.experiment, args.seed, args.split, args.results,
                                 clips=args.clips, config_name=str(args.config))
    print(f"wrote {page} (and the clips' mp4 and webp files beside it)")


def _extract(args: argparse.Namespace) -> None:
    from regnn.features.extract import extract_shard
    from regnn.features.media import MediaError
    from regnn.logs import log_to
    from regnn.settings import extractor_shards

    config = _load_config(args.config)
    extractors, data = config.get("extractors", {}), config.get("data") or {}
    if args.extractor not in extractors:
        raise SystemExit(f"regnn extract: no extractor {args.extractor!r} in {args.config} "
                         f"(configured: {', '.join(extractors) or 'none'})")
    settings, layout = extractors[args.extractor], Results(args.results)
    index = args.index or layout.index(args.split)
    shards = extractor_shards({"extractors": extractors}, args.extractor)
    for shard in [args.shard] if args.shard is not None else range(shards):
        out = layout.feature_shard(args.extractor, args.split, shard)
        log = layout.shard_log(args.extractor, args.split, shard)
        try:
            with log_to(log):
                report = extract_shard(index, out, args.extractor, settings, shard, protocol=data.get("protocol"),
                                       length_tolerance=data.get("length_tolerance"))
        except MediaError as err:
            raise SystemExit(f"regnn extract: {err}") from None
        print(f"wrote {out}: {report.clips} clips, {report.frames_per_second:.0f} frames/s")


def _evaluate(args: argparse.Namespace) -> None:
    from regnn import protocols
    from regnn.logs import log_to

    protocol = protocols.get(args.protocol)
    settings = {"corrected": args.corrected, "device": args.device}
    if args.resampling_checkpoint:
        settings["resampling"] = {"checkpoint": str(args.resampling_checkpoint)}
    try:
        with log_to(None):
            metrics = protocol.evaluate_dataset(args.data_dir, args.pred_dir, args.split, settings=settings,
                                                threads=args.threads, samples=args.samples, targets=args.targets,
                                                out=args.out, direction=args.direction)
    except ValueError as err:  # MetricInputError included
        raise SystemExit(f"regnn evaluate: {err}") from None
    print("\n".join(protocol.printed_lines(metrics)))
    if args.out:
        protocol.write_metrics(args.out, metrics)


def _neighbours(args: argparse.Namespace) -> None:
    from regnn.data.neighbours import write_split_matrix

    print(f"wrote {write_split_matrix(args.root, args.split, args.out)}")


def _experiment_command(commands: argparse._SubParsersAction, name: str, help: str) -> argparse.ArgumentParser:
    """A subcommand that works on one experiment x seed of a config."""
    p = commands.add_parser(name, help=help)
    p.add_argument("--config", type=Path, default=Path("config/config.yaml"))
    p.add_argument("--experiment", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--results", type=Path, default=RESULTS.root, help=f"results folder (default {RESULTS.root})")
    return p


def _protocol_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--protocol", choices=NAMES, default=DEFAULT,
                   help="react2024 (REACT 2023/2024, default) or react2025 (MARS, REACT 2025/2026)")
    p.add_argument("--direction", choices=("both", "speaker_to_listener"), default="both",
                   help="react2025: both roles as inputs (2025) or speaker -> listener only (2026)")


def build_parser() -> argparse.ArgumentParser:
    from regnn.data.layout import FRAMES
    from regnn.metrics.settings import DEFAULTS as EVALUATE_DEFAULTS
    from regnn.settings import GENERATE_DEFAULTS

    parser = argparse.ArgumentParser(prog="regnn", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("demo-data", help="write a synthetic dataset in the REACT 2024 (or MARS) layout")
    p.add_argument("out", type=Path)
    p.add_argument("--protocol", choices=NAMES, default=DEFAULT,
                   help="react2025: the MARS layout of REACT 2025/2026 (variable lengths, junk files)")
    p.add_argument("--seed", type=int, help="random seed (default: the generator's settings' seed, 0)")
    p.add_argument("--config", type=Path, help="a config YAML whose demo_data section sets the size")
    p.set_defaults(func=_demo_data)

    p = commands.add_parser("clean", help="move nested pre-extracted feature files up one folder, prune empty "
                                          "folders under the feature folders")
    p.add_argument("root", type=Path)
    p.add_argument("--split", choices=("train", "val", "test"))
    p.add_argument("--dry-run", action="store_true",
                   help="list the moves and removals without changing anything")
    p.set_defaults(func=_clean)

    p = commands.add_parser("index", help="check a split and cache its index and emotions")
    p.add_argument("root", type=Path)
    p.add_argument("--split", required=True)
    p.add_argument("--out", type=Path, help=f"output folder (default {RESULTS.dataset_dir('SPLIT')})")
    p.add_argument("--frames", type=int, default=FRAMES, help=f"react2024: frames per clip (default {FRAMES})")
    _protocol_arguments(p)
    p.add_argument("--incomplete", choices=("error", "skip"), default="error",
                   help="skip: drop the samples with a problem and list them in OUT/skipped.tsv")
    p.set_defaults(func=_index)

    p = commands.add_parser("neighbours", help="cut neighbour_emotion_SPLIT.npy from the master matrix")
    p.add_argument("root", type=Path, help="dataset root with Approprirate_facial_reaction.npy and data_indices.csv")
    p.add_argument("--split", required=True)
    p.add_argument("--out", type=Path, help="output file (default ROOT/neighbour_emotion_SPLIT.npy)")
    p.set_defaults(func=_neighbours)

    p = commands.add_parser("extract", help="extract one extractor's features for a split (all shards or one)")
    p.add_argument("--config", type=Path, default=Path("config/config.yaml"))
    p.add_argument("--extractor", required=True, help="a name under `extractors` in the config")
    p.add_argument("--split", required=True)
    p.add_argument("--shard", type=int, help="only this shard (default: every shard)")
    p.add_argument("--index", type=Path, help="split index (default: the one under --results)")
    p.add_argument("--results", type=Path, default=RESULTS.root, help=f"results folder (default {RESULTS.root})")
    p.set_defaults(func=_extract)

    p = _experiment_command(commands, "train", "train one experiment x seed (resumes an interrupted run)")
    p.set_defaults(func=_train)

    p = _experiment_command(commands, "generate", "sample reactions for a split from a trained checkpoint")
    p.add_argument("--split", required=True)
    p.add_argument("--epoch", type=int, help="use the checkpoint after this many epochs of training "
                                             "(default: generate.epoch; the paper's 96)")
    p.add_argument("--modify", action="store_true",
                   help="the reference's --modify: AU columns set to 1 where >= 1, else 0 (generate.modify)")
    p.add_argument("--official", action="store_true",
                   help="also export official/<split>/<speaker_path>/result-{j}.pth")
    p.set_defaults(func=_generate)

    p = _experiment_command(commands, "render", "reaction videos: speaker video, real and generated listeners")
    p.add_argument("--split", required=True)
    p.add_argument("--clips", type=int, help="clips to render (default: render.clips of the config)")
    p.set_defaults(func=_render)

    p = commands.add_parser("evaluate", help="the official REACT metrics (drop-in for the official evaluation)")
    p.add_argument("--data-dir", type=Path, required=True,
                   help="react2024: root holding <split>.csv, neighbour_emotion_<split>.npy and <split>/Emotion/; "
                        "react2025: MARS root holding <split>/facial-attributes/")
    p.add_argument("--pred-dir", type=Path, required=True,
                   help="folder with <split>/<speaker_path>/result-{j}.pth (react2025: .pth or .npy), or a "
                        "predictions .h5 file")
    _protocol_arguments(p)
    p.add_argument("--targets", type=Path,
                   help="react2025: TSV with columns speaker, target (clip paths relative to the split, no "
                        "extension); default: the seeded draw, written beside --out")
    p.add_argument("--resampling-checkpoint", type=Path,
                   help="react2025: TorchScript autoencoder that resamples targets (default: interpolation)")
    p.add_argument("--split", required=True)
    p.add_argument("--out", type=Path, help="also write the metrics as a one-row TSV")
    p.add_argument("--threads", type=int, default=EVALUATE_DEFAULTS["threads"],
                   help=f"CPU threads for FRD's DTW (default {EVALUATE_DEFAULTS['threads']})")
    p.add_argument("--samples", type=int, default=GENERATE_DEFAULTS["samples"],
                   help=f"predictions per speaker (default {GENERATE_DEFAULTS['samples']})")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=EVALUATE_DEFAULTS["device"],
                   help="auto uses a GPU when one is present")
    p.add_argument("--corrected", action="store_true",
                   help="add TLCC_corrected (all samples, NaN-safe) in its own column")
    p.set_defaults(func=_evaluate)

    return parser


def main(argv: list[str] | None = None) -> int:
    from regnn.data.layout import DatasetError

    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (DatasetError, FileExistsError) as err:
        print(f"regnn {args.command}: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
