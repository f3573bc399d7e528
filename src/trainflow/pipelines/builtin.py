"""The built-in pipelines, `model-train`, `model-deploy` and `model-tune`, written with the public API: copy and edit them.

`model-train` is the Kubeflow example's workflow: cache the dataset, resolve the run's paths, start
TensorBoard, train data-parallel, export a numbered model version, serve it. Every step is a
`trainflow step ...` command, so the local runner and the Argo workflow run the same commands.
"""

from __future__ import annotations

from dataclasses import replace
from typing import cast

from trainflow.pipelines.params import Param
from trainflow.pipelines.pipeline import Pipeline
from trainflow.pipelines.programs import trainflow_step
from trainflow.pipelines.refs import HOST, output, param, port
from trainflow.pipelines.steps import Command, Port, Probe, Resources, Service, Train
from trainflow.pipelines.tuning import ALGORITHMS, BEST_TRAIN_DIR, DIRECTIONS, EARLY_STOPPING, Tune
from trainflow.training.choices import LR_SCHEDULES, OPTIMIZERS, PRECISIONS

IMAGE = "ghcr.io/trainflow/trainflow:0.1.0"
# The mirror TensorFlow's MNIST tutorials download from (the original host no longer serves it).
MNIST_MIRROR = "https://storage.googleapis.com/cvdf-datasets/mnist/"
STORAGE = ("--aws-endpoint-url", param("aws-endpoint-url"), "--aws-region", param("aws-region"))

COMMON_PARAMS = (
    Param("namespace", "default", "Kubernetes namespace of the workflow and its jobs.", type="dns-label"),
    Param("serve-cpu", "250m", "CPU each model server pod requests (Kubernetes).", type="quantity"),
    Param("serve-memory", "512Mi", "Memory each model server pod requests (Kubernetes).", type="quantity"),
    Param("tf-model-image", IMAGE, "Image every step runs in (Kubernetes).", type="image"),
    Param("tf-serving-image", IMAGE, "Image of the model server (Kubernetes).", type="image"),
    Param("tf-tensorboard-image", IMAGE, "Image of TensorBoard (Kubernetes).", type="image"),
    Param("model-name", "mnist", "Name the model is served under.", type="model-name"),
    Param(
        "model-serving-servicetype",
        "ClusterIP",
        "Kubernetes Service type of the model server.",
        type="choice",
        choices=("ClusterIP", "NodePort", "LoadBalancer"),
    ),
    Param(
        "s3-train-base-url",
        "",
        "Where runs keep checkpoints, logs and exported models (default: $TRAINFLOW_HOME/store/models).",
        type="url",
        local_store="models",
    ),
    Param(
        "aws-endpoint-url",
        "",
        "S3 endpoint (default: s3-endpoint, else AWS_ENDPOINT_URL).",
        type="endpoint",
        fallback=param("s3-endpoint"),
    ),
    Param("s3-endpoint", "", "S3 endpoint as host:port (the example's S3_ENDPOINT).", type="host"),
    Param("aws-region", "", "S3 region (default: AWS_REGION).", type="region"),
    Param(
        "aws-secret",
        "aws-creds",
        "Kubernetes Secret with keys awsAccessKeyID / awsSecretAccessKey.",
        type="secret-name",
    ),
    Param(
        "mlflow-secret",
        "",
        "Kubernetes Secret with key MLFLOW_TRACKING_URI (optional MLFLOW_TRACKING_USERNAME, MLFLOW_TRACKING_PASSWORD, "
        "MLFLOW_TRACKING_TOKEN): every pod tracks to that MLflow server.",
        type="tracking-secret",
    ),
    Param("mlflow-tracking-uri", "", "MLflow server to track to (wins over MLFLOW_TRACKING_URI).", type="tracking-uri"),
    Param("mlflow-experiment", "", "MLflow experiment (default: the pipeline's name).", type="tracking-experiment"),
)


def workflow_info_step(job_param: str) -> Command:
    """The run's paths, named after `job_param`: places to write, so they never make a later step re-run."""
    return Command(
        name="get-workflow-info",
        argv=trainflow_step(
            "get-workflow-info",
            "--job-name",
            param(job_param),
            "--s3-train-base-url",
            param("s3-train-base-url"),
        ),
        locations=("train-dir", "logs-dir", "checkpoints-dir", "export-base"),
        cache=False,
        image=param("tf-model-image"),
    )


