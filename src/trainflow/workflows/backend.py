"""What every backend returns, and the base they share: a run is prepared here once, then started by a hook."""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from trainflow.workflows.errors import WorkflowError

if TYPE_CHECKING:  # reading runs back (`trainflow list`, `get`) needs none of what submitting one does
    from trainflow.pipelines import Pipeline
    from trainflow.workflows.doctor import Check
    from trainflow.workflows.schedules import ScheduleInfo, ScheduleRequest

PENDING, RUNNING, SUCCEEDED, FAILED, SKIPPED, OMITTED = (
    "Pending",
    "Running",
    "Succeeded",
    "Failed",
    "Skipped",
    "Omitted",
)
SUSPENDED = "Suspended"  # a run that starts no new step until resumed (`trainflow suspend`); running ones finish
CACHED = "Cached"  # a step that did not run: an earlier run's outputs were reused (its message names that run)
FINISHED = (SUCCEEDED, FAILED, SKIPPED, OMITTED, CACHED)
DONE = (SUCCEEDED, CACHED)  # what a later step may start after


@dataclass
class StepInfo:
    name: str
    status: str = PENDING
    started_at: float | None = None
    finished_at: float | None = None
    message: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)
    service: bool = False
    depends: list[str] = field(default_factory=list)  # the steps (instances) it runs after
    kind: str = ""  # the spec's step kind: command, call, train or service
    provides: dict[str, Any] = field(default_factory=dict)  # what the spec declares it provides (pipelines.roles)
    addresses: dict[str, str] = field(default_factory=dict)  # a service's port name -> host:port on this machine


@dataclass
class WorkflowInfo:
    name: str
    pipeline: str
    status: str
    params: dict[str, str]
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    message: str = ""
    steps: list[StepInfo] = field(default_factory=list)
    backend: str = "local"
    param_types: dict[str, str] = field(default_factory=dict)  # a typed parameter's declared type (pipelines.roles)

    def to_dict(self) -> dict[str, Any]:
        """As plain data, each container copied one level down (dataclasses.asdict copied deep: half the time of
        listing 1,000 runs as JSON)."""
        return {**_copied(vars(self)), "steps": [_copied(vars(s)) for s in self.steps]}

    def step(self, name: str) -> StepInfo | None:
        return next((s for s in self.steps if s.name == name), None)


def _copied(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v for k, v in fields.items()}


@dataclass(frozen=True)
class Submission:
    """A run as every backend starts it: its pipeline, checked and completed values, and its name."""

    pipeline: Pipeline
    values: dict[str, str]
    name: str | None  # None: the backend names it as it starts it (Argo's generateName)
    python_path: builtins.list[str] = field(default_factory=list)
    no_cache: bool = False


@dataclass(frozen=True)
class Reached:
    """A run's service as this machine reaches it: a host:port per port name; `via` what carries it ('' if none)."""

    service: str
    addresses: dict[str, str]
    via: str = ""  # e.g. a port-forward, open only while the block that reached it runs


SERVICE_WORDS = {"model": "model", "tensorboard": "TensorBoard"}  # pipelines.roles' serves values, in sentences


