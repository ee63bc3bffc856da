"""Commands about models and assets: describe, export, and ``models list|fetch|verify|add|bundle``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from facedancer import assets
from facedancer.cli.app import app

# torch and the networks are imported inside the commands that need them, so that `facedancer inspect`,
# `models list` and `--help` start in a fraction of a second

console = Console()
models_app = typer.Typer(
    help="List, fetch, verify and add the external files facedancer uses; bundle a trained model to ship.",
    no_args_is_help=True,
)
app.add_typer(models_app, name="models")


def _networks(spec: str) -> tuple:
    """(name, G, D or None) from a preset name, a preset YAML file, or a model directory, without weights."""
    from facedancer.nn import Discriminator, Generator
    from facedancer.nn.pretrained import CONFIG_NAME, Pretrained
    from facedancer.presets import load_preset

    if (Path(spec) / CONFIG_NAME).is_file():
        cls, config = Pretrained.read_config(spec)
        if cls is not Generator:
            raise typer.BadParameter(f"{spec} holds a {cls.__name__}, not a Generator")
        return str(spec), Generator(config), None
    preset = load_preset(spec)
    return preset.name, Generator(preset.generator), Discriminator(preset.discriminator)


@app.command()
def describe(spec: Annotated[str, typer.Argument(help="preset name, preset YAML, or model directory")]) -> None:
    """Print the generator's stages, the fusion at each, and the parameter counts of G, M and D."""
    from facedancer.nn import parameter_count

    name, g, d = _networks(spec)
    cfg = g.config
    table = Table(title=f"{name}: generator stages ({cfg.image_size} px)")
    for col in ("stage", "fuses at", "fusion", "channels", "params"):
        table.add_column(col, justify="right" if col in ("fuses at", "params") else "left")
    for i, (res, kind, fuse, up) in enumerate(g.stages()):
        table.add_row(
            f"D{i}",
            f"{res}x{res}",
            kind,
            f"{up.conv.in_channels} -> {up.conv.out_channels}",
            f"{parameter_count(fuse) + parameter_count(up):,}",
        )
    console.print(table)
    encoder = sum(parameter_count(m) for m in (g.stem, g.down, g.bottleneck))
    console.print(
        f"G = {parameter_count(g):,} parameters  (mapping {parameter_count(g.mapping):,}: "
        f"depth {cfg.mapping_depth}, width {cfg.mapping_width}; encoder {encoder:,}; "
        f"identity {cfg.identity_dim}-d)",
        highlight=False,
    )
    if d is not None:
        console.print(f"D = {parameter_count(d):,} parameters", highlight=False)


@app.command()
def export(
    checkpoint: Annotated[Path, typer.Argument(help="model directory (config.json + model.safetensors)")],
    output: Annotated[Path, typer.Option("-o", "--output", help="the .onnx file to write")],
    opset: Annotated[int, typer.Option(help="ONNX opset")] = 18,
) -> None:
    """Export a generator to ONNX with a dynamic batch axis."""
    from facedancer.atomic import overwritten_input
    from facedancer.errors import OutputError
    from facedancer.export import check_target, export_onnx
    from facedancer.nn import Generator

    if clash := overwritten_input([output], checkpoint.iterdir() if checkpoint.is_dir() else [checkpoint]):
        raise OutputError(f"cannot write {output}: it would overwrite the input {clash[1]}")
    check_target(output, opset)
    generator = Generator.from_pretrained(checkpoint)
    export_onnx(generator, output, opset=opset)
    console.print(f"wrote {output}")


@models_app.command("list")
def list_assets() -> None:
    """Every registered file: where it comes from, its licence, and whether it is here and verified."""
    table = Table()
    for col in ("name", "source", "licence", "status"):
        table.add_column(col)
    for name in sorted(assets.REGISTRY):
        st = assets.status(name)
        table.add_row(
            name,
            f"{st.asset.kind}: {st.asset.source}",
            st.asset.licence,
            st.detail if st.ok else f"[red]{st.detail}[/red]",
        )
    console.print(table)


@models_app.command()
def fetch(name: Annotated[str, typer.Argument(help="registered asset name")]) -> None:
    """Download a registered file into the cache and verify its sha256 (the only command that downloads)."""
    console.print(f"{name}: {assets.fetch(name)}")


@models_app.command()
def verify(name: Annotated[str | None, typer.Argument(help="asset name; all when omitted")] = None) -> None:
    """Check files against their sha256; exit 2 if any present file fails."""
    failed = False
    for n in [name] if name else sorted(assets.REGISTRY):
        st = assets.status(n)
        console.print(f"{n}: {st.detail}", highlight=False)
        failed |= st.path is not None and not st.ok
    if failed:
        raise typer.Exit(2)


@models_app.command()
def add(
    name: Annotated[str, typer.Argument(help="registered asset name")],
    file: Annotated[Path, typer.Option("--file", help="the file to add to the cache")],
) -> None:
    """Add a file you obtained yourself (for example ArcFace weights) to the cache."""
    console.print(f"{name}: {assets.add(name, file)}")


@models_app.command()
def bundle(
    generator: Annotated[Path, typer.Argument(help="a trained generator: runs/.../checkpoints/step-N/generator")],
    output: Annotated[Path, typer.Option("-o", "--output", help="the new model directory")],
    card: Annotated[
        Path | None, typer.Option(help="Markdown for the model card: data, steps, hardware, metrics, licence")
    ] = None,
) -> None:
    """Make a trained generator shippable: fp16 weights and a model card (README.md) with its facts."""
    from facedancer.bundle import bundle_model
    from facedancer.errors import InputError

    try:
        text = card.read_text(encoding="utf-8") if card else ""
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read --card {card}: {e}") from None
    out = bundle_model(generator, output, text)
    size = sum(p.stat().st_size for p in out.iterdir()) / 2**20
    console.print(f"wrote {out} ({size:.1f} MiB); `facedancer swap --model {out}` uses it", highlight=False)
