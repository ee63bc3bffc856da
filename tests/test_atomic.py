import os
import stat

import pytest

from facedancer.atomic import atomic_dir, atomic_path


def test_written_file_appears_only_on_success_with_normal_permissions(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_path(target) as tmp:
        assert tmp.suffix == ".txt" and tmp.parent == target.parent
        tmp.write_text("done")
        assert not target.exists()
    assert target.read_text() == "done"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


def test_failure_leaves_target_untouched_and_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_dir_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(target) as staging:
        (staging / "new.txt").write_text("half")
        raise RuntimeError("killed halfway")
    assert [p.name for p in tmp_path.iterdir()] == ["model"] and (target / "old.txt").read_text() == "old"
    with atomic_dir(target) as staging:
        (staging / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.txt"] and [p.name for p in tmp_path.iterdir()] == ["model"]


def test_failure_removes_the_folders_it_made_and_names_a_file_in_the_way(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "a" / "b" / "out.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "file").write_text("x")
    for target in (tmp_path / "file" / "out.txt", tmp_path / "file" / "a" / "out.txt"):
        with pytest.raises(NotADirectoryError, match="file is a file, not a folder"), atomic_path(target):
            pass
    assert [p.name for p in tmp_path.iterdir()] == ["file"]
