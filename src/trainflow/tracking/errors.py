"""The tracking layer's one error: a bad tracking URI, an unknown registered model or alias."""

from trainflow.errors import TrainflowError


class TrackingError(TrainflowError):
    """Tracking or the registry cannot do what was asked, and the user can fix it (exit 2)."""
