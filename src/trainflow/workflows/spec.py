"""The pipelines as plain data: parameters, steps, dependencies, services, and each step's command.

Both backends consume this one description. The local runner resolves the references in a step's
arguments and runs `trainflow step ...` as a subprocess; the Kubernetes backend renders the same
arguments as Argo template expressions. Neither decides *what* a step does, only *where* it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Param:
    """A pipeline parameter, with the Kubeflow example's name and default."""

    name: str
    default: str
    help: str


@dataclass(frozen=True)
class ParamRef:
    """The value of a pipeline parameter."""

    name: str


@dataclass(frozen=True)
class OutputRef:
    """An output of an earlier step (what that step wrote to its `--outputs` file)."""

    step: str
    key: str


@dataclass(frozen=True)
class PortRef:
    """A port a service listens on: the backend decides (local: a free port; Kubernetes: the container port)."""

    name: str


Arg = str | ParamRef | OutputRef | PortRef


@dataclass(frozen=True)
class Port:
    name: str
    container_port: int
    protocol_name: str  # "http" or "grpc": what a probe or a URL uses


@dataclass(frozen=True)
class Step:
    """One step: `trainflow step <name> <args>`; services keep running after the workflow ends."""

    name: str
    args: tuple[Arg, ...]
    depends: tuple[str, ...] = ()
    service: bool = False
    when: str | None = None  # a boolean parameter that must be "true" for the step to run
    retries: int = 0  # extra attempts for transient failures
    ports: tuple[Port, ...] = ()
    outputs: tuple[str, ...] = ()
    image_param: str = "tf-model-image"

    @property
    def command(self) -> tuple[str, ...]:
        return ("trainflow", "step", self.name)

    def refs(self) -> list[OutputRef]:
        return [a for a in self.args if isinstance(a, OutputRef)]


@dataclass(frozen=True)
class Pipeline:
    name: str
    params: tuple[Param, ...]
    steps: tuple[Step, ...]
    name_param: str  # the parameter whose value names a submitted workflow
    description: str = ""
    name_suffix: str = ""  # appended to the name parameter's value (model-deploy: "-deploy")

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def step(self, name: str) -> Step:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)

    @property
    def defaults(self) -> dict[str, str]:
        return {p.name: p.default for p in self.params}

    def order(self) -> list[Step]:
        """Steps in a valid execution order (dependencies first, else declaration order)."""
        done: list[Step] = []
        pending = list(self.steps)
        while pending:
            ready = [s for s in pending if all(d in {x.name for x in done} for d in s.depends)]
            if not ready:
                raise ValueError(f"pipeline {self.name} has a dependency cycle among {[s.name for s in pending]}")
            done.append(ready[0])
            pending.remove(ready[0])
        return done


def _flags(*pairs: tuple[str, Arg]) -> tuple[Arg, ...]:
    return tuple(token for flag, value in pairs for token in (flag, value))


_STORAGE = (("--aws-endpoint-url", ParamRef("aws-endpoint-url")), ("--aws-region", ParamRef("aws-region")))
_TRAIN_DIR = OutputRef("get-workflow-info", "train-dir")
_EXPORT_BASE = OutputRef("get-workflow-info", "export-base")

COMMON_PARAMS = (
    Param("namespace", "default", "Kubernetes namespace of the workflow and its jobs."),
    Param("tf-model-image", "ghcr.io/trainflow/trainflow:0.1.0", "Image every step runs in (Kubernetes)."),
    Param("tf-serving-image", "ghcr.io/trainflow/trainflow:0.1.0", "Image of the model server (Kubernetes)."),
    Param("tf-tensorboard-image", "ghcr.io/trainflow/trainflow:0.1.0", "Image of TensorBoard (Kubernetes)."),
    Param("model-name", "mnist", "Name the model is served under."),
    Param("model-serving-servicetype", "ClusterIP", "Kubernetes Service type of the model server."),
    Param("s3-train-base-url", "", "Where runs keep checkpoints, logs and exported models (default: $TRAINFLOW_HOME/store/models)."),
    Param("aws-endpoint-url", "", "S3 endpoint (default: AWS_ENDPOINT_URL)."),
    Param("s3-endpoint", "", "S3 endpoint as host:port (the example's S3_ENDPOINT)."),
    Param("aws-region", "", "S3 region (default: AWS_REGION)."),
    Param("aws-secret", "aws-creds", "Kubernetes Secret with keys awsAccessKeyID / awsSecretAccessKey."),
)

