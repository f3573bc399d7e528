"""The model of this example: a small network for any table of features (or flattened images).

trainflow calls the factory with the arguments it names: the examples' shape and the number of classes,
read from the synced dataset.
"""

from __future__ import annotations

import math


def make_model(input_shape: tuple[int, ...], num_classes: int):  # torch loads only in the workers
    """Two hidden layers of 32 units with a dropout between them."""
    from torch import nn

    features = math.prod(input_shape)
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(features, 32),
        nn.ReLU(),
        nn.Dropout(0.1),
        nn.Linear(32, 32),
        nn.ReLU(),
        nn.Linear(32, num_classes),
    )
