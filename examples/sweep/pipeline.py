"""A learning-rate sweep: make data, fit it with 3 learning rates on 2 workers each, keep the best, serve a report.

trainflow submit examples/sweep/pipeline.py -p out=/tmp/sweep --wait
"""

import json

from trainflow.pipelines import (
    HOST,
    ITEM,
    Call,
    Param,
    Pipeline,
    Port,
    Probe,
    Service,
    Train,
    output,
    param,
    port,
)

LEARNING_RATES = ["0.05", "0.2", "0.5"]

PIPELINE = Pipeline(
    name="sweep",
    description="Fit a line with three learning rates and serve a report on the best one.",
    artifacts_url=param("artifacts"),
    params=(
        Param("out", "/tmp/trainflow-sweep", "Folder for the data and the report."),
        Param("artifacts", "", "Where steps publish files (default: the local store; s3://... on Kubernetes)."),
        Param("rows", 64, "Points to fit.", type="int", minimum=2),
        Param("steps", 30, "Training steps per learning rate.", type="int", minimum=1),
        Param("workers", 2, "Training processes per learning rate.", type="int", minimum=1),
        Param("max-loss", 0.5, "Serve the report only if the best loss is below this.", type="float"),
    ),
    steps=(
        Call(
            name="make-data",
            function="sweep_steps:make_data",
            inputs={"rows": param("rows"), "out": param("out")},
            outputs=("rows",),
            artifacts=("data",),
        ),
        Train(
            name="fit",
            function="sweep_steps:fit",
            workers=param("workers"),
            for_each=LEARNING_RATES,
            inputs={"data": output("make-data", "data"), "lr": ITEM, "steps": param("steps")},
            outputs=("loss", "weight", "workers"),
            retries=1,
            timeout=300,
        ),
        Call(
            name="pick",
            function="sweep_steps:pick",
            inputs={"loss": output("fit", "loss"), "lr": json.dumps(LEARNING_RATES)},
            outputs=("best-lr", "best-loss"),
        ),
        Call(
            name="report",
            function="sweep_steps:report",
            when="pick.best-loss < params.max-loss",
            inputs={
                "best_lr": output("pick", "best-lr"),
                "best_loss": output("pick", "best-loss"),
                "out": f"{param('out')}/report",
            },
            artifacts=("report",),
        ),
        Service(
            name="show",
            argv=(
                "python",
                "-m",
                "http.server",
                port("http"),
                "--bind",
                HOST,
                "--directory",
                output("report", "report"),
            ),
            ports=(Port("http", 8000),),
            probe=Probe("http", "/"),
            urls={"url": "http://{host}:{http}/"},
        ),
    ),
)
