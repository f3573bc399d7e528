"""Your own model on your own data: sync a dataset, train `my_model:make_model` on it, export it, serve it.

    trainflow submit examples/own-model/pipeline.py -p data=DIR_OR_URL -p model-name=NAME --wait

Nothing here comes from model-train: each step says what it provides (`serves`, `train_dir`, `kinds`), so
`trainflow predict --workflow RUN`, `trainflow tensorboard RUN`, `compare`, `list -o wide` and the dashboard
find the model server, TensorBoard and the train dir of this run as they do for the built-in one.
"""

from trainflow.pipelines import HOST, Command, Param, Pipeline, Port, Probe, Service, Train, output, param, port

STEP = ("trainflow", "step")

PIPELINE = Pipeline(
    name="own-model",
    description="Sync a dataset, train my_model:make_model on it, export and serve it under model-name.",
    name_param="run",
    params=(
        Param("run", "own-model", "Names the run, its train dir and its exported versions.", cache_key=False),
        Param("data", "", "The dataset: a folder (CSV, Parquet, .npy/.npz, images, IDX) or its URL.", type="url"),
        Param("model-name", "own-model", "Name the model is served under.", type="model-name"),
        Param("steps", 300, "Training steps.", type="int", minimum=1),
        Param("workers", 1, "Training processes.", type="int", minimum=1),
        Param(
            "store",
            "",
            "Where checkpoints, logs and models go (default: the local store).",
            type="url",
            local_store="models",
        ),
    ),
    steps=(
        Command(
            name="sync",
            argv=(*STEP, "download-dataset", "--s3-data-url", param("data")),
            outputs=("dataset-name", "dataset-path", "bytes-downloaded"),
            artifacts=("dataset-path",),
            kinds={"dataset-path": "dataset"},
        ),
        Command(
            name="paths",
            argv=(*STEP, "get-workflow-info", "--job-name", param("run"), "--s3-train-base-url", param("store")),
            locations=("train-dir", "logs-dir", "checkpoints-dir", "export-base"),
            cache=False,
        ),
        Service(
            name="board",
            argv=(
                *STEP,
                "tensorboard",
                "--logdir",
                output("paths", "logs-dir"),
                "--port",
                port("http"),
                "--host",
                HOST,
            ),
            ports=(Port("http", 6006, "http"),),
            probe=Probe("http", "/"),
            serves="tensorboard",
        ),
        Train(
            name="fit",
            workers=param("workers"),
            argv=(
                *STEP,
                "train-model",
                "--data-dir",
                output("sync", "dataset-path"),
                "--train-dir",
                output("paths", "train-dir"),
                "--workers",
                param("workers"),
                "--train-steps",
                param("steps"),
                "--batch-size",
                "32",
                "--learning-rate",
                "0.01",
                "--model",
                "my_model:make_model",
            ),
            train_dir=output("paths", "train-dir"),
        ),
        Command(
            name="export",
            argv=(
                *STEP,
                "export-model",
                "--train-dir",
                output("paths", "train-dir"),
                "--export-base",
                output("paths", "export-base"),
                "--model",
                "my_model:make_model",
            ),
            depends=("fit",),
            outputs=("model-version",),
            artifacts=("export-base",),
            kinds={"model-version": "model-version"},
        ),
        Service(
            name="serve",
            argv=(
                *STEP,
                "serve-model",
                "--model-name",
                param("model-name"),
                "--export-base",
                output("export", "export-base"),
                "--rest-port",
                port("rest"),
                "--grpc-port",
                port("grpc"),
                "--host",
                HOST,
            ),
            ports=(Port("rest", 8501, "http"), Port("grpc", 9000, "grpc")),
            probe=Probe("rest", "/v2/health/ready"),
            serves="model",
            model_name=param("model-name"),
        ),
    ),
)
