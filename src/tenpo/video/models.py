"""Locations of the dlib model files shipped by the ``face-recognition-models`` package.

The package's own helpers import ``pkg_resources`` (deprecated, warns on import), so the
files are located through the import system instead, without importing the package.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

from tenpo.core.errors import ConfigError

__all__ = ["model_path"]

FILES = {
    "resnet": "dlib_face_recognition_resnet_model_v1.dat",
    "landmarks5": "shape_predictor_5_face_landmarks.dat",
    "landmarks68": "shape_predictor_68_face_landmarks.dat",
}


@cache
def model_path(name: str) -> str:
    """Path of a dlib model file (``resnet``, ``landmarks5``, ``landmarks68``)."""
    if name not in FILES:
        raise ConfigError(f"unknown face model {name!r}; expected one of {sorted(FILES)}")
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the face-recognition-models package is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / FILES[name]
    if not path.exists():
        raise ConfigError(f"face model file missing: {path}")
    return str(path)
