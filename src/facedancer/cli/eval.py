"""``facedancer eval PROTOCOL DATA``: identity retrieval, pose, expression and FID of swaps, and ``eval merge``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console

from facedancer.cli.app import app
from facedancer.cli.options import BlendMask, Colour, Poisson
from facedancer.errors import ConfigError, InputError, OutputError

# the evaluation library (torch, dlib, the networks) is imported inside the commands, so that
# `facedancer --help` and the other commands start without it

console = Console(stderr=True)
eval_app = typer.Typer(
    help="Evaluate face swapping models (PAPER.md §4): identity retrieval, pose and expression error, FID, "
    "beside two baselines (copy-target, paste-source) on the same seeded samples.",
    no_args_is_help=True,
)
app.add_typer(eval_app, name="eval")

PROTOCOL_HELP = {
    "videos": "FF++ style on a folder of videos: N frames per video, each swapped with a frame of another video "
    "(identity = video).",
    "aflw2000": "AFLW2000-3D (large poses, the pose protocol): its images within ±99° as targets, sources from "
    "identity folders (--sources, e.g. LFW).",
    "folders": "Identity folders (LFW layout: DATA/<person>/<photo>): a photo of person A swapped with a photo of B.",
}


def _models(values: list[str] | None) -> tuple[str, ...]:
    """``--model A --compare B,C`` -> (A, B, C)."""
    return tuple(m.strip() for v in values or [] for m in v.split(",") if m.strip())


def expand_compare(argv: list[str]) -> list[str]:
    """``eval PROTOCOL ... --compare A B C`` (the ablation-table form) -> ``--compare A --compare B --compare C``.

    A click option takes one value, so the extra words are rewritten before parsing: the words after
    ``--compare`` up to the next option are models, except that the last of them is the data set when
    the data set is given nowhere else (``--compare A B DATA -o OUT``).
    """
    if len(argv) < 3 or argv[0] != "eval" or argv[1] not in PROTOCOL_HELP or "--compare" not in argv:
        return argv
    command = typer.main.get_command(eval_app).commands[argv[1]]  # type: ignore[attr-defined]
    flags = {name for p in command.params if getattr(p, "is_flag", False) for name in (*p.opts, *p.secondary_opts)}
    rest = argv[2:]
    parts: list[str | list[str]] = []  # a list stands for the models after one --compare
    data_given = False
    i = 0
    while i < len(rest):
        token = rest[i]
        if token == "--compare":
            j = i + 1
            while j < len(rest) and not rest[j].startswith("-"):
                j += 1
            parts.append(rest[i + 1 : j])
            i = j
        elif token.startswith("-") and "=" not in token and token not in flags:
            parts += rest[i : i + 2]  # an option and its value
            i += 2
        else:
            data_given |= not token.startswith("-")
            parts.append(token)
            i += 1
    out = argv[:2]
    for part in parts:
        if isinstance(part, str):
            out.append(part)
            continue
        models, data = part, []
        if not data_given and len(part) > 1:
            models, data, data_given = part[:-1], part[-1:], True
        out += [w for m in models for w in ("--compare", m)] or ["--compare"]
        out += data
    return out


def _read_identities(path: Path) -> tuple[str, ...]:
    try:
        names = tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    except OSError as e:
        raise InputError(f"cannot read --identities {path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise InputError(f"cannot read --identities {path}: not UTF-8 text") from None
    if not names:
        raise InputError(f"--identities {path} lists no identities")
    return names


def _output_dir(path: Path) -> Path:
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path} is a file; -o takes a folder for the report")
    return path


def _protocol_command(protocol: str):
    def command(
        data: Annotated[Path, typer.Argument(help="the data set (see the protocol)")],
        output: Annotated[Path, typer.Option("-o", "--output", help="report folder (a shard writes its part here)")],
        model: Annotated[
            list[str] | None,
            typer.Option(
                "--model",
                "--compare",
                "-m",
                help="model directory, bundled model or 'classical'; --compare A B C, A,B,C or a repeated option "
                "compares them on the same samples (none: baselines only)",
            ),
        ] = None,
        sources: Annotated[
            Path | None, typer.Option(help="identity folders to draw sources from (required for aflw2000)")
        ] = None,
        samples: Annotated[int | None, typer.Option(help="at most N samples (default: the whole protocol)")] = None,
        seed: Annotated[int, typer.Option(help="sampling seed (written into the report)")] = 0,
        frames_per_video: Annotated[int | None, typer.Option(help="videos: target frames per video [10]")] = None,
        gallery_per_identity: Annotated[int, typer.Option(help="gallery pictures per identity")] = 3,
        identities: Annotated[
            Path | None,
            typer.Option(
                help="a file of identity folder names, one per line, to draw targets, sources and gallery from "
                "(e.g. a training run's held_out_identities.txt)"
            ),
        ] = None,
        shard: Annotated[str, typer.Option(help="K/N: run part K (0-based) of N and write a part to merge")] = "0/1",
        metrics: Annotated[
            str | None, typer.Option(help="comma-separated subset of id, pose, expression, fid [all]")
        ] = None,
        pose_estimator: Annotated[Literal["3ddfa", "fsanet"], typer.Option(help="head-pose estimator")] = "3ddfa",
        recogniser: Annotated[
            str, typer.Option(help="identity recogniser: dlib, or an identity encoder (arcface-iresnet50, sface)")
        ] = "dlib",
        recogniser_weights: Annotated[
            Path | None, typer.Option(help="weights for an encoder recogniser (e.g. CosFace backbone.pth)")
        ] = None,
        detector: Annotated[Literal["yunet", "retinaface"], typer.Option(help="face detector")] = "yunet",
        blend: BlendMask = "landmarks",
        colour: Colour = True,
        poisson: Poisson = False,
        device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N or mps (generators and networks)")] = "cpu",
        batch_size: Annotated[int, typer.Option(help="samples per batch (shards split at batch boundaries)")] = 16,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="print the sampling plan and stop")] = False,
    ) -> None:
        from facedancer.eval.protocols import DEFAULT_FRAMES_PER_VIDEO, SamplingConfig
        from facedancer.eval.runner import METRICS, RunConfig, Shard
        from facedancer.faces import BlendConfig

        if frames_per_video is not None and protocol != "videos":
            raise ConfigError("--frames-per-video applies to the videos protocol only")
        if identities is not None and protocol == "videos" and sources is None:
            raise ConfigError("--identities applies to identity folders: the data of folders, or --sources")
        sampling = SamplingConfig(
            protocol,  # type: ignore[arg-type]
            str(data),
            str(sources) if sources else None,
            samples,
            seed,
            DEFAULT_FRAMES_PER_VIDEO if frames_per_video is None else frames_per_video,
            gallery_per_identity,
            _read_identities(identities) if identities else None,
        )
        run = RunConfig(
            models=_models(model),
            metrics=tuple(m.strip() for m in metrics.split(",") if m.strip()) if metrics else METRICS,
            pose_estimator=pose_estimator,
            recogniser=recogniser,
            recogniser_weights=str(recogniser_weights) if recogniser_weights else None,
            detector=detector,
            blend=BlendConfig(mask=blend, colour=colour, poisson=poisson),
            batch_size=batch_size,
            device=device,
        )
        _evaluate(sampling, run, Shard.parse(shard), _output_dir(output), dry_run)

    command.__doc__ = PROTOCOL_HELP[protocol]
    return command


for _name in PROTOCOL_HELP:
    eval_app.command(_name)(_protocol_command(_name))


def _evaluate(sampling, run, shard, output: Path, dry_run: bool) -> None:
    from facedancer.device import resolve_device
    from facedancer.eval.contenders import load_contenders
    from facedancer.eval.protocols import make_plan
    from facedancer.eval.report import merge as merge_parts
    from facedancer.eval.runner import Instruments, run_shard
    from facedancer.swap.models import CLASSICAL, model_directory

    for spec in run.models:  # a mistyped model fails before a long plan over thousands of videos
        if spec != CLASSICAL:
            model_directory(spec)
    plan = make_plan(sampling)
    if dry_run:
        _print_plan(plan, run, shard)
        return
    resolve_device(run.device)
    contenders = load_contenders(list(run.models), run.device, run.blend)
    partial = run_shard(plan, contenders, Instruments.load(run), run, shard, progress=True)
    seconds = partial.environment["wall_seconds"]
    if shard.count > 1:
        path = partial.save(output / f"part-{shard.index}-of-{shard.count}.npz")
        console.print(f"shard {shard}: {len(partial.samples)} samples in {seconds:.0f} s -> {path}", highlight=False)
        return
    report = merge_parts([partial])
    written = report.write(output)
    typer.echo(report.markdown())
    console.print(f"{len(plan.samples)} samples in {seconds:.1f} s -> {', '.join(map(str, written.values()))}")


def _span(indices: range) -> str:
    return f"{indices.start}..{indices.stop - 1} ({len(indices)})" if indices else "none"


def _where(media) -> str:
    return media.path if media.frame is None else f"{media.path} frame {media.frame}"


def _print_plan(plan, run, shard) -> None:
    from facedancer.eval.protocols import face_rule

    cfg = plan.config
    samples = shard.samples(len(plan.samples), run.batch_size)
    gallery = shard.gallery(len(plan.gallery))
    lines = [
        f"protocol {cfg.protocol} on {cfg.data}"
        + (f", sources from {cfg.sources}" if cfg.sources else "")
        + (f", only the {len(cfg.identities)} listed identities" if cfg.identities else ""),
        f"seed {cfg.seed}, gallery {cfg.gallery_per_identity} per identity"
        + (f", {cfg.frames_per_video} frames per video" if cfg.protocol == "videos" else ""),
        f"{len(plan.samples)} samples of {len(plan.identities)} identities; gallery {len(plan.gallery)} pictures; "
        f"plan {plan.digest()[:12]}",
        f"shard {shard}: samples {_span(samples)}, gallery {_span(gallery)}",
        "models: baselines copy-target, paste-source" + "".join(f", {m}" for m in run.models),
        f"metrics: {', '.join(run.metrics)}; pose {run.pose_estimator}; recogniser {run.recogniser}",
    ]
    lines += [f"skipped {name}: {why}" for name, why in plan.skipped.items()]
    for i in list(samples)[:5]:
        s = plan.samples[i]
        lines.append(
            f"  {i}: target {_where(s.target)} ({s.target.identity}, {face_rule(s.target)} face) "
            f"<- source {_where(s.source)} ({s.source.identity})"
        )
    if len(samples) > 5:
        lines.append(f"  ... {len(samples) - 5} more")
    typer.echo("\n".join(lines))


@eval_app.command()
def merge(
    parts: Annotated[list[Path], typer.Argument(help="the part-K-of-N.npz files of one evaluation")],
    output: Annotated[Path, typer.Option("-o", "--output", help="report folder")],
) -> None:
    """Combine the shards of one evaluation into the report a single run would have written."""
    from facedancer.eval.report import merge as merge_parts
    from facedancer.eval.runner import Partial

    report = merge_parts([Partial.load(p) for p in parts])
    written = report.write(_output_dir(output))
    typer.echo(report.markdown())
    console.print(f"merged {len(parts)} parts -> {', '.join(map(str, written.values()))}")