def _workflow_info_step(job_param: str) -> Step:
    """get-workflow-info for the run named by `job_param` (model-train's own job, or the one to deploy)."""
    return Step(
        "get-workflow-info",
        _flags(("--job-name", ParamRef(job_param)), ("--s3-train-base-url", ParamRef("s3-train-base-url"))),
        outputs=("train-dir", "logs-dir", "checkpoints-dir", "export-base"),
    )


SERVE_STEP = Step(
    "serve-model",
    _flags(
        ("--model-name", ParamRef("model-name")),
        ("--export-base", _EXPORT_BASE),
        ("--rest-port", PortRef("rest")),
        ("--grpc-port", PortRef("grpc")),
        *_STORAGE,
    ),
    depends=("export-model",),
    service=True,
    when="model-serving",
    ports=(Port("rest", 8501, "http"), Port("grpc", 9000, "grpc")),
    outputs=("rest-url", "grpc-address", "model-version"),
    image_param="tf-serving-image",
)

MODEL_TRAIN = Pipeline(
    name="model-train",
    description="Cache the dataset, train data-parallel, watch in TensorBoard, export, serve.",
    name_param="job-name",
    params=(
        Param("job-name", "myjob", "Names the run: its train dir, export dir and workflow (unique)."),
        *COMMON_PARAMS,
        Param("tf-worker", "1", "Number of training workers."),
        Param("tf-ps", "2", "Parameter servers: accepted for compatibility; PS replicas do not train."),
        Param("model-hidden-units", "100", "Hidden units of the example's one-layer model."),
        Param("model-train-steps", "200", "Global training steps."),
        Param("model-batch-size", "100", "Batch size per worker."),
        Param("model-learning-rate", "0.01", "Learning rate."),
        Param("model-serving", "true", "Serve the exported model (true/false)."),
        Param("s3-data-url", "", "Where the dataset is: s3://, http(s)://, file:// or a path (default: the public MNIST mirror)."),
        Param("model", "cnn", "Model: cnn, mlp (the example's), or module:attr of a factory returning a torch.nn.Module."),
    ),
    steps=(
        Step(
            "download-dataset",
            _flags(("--s3-data-url", ParamRef("s3-data-url")), *_STORAGE),
            retries=2,
            outputs=("dataset-name", "dataset-path", "bytes-downloaded"),
        ),
        _workflow_info_step("job-name"),
        Step(
            "tensorboard",
            _flags(("--logdir", OutputRef("get-workflow-info", "logs-dir")), ("--port", PortRef("http")), *_STORAGE),
            depends=("get-workflow-info",),
            service=True,
            ports=(Port("http", 6006, "http"),),
            outputs=("url",),
            image_param="tf-tensorboard-image",
        ),
        Step(
            "train-model",
            _flags(
                ("--data-dir", OutputRef("download-dataset", "dataset-path")),
                ("--train-dir", _TRAIN_DIR),
                ("--workers", ParamRef("tf-worker")),
                ("--train-steps", ParamRef("model-train-steps")),
                ("--batch-size", ParamRef("model-batch-size")),
                ("--learning-rate", ParamRef("model-learning-rate")),
                ("--hidden-units", ParamRef("model-hidden-units")),
                ("--model", ParamRef("model")),
                *_STORAGE,
            ),
            depends=("download-dataset", "get-workflow-info"),
            outputs=("accuracy", "global-step", "metrics-url"),
        ),
        Step(
            "export-model",
            _flags(
                ("--train-dir", _TRAIN_DIR),
                ("--export-base", _EXPORT_BASE),
                ("--model", ParamRef("model")),
                ("--hidden-units", ParamRef("model-hidden-units")),
                *_STORAGE,
            ),
            depends=("train-model",),
            retries=2,
            outputs=("model-version", "model-url"),
        ),
        SERVE_STEP,
    ),
)

MODEL_DEPLOY = Pipeline(
    name="model-deploy",
    description="Serve a finished model-train workflow's exported model under the same model name.",
    name_param="workflow",
    name_suffix="-deploy",
    params=(
        Param("workflow", "", "The model-train workflow (its job-name) whose model to serve."),
        *COMMON_PARAMS,
        Param("model-serving", "true", "Serve the model (always true for model-deploy)."),
    ),
    steps=(
        _workflow_info_step("workflow"),
        replace(SERVE_STEP, depends=("get-workflow-info",)),
    ),
)

PIPELINES = {p.name: p for p in (MODEL_TRAIN, MODEL_DEPLOY)}


def render_args(step: Step, resolve: Callable[[ParamRef | OutputRef | PortRef], str]) -> list[str]:
    """The step's argument list with every reference replaced by what `resolve` gives for it."""
    return [a if isinstance(a, str) else resolve(a) for a in step.args]