SERVE_MODEL = Service(
    name="serve-model",
    argv=trainflow_step(
        "serve-model",
        "--model-name",
        param("model-name"),
        "--export-base",
        output("export-model", "export-base"),
        "--rest-port",
        port("rest"),
        "--grpc-port",
        port("grpc"),
        *STORAGE,
        "--host",
        HOST,
    ),
    when="params.model-serving == true",
    ports=(Port("rest", 8501, "http"), Port("grpc", 9000, "grpc")),
    probe=Probe("rest", "/v2/health/ready"),
    liveness=Probe("rest", "/v2/health/live"),
    service_type=param("model-serving-servicetype"),
    kube_name="{workflow}-model-server",
    serves="model",
    model_name=param("model-name"),
    outputs=("rest-url", "grpc-address", "model-version", "model-name"),
    kinds={"model-version": "model-version"},
    image=param("tf-serving-image"),
    resources=Resources(cpu=param("serve-cpu"), memory=param("serve-memory")),
)

MODEL_TRAIN = Pipeline(
    name="model-train",
    description="Cache the dataset, train data-parallel, watch in TensorBoard, export, serve.",
    name_param="job-name",
    params=(
        Param("job-name", "myjob", "Names the run: its train dir, export dir and workflow (unique).", cache_key=False),
        *COMMON_PARAMS,
        Param("tf-worker", "1", "Number of training workers.", type="int", minimum=1),
        Param("train-cpu", "1", "CPU each training pod requests (Kubernetes; a quantity: 500m, 2).", type="quantity"),
        Param("train-memory", "1Gi", "Memory each training pod requests (Kubernetes).", type="quantity"),
        Param("train-gpu", "0", "GPUs each training pod gets (Kubernetes; nvidia.com/gpu).", type="int", minimum=0),
        Param(
            "training-runtime",
            "torch-distributed",
            "--job-kind trainjob: the Kubeflow Trainer v2 ClusterTrainingRuntime the TrainJob runs on.",
            type="training-runtime",
        ),
        Param(
            "tf-ps",
            "2",
            "Parameter servers: accepted for compatibility; PS replicas do not train.",
            type="int",
            minimum=0,
        ),
        Param("model-hidden-units", "100", "Hidden units of the example's one-layer model.", type="int", minimum=1),
        Param("model-train-steps", "200", "Global training steps.", type="int", minimum=1),
        Param("model-batch-size", "100", "Batch size per worker.", type="int", minimum=1),
        Param("model-learning-rate", "0.01", "Learning rate.", type="float", above=0),
        Param("model-optimizer", "adam", "Optimizer.", type="choice", choices=OPTIMIZERS),
        Param(
            "model-lr-schedule",
            "constant",
            "Learning rate over the run: constant, or cosine-annealed to 0.",
            type="choice",
            choices=LR_SCHEDULES,
        ),
        Param(
            "model-precision",
            "auto",
            "fp32, bf16 (mixed precision), or auto: bf16 on CPUs with bfloat16 instructions.",
            type="choice",
            choices=PRECISIONS,
        ),
        Param(
            "model-eval-every",
            "0",
            "Steps between evaluations on the test split (TensorBoard); 0: only at the end.",
            type="int",
            minimum=0,
        ),
        Param("model-serving", "true", "Serve the exported model (true/false).", type="bool"),
        Param(
            "s3-data-url",
            "",
            "Where the dataset is: s3://, http(s)://, file:// or a path (default: the public MNIST mirror).",
            type="url",
            fallback=MNIST_MIRROR,
        ),
        Param(
            "data-format",
            "auto",
            "The dataset's format (auto: detected from its files).",
            type="choice",
            choices=("auto", "idx", "npz", "npy", "images", "csv", "parquet"),
        ),
        Param("data-label-column", "", "CSV/Parquet: the label column (default: label, target, class or y)."),
        Param("data-image-size", "", "Image folders: resize every image to N or HxW (default: the most common size)."),
        Param(
            "model",
            "auto",
            "Model: auto (cnn for images, mlp for feature vectors), cnn, mlp, or module:attr of a factory returning a torch.nn.Module.",
            type="model-factory",
        ),
        Param(
            "register-model",
            "",
            "Register the exported model as a new version of this MLflow registered model (needs a tracking server).",
            type="model-name",
        ),
        Param(
            "register-alias",
            "",
            "Move this alias of the registered model (e.g. champion) to the new version.",
            type="model-name",
        ),
    ),
    steps=(
        Command(
            name="download-dataset",
            argv=trainflow_step(
                "download-dataset",
                "--s3-data-url",
                param("s3-data-url"),
                "--format",
                param("data-format"),
                "--label-column",
                param("data-label-column"),
                "--image-size",
                param("data-image-size"),
                *STORAGE,
            ),
            retries=2,
            outputs=("dataset-name", "dataset-path", "bytes-downloaded"),
            artifacts=("dataset-path",),
            kinds={"dataset-path": "dataset"},
            image=param("tf-model-image"),
        ),
        workflow_info_step("job-name"),
        Service(
            name="tensorboard",
            argv=trainflow_step(
                "tensorboard",
                "--logdir",
                output("get-workflow-info", "logs-dir"),
                "--port",
                port("http"),
                *STORAGE,
                "--host",
                HOST,
            ),
            ports=(Port("http", 6006, "http"),),
            probe=Probe("http", "/"),
            serves="tensorboard",
            outputs=("url",),
            image=param("tf-tensorboard-image"),
        ),
        Train(
            name="train-model",
            workers=param("tf-worker"),
            ps=param("tf-ps"),
            resources=Resources(cpu=param("train-cpu"), memory=param("train-memory"), gpu=param("train-gpu")),
            kube_name="{workflow}",
            argv=trainflow_step(
                "train-model",
                "--data-dir",
                output("download-dataset", "dataset-path"),
                "--train-dir",
                output("get-workflow-info", "train-dir"),
                "--workers",
                param("tf-worker"),
                "--train-steps",
                param("model-train-steps"),
                "--batch-size",
                param("model-batch-size"),
                "--learning-rate",
                param("model-learning-rate"),
                "--optimizer",
                param("model-optimizer"),
                "--lr-schedule",
                param("model-lr-schedule"),
                "--eval-every",
                param("model-eval-every"),
                "--precision",
                param("model-precision"),
                "--hidden-units",
                param("model-hidden-units"),
                "--model",
                param("model"),
                "--export-base",
                output("get-workflow-info", "export-base"),
                "--register-model",
                param("register-model"),
                "--register-alias",
                param("register-alias"),
                *STORAGE,
            ),
            depends=("download-dataset", "get-workflow-info"),
            train_dir=output("get-workflow-info", "train-dir"),
            outputs=("accuracy", "global-step", "metrics-url"),
            artifacts=("train-dir",),
            image=param("tf-model-image"),
        ),
        Command(
            name="export-model",
            argv=trainflow_step(
                "export-model",
                "--train-dir",
                output("get-workflow-info", "train-dir"),
                "--export-base",
                output("get-workflow-info", "export-base"),
                "--model",
                param("model"),
                "--hidden-units",
                param("model-hidden-units"),
                *STORAGE,
            ),
            depends=("train-model",),
            retries=2,
            outputs=("model-version", "model-url", "global-step"),
            artifacts=("export-base",),
            kinds={"model-version": "model-version"},
            image=param("tf-model-image"),
        ),
        SERVE_MODEL,
    ),
)

