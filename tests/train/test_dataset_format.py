"""The format of a prepared dataset: its completion record makes a truncated, edited or unfinished manifest
one line saying how to finish it, and garbage is never read as a manifest."""

import json

import pytest

from facedancer.errors import InputError
from facedancer.train.data import CropIndex
from facedancer.train.dataset_format import read_manifest, write_record
from facedancer.train.prepare import PrepareOptions, prepare


def test_a_prepared_dataset_knows_it_is_complete(lfw_crops, tmp_path, lfw):
    """A manifest truncated mid-file, garbage, or without its completion record is refused with one line
    saying how to finish it; a rerun of prepare restores it without aligning anything again."""
    rows = read_manifest(lfw_crops)
    record = json.loads((lfw_crops / "prepared.json").read_text())
    assert record["rows"] == len(rows)
    data = tmp_path / "data"
    data.mkdir()
    (data / "crops").symlink_to(lfw_crops / "crops")
    for name in ("progress.jsonl", "prepared.json"):
        (data / name).write_bytes((lfw_crops / name).read_bytes())
    whole = (lfw_crops / "manifest.csv").read_bytes()
    truncated, binary, edited = whole[: len(whole) * 6 // 10], bytes(range(256)) * 8, whole.replace(b"Aar", b"Bar", 1)
    for content in (truncated, binary, edited):
        (data / "manifest.csv").write_bytes(content)
        for read in (read_manifest, CropIndex.open):
            with pytest.raises(InputError, match="not a complete.*truncated or changed.*rerun `facedancer prepare"):
                read(data)
    (data / "manifest.csv").write_bytes(whole)
    (data / "prepared.json").unlink()  # prepare killed before its record, or a dataset made before records existed
    with pytest.raises(InputError, match="no completion record"):
        read_manifest(data)
    # the fix the message gives: rerun prepare on the same source (nothing is aligned again)
    src = tmp_path / "src"
    src.mkdir()
    for person in sorted(p for p in lfw.iterdir() if p.is_dir())[:20]:
        (src / person.name).symlink_to(person)
    (data / "manifest.csv").write_bytes(whole[:1000])
    assert prepare(src, data, PrepareOptions(min_face=64)).processed == 0
    assert (data / "manifest.csv").read_bytes() == whole and read_manifest(data) == rows


def test_a_manifest_without_a_record_that_is_garbage_is_one_line(tmp_path):
    (tmp_path / "manifest.csv").write_bytes(b"\xff\xfe\x00garbage\x00\x81")
    write_record(tmp_path, 1)  # even a record that matches cannot make garbage a manifest
    with pytest.raises(InputError, match="is not a manifest written by `facedancer prepare`"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.csv").write_text("name,path\nx,y\n")
    write_record(tmp_path, 1)
    with pytest.raises(InputError, match="no column 'identity'"):
        read_manifest(tmp_path)
