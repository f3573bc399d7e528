"""ui: the `trainflow ui` dashboard: workflows, their DAG, logs and curves, and a canvas to try the model."""

from trainflow.ui.app import create_app
from trainflow.ui.errors import UiError
from trainflow.ui.server import serve_ui

__all__ = ["UiError", "create_app", "serve_ui"]
