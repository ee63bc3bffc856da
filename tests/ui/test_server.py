"""The HTTP API as scripts use it: ``facedancer ui`` in its own process and a real HTTP client."""

from __future__ import annotations

import httpx2 as httpx
import pytest

from facedancer.io import read_image, read_label

from .conftest import BAD_UPLOAD_MESSAGES


def swap(url: str, source, target, **data) -> httpx.Response:
    files = [("source", (source.name, source.read_bytes())), ("target", (target.name, target.read_bytes()))]
    return httpx.post(url + "api/swap", files=files, data={"model": "classical", **data}, timeout=120)


def test_swap_returns_the_labelled_result(server, pair, tmp_path):
    answer = swap(server, *pair)
    assert answer.status_code == 200, answer.text
    out = tmp_path / "swapped.jpg"
    out.write_bytes(answer.content)
    assert read_image(out).shape == (250, 250, 3)
    assert read_label(out).model == "classical"


def test_bad_uploads_get_a_4xx_and_one_line_and_the_server_goes_on(server, pair, bad_uploads, tmp_path):
    for case, path in bad_uploads.items():
        answer = swap(server, pair[0], path) if case == "truncated-video" else swap(server, path, pair[1])
        assert answer.status_code == 400, (case, answer.text)
        assert answer.json()["error"].startswith(BAD_UPLOAD_MESSAGES[case]), answer.json()
        assert "\n" not in answer.json()["error"]
    big = tmp_path / "big.png"  # over the server's 2 MiB limit: refused before it is read
    big.write_bytes(b"\0" * (3 << 20))
    answer = swap(server, big, pair[1])
    assert answer.status_code == 413
    assert answer.json() == {"error": "the upload is larger than this server's limit of 2 MiB"}
    assert swap(server, *pair).status_code == 200  # still serving


@pytest.mark.parametrize("path", ["api/jobs/0123456789abcdef0123456789abcdef", "api/jobs/../../etc/passwd"])
def test_unknown_jobs_are_404(server, path):
    answer = httpx.get(server + path)
    assert answer.status_code == 404 and "error" in answer.json()