MODEL_DEPLOY = Pipeline(
    name="model-deploy",
    description="Serve a finished model-train workflow's exported model under the same model name.",
    name_param="workflow",
    name_suffix="-deploy",
    inherit_from="workflow",
    params=(
        Param(
            "workflow",
            "",
            "The model-train workflow (its job-name) whose model to serve; with model-uri, names the deployment.",
            cache_key=False,
        ),
        *COMMON_PARAMS,
        Param("model-serving", "true", "Serve the model (always true for model-deploy).", type="bool"),
        Param(
            "model-uri",
            "",
            "Serve this MLflow registry model instead: models:/NAME@ALIAS (followed as it moves) or models:/NAME/N.",
            type="registry-model",
        ),
    ),
    steps=(
        workflow_info_step("workflow"),
        replace(
            SERVE_MODEL,
            argv=(
                *(
                    a.replace(
                        "{{steps.export-model.outputs.export-base}}", "{{steps.get-workflow-info.outputs.export-base}}"
                    )
                    for a in SERVE_MODEL.command
                ),
                "--model-uri",
                param("model-uri"),
            ),
        ),
    ),
)


def _without(argv: tuple[str, ...], option: str) -> tuple[str, ...]:
    """`argv` without `option` and its value."""
    at = argv.index(option)
    return (*argv[:at], *argv[at + 2 :])


