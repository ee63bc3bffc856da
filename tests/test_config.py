"""``--shard K/N``, parsed once for every command that splits its work."""

import pytest

from facedancer.config import parse_shard
from facedancer.errors import ConfigError


@pytest.mark.parametrize("text, shard", [("0/1", (0, 1)), ("3/8", (3, 8)), ("07/10", (7, 10))])
def test_a_shard_is_part_k_of_n(text, shard):
    assert parse_shard(text) == shard


@pytest.mark.parametrize("text", ["half", "1", "1/", "/2", "-1/2", "2/2", "3/2", "0/0", "a/b", "1/2/3"])
def test_anything_else_is_one_line_naming_the_form(text):
    with pytest.raises(ConfigError, match=r"--shard expects K/N with 0 <= K < N \(for example 0/4\), got"):
        parse_shard(text)
