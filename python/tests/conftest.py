"""Shared fixtures. The tests import the source tree (python/reason), never a stale installed copy;
the library is found as the package finds it ($REASON_LIBRARY first, then the repository's build
folders)."""

import glob
import json
import os
import sys

import pytest

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_DIR = os.path.dirname(PYTHON_DIR)
MODELS_DIR = os.path.join(REPO_DIR, "tests", "data", "models")
SHARED_DATA = os.environ.get("REASON_SHARED_DATA", "/work/shared/data")
TOKENIZERS_DIR = os.path.join(SHARED_DATA, "tokenizers")

sys.path.insert(0, PYTHON_DIR)


def model_fixtures():
    """Names ("qwen3-F16", ...) of the tiny model fixtures with a GGUF and reference logits."""
    names = []
    for path in sorted(glob.glob(os.path.join(MODELS_DIR, "*.json"))):
        name = os.path.basename(path)[: -len(".json")]
        if name.endswith(("-tokenizer", "-tokenizer-cases")):
            continue
        if os.path.exists(os.path.join(MODELS_DIR, name + ".gguf")):
            names.append(name)
    return names


def load_reference(name):
    """(metadata dict, logits as an n_rows x n_vocab float32 numpy array) of a model fixture."""
    import numpy as np

    with open(os.path.join(MODELS_DIR, name + ".json")) as f:
        meta = json.load(f)
    logits = np.fromfile(os.path.join(MODELS_DIR, meta["logits_file"]), dtype="<f4")
    return meta, logits.reshape(meta["n_rows"], meta["n_vocab"])


@pytest.fixture(scope="session")
def qwen3_path():
    path = os.path.join(MODELS_DIR, "qwen3-F16.gguf")
    if not os.path.exists(path):
        pytest.skip("tests/data/models/qwen3-F16.gguf is absent")
    return path


@pytest.fixture(scope="session")
def qwen3(qwen3_path):
    import reason

    with reason.Model(qwen3_path) as model:
        yield model