def _tune_pipeline(train: Pipeline) -> Pipeline:
    """model-train with train-model run as a study's trials (none of them exports), then the best trial exported."""
    trainer = train.step("train-model")
    trial = replace(cast(Train, trainer), argv=_without(trainer.command, "--export-base"))
    tune = Tune(
        name="tune-model",
        trial=trial,
        search_space=param("search-space"),
        objective=param("objective"),
        direction=param("direction"),
        max_trials=param("max-trials"),
        parallel_trials=param("parallel-trials"),
        time_budget=param("time-budget"),
        algorithm=param("algorithm"),
        early_stopping=param("early-stopping"),
        seed=param("seed"),
        budget_param="model-train-steps",
        image=param("tf-model-image"),
    )
    exporter = train.step("export-model")
    argv = _without(_without(exporter.command, "--hidden-units"), "--model")  # the best checkpoint says its model
    best = str(output("tune-model", BEST_TRAIN_DIR))
    export = replace(
        cast(Command, exporter),
        argv=tuple(best if a == str(output("get-workflow-info", "train-dir")) else a for a in argv),
        depends=("tune-model",),
    )
    steps = tuple(tune if s is trainer else export if s is exporter else s for s in train.steps)
    return Pipeline(
        name="model-tune",
        description="model-train with a hyperparameter study in place of train-model: export and serve its best model.",
        name_param=train.name_param,
        params=(*(TUNE_DEFAULTS.get(p.name, p) for p in train.params), *TUNE_PARAMS),
        steps=steps,
    )


SEARCH_SPACE = (
    '{"model-learning-rate": {"type": "float", "low": 0.0001, "high": 0.1, "log": true}, '
    '"model-hidden-units": {"type": "int", "low": 32, "high": 256}, '
    '"model-optimizer": {"type": "choice", "values": ["adam", "sgd"]}}'
)
TUNE_PARAMS = (
    Param("max-trials", "12", "Trials in all.", type="int", minimum=1),
    Param("parallel-trials", "2", "Trials at once, each a training job with tf-worker workers.", type="int", minimum=1),
    Param("algorithm", "tpe", "How trials are chosen.", type="choice", choices=ALGORITHMS),
    Param(
        "early-stopping",
        "median",
        "Stop trials whose intermediate objective falls behind (model-eval-every sets how often it is measured).",
        type="choice",
        choices=EARLY_STOPPING,
    ),
    Param("objective", "accuracy", "The metric the study optimizes: an output of train-model."),
    Param("direction", "maximize", "maximize or minimize the objective.", type="choice", choices=DIRECTIONS),
    Param(
        "search-space",
        SEARCH_SPACE,
        "Parameter names to ranges (float, int with low/high/log; choice with values).",
        type="search-space",
    ),
    Param("time-budget", "", "Seconds after which no new trial starts (empty: no limit)."),
    Param("seed", "0", "The search algorithm's seed.", type="int", minimum=0),
)
# Ten evaluations of a trial's 200 steps, where early stopping may stop it (benchmarks/README.md, tuning).
TUNE_DEFAULTS = {p.name: replace(p, default="20") for p in MODEL_TRAIN.params if p.name == "model-eval-every"}
MODEL_TUNE = _tune_pipeline(MODEL_TRAIN)

PIPELINES = {p.name: p for p in (MODEL_TRAIN.validate(), MODEL_DEPLOY.validate(), MODEL_TUNE.validate())}
