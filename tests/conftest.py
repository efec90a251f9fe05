"""Shared fixtures: a temporary MLflow store and Hydra composition of the project's configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

REPO_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = REPO_ROOT / "conf"


@pytest.fixture()
def store_uri(tmp_path: Path, monkeypatch) -> str:
    """A fresh SQLite MLflow store in a temporary folder, also set as $MLFLOW_TRACKING_URI."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


@pytest.fixture(scope="session")
def initialized_store(tmp_path_factory) -> Path:
    """An SQLite file with MLflow's tables made once (making them costs seconds)."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture()
def store(store_uri: str, initialized_store: Path) -> str:
    """``store_uri`` (also $MLFLOW_TRACKING_URI), starting as a copy of an empty store."""
    import shutil

    shutil.copyfile(initialized_store, store_uri[len("sqlite:///") :])
    return store_uri


@pytest.fixture()
def compose():
    """``compose(overrides) -> DictConfig`` using the real ``conf/`` tree and schema."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from backprop_lab.config import register_configs

    register_configs()

    def _compose(overrides: list[str] | None = None, *, return_hydra_config: bool = False):
        with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
            return hydra_compose(
                "train", overrides=list(overrides or []), return_hydra_config=return_hydra_config
            )

    return _compose
