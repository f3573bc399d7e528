"""model-train with a gate: serve the model only if its test accuracy reaches min-accuracy.

trainflow submit examples/gated/pipeline.py -p job-name=gated-1 -p min-accuracy=0.95 --wait
"""

from dataclasses import replace

from trainflow.pipelines import Call, Param, Pipeline, output
from trainflow.pipelines.builtin import MODEL_TRAIN

serve = MODEL_TRAIN.step("serve-model")

PIPELINE = Pipeline(
    name="gated-train",
    description="model-train, serving only a model whose test accuracy reaches min-accuracy.",
    name_param="job-name",
    params=(*MODEL_TRAIN.params, Param("min-accuracy", 0.97, "Serve only from this test accuracy on.", type="float")),
    steps=(
        *(step for step in MODEL_TRAIN.steps if step is not serve),
        Call(
            name="evaluate",
            function="gate:evaluate",
            inputs={"metrics_url": output("train-model", "metrics-url")},
            outputs=("accuracy", "steps"),
        ),
        replace(
            serve,
            depends=("evaluate",),
            when="params.model-serving == true and evaluate.accuracy >= params.min-accuracy",
        ),
    ),
)