class Backend(ABC):
    """Where workflows run; the CLI and the dashboard talk to this and nothing else.

    `submit` is the same everywhere: `prepare` validates, resolves, inherits values and names the run once, then
    the `_start` hook starts it; `dryrun` returns what `_start` would submit, as data. An operation a backend
    cannot do raises WorkflowError saying so and what to do instead (the defaults here do).
    """

    name: ClassVar[str]
    poll_seconds: ClassVar[float]  # how often `--wait`/`--watch` read a running workflow back
    services_listen_here: ClassVar[bool] = False  # a run's services answer on this machine's addresses
    pods_track_from_secret: ClassVar[bool] = False  # a `tracking-secret` parameter's Secret gives its steps MLflow
    namespace: str = ""  # where on a cluster its runs live ('' for none)

    @property
    def flags(self) -> str:
        """The command-line flags that pick this backend, for hints."""
        return f"--backend {self.name}"

    # -- submit: the same for every backend --------------------------------------------------------------
    def submit(
        self,
        pipeline: Pipeline,
        values: Mapping[str, str],
        no_cache: bool = False,
        python_path: builtins.list[str] | None = None,
        name: str | None = None,
    ) -> WorkflowInfo:
        """Start a run; `python_path`: folders its steps' functions import from (a pipeline file's folder); `name`:
        the run's name instead of the one its pipeline gives it (a schedule's runs are NAME-<time>). With tracking on,
        the run is an MLflow run too, opened here so a server that cannot be reached stops it before it starts."""
        from trainflow.pipelines.roles import param_types
        from trainflow.tracking.workflow_run import workflow_run  # loads only as a run is submitted
        from trainflow.workflows import tracking_settings as tracking

        run = self.prepare(pipeline, values, no_cache, python_path, name=name)
        types = param_types(run.pipeline)
        elsewhere = self.pods_track_from_secret and tracking.pods_track(types, run.values)
        # where steps run here, the run's tracking parameters act as MLflow's variables (on a cluster: the pods')
        here = {} if self.pods_track_from_secret else tracking.tracking_variables(types, run.values)
        with tracking.applied(here):
            tracking.check_server(types, here)
            tracking.check_registry_models(types, run.values, elsewhere)
            # a cluster's pods open the workflow's MLflow run themselves (by its uid) and its exit handler ends it
            opened_here = not self.pods_track_from_secret
            with workflow_run(run.pipeline.name, run.name, self.name, run.values, elsewhere, opened_here):
                return self._start(run)

    def dryrun(
        self,
        pipeline: Pipeline,
        values: Mapping[str, str],
        no_cache: bool = False,
        python_path: builtins.list[str] | None = None,
    ) -> Any:
        """What `submit` would start, as plain data, starting and reading nothing (values a pipeline would inherit
        from another run show as given or as their defaults)."""
        return self._dryrun(self.prepare(pipeline, values, no_cache, python_path, inherit=False))

    def prepare(
        self,
        pipeline: Pipeline,
        values: Mapping[str, str],
        no_cache: bool = False,
        python_path: builtins.list[str] | None = None,
        inherit: bool = True,
        name: str | None = None,
    ) -> Submission:
        """The run `submit` starts: the pipeline checked, its values resolved, inherited and completed, its name."""
        from trainflow.pipelines import PipelineError
        from trainflow.workflows.params import run_name

        try:
            pipeline.validate()
        except PipelineError as exc:
            raise WorkflowError(exc.message) from None
        self._check_functions(pipeline, python_path)
        completed = self.completed(pipeline, values, inherit=inherit)
        name = name or run_name(pipeline, completed) or self._unnamed(pipeline)
        return Submission(pipeline, completed, name, builtins.list(python_path or []), no_cache)

    def completed(
        self,
        pipeline: Pipeline,
        values: Mapping[str, str],
        explicit: Mapping[str, str] | None = None,
        inherit: bool = True,
    ) -> dict[str, str]:
        """`values` checked against the pipeline's types, with this backend's defaults and, for each parameter not
        in `explicit` (default: `values`), the value of the run the pipeline's `inherit_from` names."""
        from trainflow.workflows.params import inherited_values, resolve_params

        resolved = resolve_params(pipeline, self._given(pipeline, values))
        source = pipeline.inherit_from and resolved.get(pipeline.inherit_from)
        if source and inherit:
            given = values if explicit is None else explicit
            resolved = inherited_values(pipeline, resolved, given, self._inherited(source, pipeline, resolved))
        return self._complete(pipeline, resolved)

    # -- hooks of submit ---------------------------------------------------------------------------------
    @abstractmethod
    def _start(self, run: Submission) -> WorkflowInfo:
        """Start a prepared run; returns once it is recorded (or accepted)."""

    @abstractmethod
    def _dryrun(self, run: Submission) -> Any:
        """What `_start` would submit for `run`, as data."""

    def _check_functions(self, pipeline: Pipeline, python_path: builtins.list[str] | None) -> None:
        """Check what only this backend can check of a pipeline's functions before it runs (nothing here)."""
        return None

    def _given(self, pipeline: Pipeline, values: Mapping[str, str]) -> dict[str, str]:
        """The values as given, with what this backend supplies itself."""
        return dict(values)

    def _params_of(self, name: str, pipeline: Pipeline) -> dict[str, str]:
        """The values run `name` ran with (a pipeline's `inherit_from` reads them)."""
        return self.get(name).params

    def _inherited(self, source: str, pipeline: Pipeline, values: Mapping[str, str]) -> dict[str, str]:
        """The values run `source` ran with; none when it does not exist and the run serves a registry model instead
        (`model-deploy -p model-uri=models:/...`: `workflow` then only names the deployment)."""
        from trainflow.pipelines.roles import param_types
        from trainflow.workflows.tracking_settings import registry_models

        try:
            return self._params_of(source, pipeline)
        except WorkflowError:
            if registry_models(param_types(pipeline), values):
                return {}
            raise

    def _complete(self, pipeline: Pipeline, values: dict[str, str]) -> dict[str, str]:
        """Fill the defaults that depend on where the run runs."""
        return values

    def _unnamed(self, pipeline: Pipeline) -> str | None:
        """The name of a run whose pipeline has no name parameter (None: the backend names it as it starts it)."""
        return None

    # -- read and change ---------------------------------------------------------------------------------
    @abstractmethod
    def get(self, name: str) -> WorkflowInfo: ...

    @abstractmethod
    def list(self) -> builtins.list[WorkflowInfo]: ...

    def list_brief(self) -> builtins.list[WorkflowInfo]:
        """`list` as `trainflow list` prints it: each run's status, times, message and step statuses; a backend that
        can leave out what each run's pipeline declares (dependencies, kinds, roles, parameter types) does."""
        return self.list()

    @abstractmethod
    def logs(self, name: str, step: str | None = None, follow: bool = False) -> Iterator[str]: ...

    @abstractmethod
    def delete(self, name: str) -> None: ...

    @abstractmethod
    def stop(self, name: str) -> WorkflowInfo: ...

    def suspend(self, name: str) -> WorkflowInfo:
        """Start no new step of a running run until `resume` (running steps finish); its status shows Suspended."""
        raise WorkflowError(f"the {self.name} backend cannot suspend a run: `trainflow stop {name}` stops it")

    def resume(self, name: str) -> WorkflowInfo:
        """Let a suspended run start steps again."""
        raise WorkflowError(f"the {self.name} backend cannot suspend or resume a run: see `trainflow get {name}`")

    def retry(self, name: str, values: Mapping[str, str] | None = None) -> WorkflowInfo:
        """Re-run a failed run from its failed steps; `values` override parameters (steps they reach run again)."""
        raise WorkflowError(
            f"the {self.name} backend does not retry in place: `trainflow resubmit {name}` runs it again"
        )

    @abstractmethod
    def resubmit(
        self, name: str, new_name: str | None = None, no_cache: bool = False, values: Mapping[str, str] | None = None
    ) -> WorkflowInfo:
        """Run a workflow again under a new name, with `values` overriding its parameters."""

    @abstractmethod
    def services(self) -> builtins.list[tuple[WorkflowInfo, StepInfo]]: ...

    def progress(self, name: str, step: str) -> builtins.list[dict[str, Any]]:
        """The structured progress events a step reported (see trainflow.progress), oldest first; none here."""
        return []

    @abstractmethod
    def checks(self, secret: str) -> builtins.list[Check]:
        """`trainflow doctor`'s checks of what workflows need here (`secret`: the S3 credentials Secret)."""

    # -- schedules (trainflow.workflows.schedules) ---------------------------------------------------------
    def create_schedule(
        self,
        request: ScheduleRequest,
        pipeline: Pipeline,
        values: Mapping[str, str],
        python_path: builtins.list[str] | None = None,
    ) -> ScheduleInfo:
        """Run `pipeline` with `values` at the times `request` gives, from now on (checked as `submit` checks a run)."""
        raise self._no_schedules()

    def dryrun_schedule(
        self,
        request: ScheduleRequest,
        pipeline: Pipeline,
        values: Mapping[str, str],
        python_path: builtins.list[str] | None = None,
    ) -> Any:
        """What `create_schedule` would create, as data (Kubernetes: the CronWorkflow `compile --schedule` prints)."""
        raise self._no_schedules()

    def schedules(self) -> builtins.list[ScheduleInfo]:
        """Every schedule, by name."""
        raise self._no_schedules()

    def schedule(self, name: str) -> ScheduleInfo:
        """One schedule, with its last and next runs and (where kept) what each due time did."""
        raise self._no_schedules()

    def delete_schedule(self, name: str) -> None:
        """Forget a schedule; the runs it started stay."""
        raise self._no_schedules()

    def suspend_schedule(self, name: str, suspended: bool = True) -> ScheduleInfo:
        """Stop (or, with False, resume) firing a schedule; a suspended schedule does not catch up when resumed."""
        raise self._no_schedules()

    def _no_schedules(self) -> WorkflowError:
        return WorkflowError(f"the {self.name} backend keeps no schedules: use --backend local or kubernetes")

    def own_services(self) -> builtins.list[dict[str, Any]]:
        """The backend's own long-running helpers on this machine (the local scheduler), as `trainflow services` rows."""
        return []

    # -- a run's services from this machine --------------------------------------------------------------
    @contextmanager
    def reach(self, workflow: str, serves: str, local_ports: Sequence[int] = ()) -> Iterator[Reached]:
        """The service of `workflow` that serves `serves` (pipelines.roles), reachable from here while the block runs.

        A service listening on this machine is reached as it is; otherwise the backend forwards it (`local_ports`:
        the loopback ports to forward its ports to, 0 or none: free ones).
        """
        found = self._listening(workflow, serves)
        if found is not None:
            yield found
            return
        with self.forward(workflow, serves, local_ports) as forwarded:
            yield forwarded

    def _listening(self, workflow: str, serves: str) -> Reached | None:
        """The service as it listens on this machine; None where services listen elsewhere."""
        return None

    def forward(self, workflow: str, serves: str, local_ports: Sequence[int] = ()) -> AbstractContextManager[Reached]:
        """Bring a service's ports to loopback ports here while the block runs; a backend that cannot says so."""
        raise WorkflowError(
            f"workflow {workflow} serves no {SERVICE_WORDS.get(serves, serves)} on this machine: "
            "see `trainflow services`"
        )
