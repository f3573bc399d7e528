"""trainflow.pipelines: write your own pipeline.

A `Pipeline` is typed `Param`s and steps of four kinds: `Command` (any argv), `Call` (a Python
function `module:function`), `Train` (distributed training on N workers) and `Service` (a server
left running, with ports and a readiness probe). Steps read parameters with `param(NAME)`, earlier
outputs with `output(STEP, KEY)`, the fan-out item with `ITEM`; they run after the steps they read.
Per step: `depends`, `when`, `retries`/`backoff`, `timeout`, `resources`, `for_each` (a list, `param(...)` or an
earlier step's `output(...)`; `ITEM["field"]` of object items), `parallelism`, `cache`. `Pipeline(on_exit=...)` steps
run at the end whatever happened, reading `workflow("status")` and the like; `Notify` posts to a webhook.

    from trainflow.pipelines import Call, Param, Pipeline, output, param

    PIPELINE = Pipeline(
        name="hello",
        params=(Param("n", 3, type="int"),),
        steps=(
            Call(name="count", function="mysteps:count", inputs={"n": param("n")}, outputs=("total",)),
            Call(name="show", function="mysteps:show", inputs={"total": output("count", "total")}),
        ),
    )

`trainflow submit hello.py -p n=5 --wait` runs it; `trainflow pipeline show hello.py` draws it; the
same spec as YAML is described by `trainflow.pipelines.serial.SCHEMA_PATH` (pipeline.schema.json). The built-in
`model-train`, `model-deploy` and `model-tune` are written with this API in `trainflow.pipelines.builtin`; a
`Tune` step (`trainflow.pipelines.tuning`) searches a `Train` step's parameters.
"""

# Names load on first use (PEP 562): a step process that only needs one module (`trainflow step call`
# imports `calling`) must not pay for importing the whole API.
from __future__ import annotations

from typing import TYPE_CHECKING

from trainflow.lazy_names import lazy_names

if TYPE_CHECKING:
    from trainflow.pipelines.conditions import parse_condition
    from trainflow.pipelines.errors import PipelineError
    from trainflow.pipelines.notify import Notify
    from trainflow.pipelines.params import Param
    from trainflow.pipelines.pipeline import Pipeline
    from trainflow.pipelines.progress import report_progress
    from trainflow.pipelines.refs import HOST, ITEM, OutputRef, ParamRef, PortRef, output, param, port, workflow
    from trainflow.pipelines.steps import Call, Command, Port, Probe, Resources, Service, Step, Train
    from trainflow.pipelines.tuning import Tune

_MODULES = {
    "Call": ".steps",
    "Command": ".steps",
    "HOST": ".refs",
    "ITEM": ".refs",
    "Notify": ".notify",
    "OutputRef": ".refs",
    "Param": ".params",
    "ParamRef": ".refs",
    "Pipeline": ".pipeline",
    "PipelineError": ".errors",
    "Port": ".steps",
    "PortRef": ".refs",
    "Probe": ".steps",
    "Resources": ".steps",
    "Service": ".steps",
    "Step": ".steps",
    "Train": ".steps",
    "Tune": ".tuning",
    "output": ".refs",
    "param": ".refs",
    "parse_condition": ".conditions",
    "port": ".refs",
    "workflow": ".refs",
    "report_progress": ".progress",
}

__all__ = [
    "HOST",
    "ITEM",
    "Call",
    "Command",
    "Notify",
    "OutputRef",
    "Param",
    "ParamRef",
    "Pipeline",
    "PipelineError",
    "Port",
    "PortRef",
    "Probe",
    "Resources",
    "Service",
    "Step",
    "Train",
    "Tune",
    "output",
    "param",
    "parse_condition",
    "port",
    "report_progress",
    "workflow",
]

__getattr__, __dir__ = lazy_names(__name__, _MODULES)
