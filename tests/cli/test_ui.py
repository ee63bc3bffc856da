"""``facedancer ui`` as a command: an optional extra that the rest of the CLI never loads."""

import importlib.util
import subprocess
import sys


def test_the_cli_does_not_load_the_web_stack():
    code = "import sys, facedancer.cli; sys.exit(bool({'starlette', 'uvicorn'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_missing_extra_is_one_line(run, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real(name, *a))
    code, _, err = run("ui", "--port", "0")
    assert code == 2
    assert err.strip() == (
        "error: facedancer ui needs the ui extra (uvicorn missing): pip install 'facedancer-pytorch[ui]'"
    )


def test_port_in_use_is_one_line(run):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = run("ui", "--port", port)
    assert code == 2 and err.startswith(f"error: cannot listen on 127.0.0.1:{port}: ") and err.count("\n") == 1


def test_a_folder_without_models_is_one_line(run, tmp_path):
    code, _, err = run("ui", "--port", "0", "--models", tmp_path)
    assert code == 2 and err.strip() == f"error: {tmp_path} is not a facedancer model: config.json is missing"
