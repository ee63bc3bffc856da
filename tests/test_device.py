"""The two device questions: a device as written (checked before any work) and each training process's own."""

import pytest
import torch

from facedancer.device import rank_device, resolve_device
from facedancer.errors import ConfigError


def test_a_named_device_is_checked_before_any_work():
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="--device 'foo': not a device"):
        resolve_device("foo")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_each_process_of_a_run_gets_its_own_device():
    gpu = torch.cuda.is_available()
    assert rank_device("auto", local_rank=1) == torch.device("cuda:1" if gpu else "cpu")
    assert rank_device("cpu", local_rank=3) == torch.device("cpu")
    with pytest.raises(ConfigError, match=r"train.device='foo' is not a device \(auto, cpu, cuda, cuda:N\)"):
        rank_device("foo")
    with pytest.raises(ConfigError, match="eval.device='mps'"):
        rank_device("mps", setting="eval.device")
    if gpu:
        assert rank_device("cuda", local_rank=0) == torch.device("cuda", 0)  # no index: this process's GPU
    else:
        with pytest.raises(ConfigError, match="not available here"):
            rank_device("cuda")
