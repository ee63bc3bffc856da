"""Which models a server offers: one name per model directory, however the operator spelled it."""

from __future__ import annotations

from pathlib import Path

from facedancer.swap import CLASSICAL
from facedancer.ui.choices import model_choices


def directories(choices: dict) -> dict[str, str]:
    return {name: c.spec for name, c in choices.items() if c.kind == "directory"}


def test_one_directory_named_twice_is_offered_once(random_model: Path, tmp_path: Path):
    link = tmp_path / "link"
    link.symlink_to(random_model)
    spellings = [random_model, random_model.parent, random_model / ".." / random_model.name, link]
    choices = model_choices(spellings)
    assert directories(choices) == {random_model.name: str(random_model)}
    assert list(choices)[-1] == CLASSICAL


def test_two_directories_with_one_name_are_both_offered(random_model: Path, tmp_path: Path):
    copy = tmp_path / "copies" / random_model.name
    copy.mkdir(parents=True)
    for f in random_model.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    choices = model_choices([random_model, copy])
    assert directories(choices) == {random_model.name: str(random_model), f"{random_model.name}-2": str(copy)}
