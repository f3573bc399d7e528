"""No parameter value or step output can add keys to an object a compiled workflow creates (issue 22, item 1).

Argo fills `{{...}}` into a resource template's manifest as plain text before parsing it as YAML. Each
test here compiles a pipeline, then fills every placeholder of every resource template the way Argo's
controller does (tests/workflows/kubernetes/k8s_cluster_sim.py: simple tags as raw text, expression tags
evaluated), once with benign values and once with hostile ones (quotes, newlines, YAML, braces), for
every workflow parameter and every step output a template takes. The objects Argo would then create
must have exactly the keys (and list lengths) they have with benign values. No cluster is involved:
Argo's substitution is reproduced, the Kubernetes API is not needed.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.workflows.kubernetes.k8s_cluster_sim import ArgoRefused, fill
from trainflow.pipelines import Pipeline
from trainflow.pipelines.loading import load_pipeline
from trainflow.workflows import MODEL_DEPLOY, MODEL_TRAIN, WorkflowError
from trainflow.workflows.kubernetes import compile_pipeline
from trainflow.workflows.kubernetes.options import cache_volume, cluster_options

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HOSTILE = [
    "x'\nsecurityContext: {privileged: true}\ncommand: [sh, -c, 'id']\nz: '",
    'x"\n  privileged: true\n  hostPID: true\ny: "',
    "s3://bucket/p\n        securityContext:\n          privileged: true",
    "}}{{workflow.name}} {a: b} [c, d] &anchor *alias",
    "a: b\n- c\n? d\n: e\n# comment",
    "\\u0022\\n\\\\ ' \" ` \t \r\n \u2028 \x00 \U0001f600",
    "{{=toJson('x')}} ' + workflow.name + '",
    "--- \n... \n%YAML 1.2",
]
NUMBER = re.compile(r"asInt\(workflow\.parameters\['([^']+)'\]\)")
COUNT = "3"
FUZZ = settings(
    max_examples=40,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


def shape(obj: Any) -> Any:
    """What Kubernetes reads the object's structure as: its keys, list lengths and scalar-or-not."""
    if isinstance(obj, dict):
        return {k: shape(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [shape(v) for v in obj]
    return "scalar"


def created_objects(workflow: Mapping[str, Any], value: Callable[[str, int], str]) -> list[Any]:
    """The objects Argo creates from the workflow's resource templates, every variable given by `value`."""
    params = [p["name"] for p in workflow["spec"]["arguments"]["parameters"]]
    counts = {n for t in _templates(workflow) for n in NUMBER.findall(t["resource"]["manifest"])}
    values = {f"workflow.parameters.{p}": COUNT if p in counts else value(p, i) for i, p in enumerate(params)}
    values.update({"workflow.name": "run-abcde", "workflow.namespace": "default"})
    found = []
    for template in _templates(workflow):
        inputs = template.get("inputs", {}).get("parameters", [])
        local = {f"inputs.parameters.{p['name']}": value(p["name"], 100 + i) for i, p in enumerate(inputs)}
        found.append(yaml.safe_load(fill(template["resource"]["manifest"], {**values, **local})))
    return found


def _templates(workflow: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [t for t in workflow["spec"]["templates"] if "resource" in t]


def benign(name: str, index: int) -> str:
    return f"value-{index}"


def hostile(name: str, index: int) -> str:
    return HOSTILE[index % len(HOSTILE)]


def _sweep() -> Pipeline:
    return load_pipeline(str(EXAMPLES / "sweep" / "pipeline.py"))


def _sweep_yaml() -> Pipeline:
    return load_pipeline(str(EXAMPLES / "sweep" / "pipeline.yaml"))


def _gated() -> Pipeline:
    return load_pipeline(str(EXAMPLES / "gated" / "pipeline.py"))


CASES: dict[str, tuple[Callable[[], Pipeline], dict[str, str], dict[str, Any]]] = {
    "model-train": (lambda: MODEL_TRAIN, {}, {}),
    "model-train-per-node": (lambda: MODEL_TRAIN, {}, {"cache": cache_volume(mode="per-node")}),
    "model-train-kserve": (
        lambda: MODEL_TRAIN,
        {},
        {"kserve": ["serve-model"], "resources": ["train-model:gpu=1"], "node_selectors": ["pool=gpu"]},
    ),
    "model-deploy": (lambda: MODEL_DEPLOY, {"workflow": "myjob"}, {}),
    "model-deploy-kserve": (lambda: MODEL_DEPLOY, {"workflow": "myjob"}, {"kserve": ["serve-model"]}),
    "sweep": (_sweep, {"artifacts": "s3://team/sweep"}, {}),
    "sweep-yaml": (_sweep_yaml, {"artifacts": "s3://team/sweep"}, {}),
    "gated": (_gated, {"job-name": "gated"}, {}),
}


def compiled(case: str, job_kind: str) -> dict[str, Any]:
    make, params, options = CASES[case]
    [workflow] = compile_pipeline(make(), params, job_kind, options=cluster_options(**options))
    return workflow


@pytest.mark.parametrize("job_kind", ["pytorchjob", "tfjob"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_parameters_and_step_outputs_add_no_key_to_any_created_object(case: str, job_kind: str) -> None:
    workflow = compiled(case, job_kind)
    assert _templates(workflow), "the case creates no object: it tests nothing"
    expected = [shape(o) for o in created_objects(workflow, benign)]
    assert [shape(o) for o in created_objects(workflow, hostile)] == expected


@pytest.mark.parametrize("job_kind", ["pytorchjob", "tfjob"])
def test_every_placeholder_in_a_manifest_is_a_quoted_expression_or_a_whole_number(job_kind: str) -> None:
    for case in CASES:
        for template in _templates(compiled(case, job_kind)):
            tags = re.findall(r"\{\{(.*?)\}\}", template["resource"]["manifest"], re.DOTALL)
            assert all(t.startswith(("=toJson(", "=asInt(")) for t in tags), (case, template["name"], tags)


@pytest.mark.parametrize("text", ["x'\nprivileged: true", "2 3", "-1e9", "0x10", "1\n"])
def test_a_replica_count_that_is_not_a_whole_number_makes_argo_refuse_instead_of_writing_it(text: str) -> None:
    workflow = compiled("model-train", "pytorchjob")
    job = next(t for t in _templates(workflow) if t["name"] == "train-model-job")
    counts = re.findall(r"\{\{=asInt\(.*?\)\}\}", job["resource"]["manifest"])
    assert len(counts) == 3  # replicas, minReplicas, maxReplicas
    for tag in counts:
        with pytest.raises(ArgoRefused):
            fill(tag, {"workflow.parameters.tf-worker": text})


def test_the_filled_in_argument_is_the_hostile_value_itself_not_a_mangled_copy() -> None:
    workflow = compiled("model-train", "pytorchjob")
    [job] = [o for o in created_objects(workflow, hostile) if o["kind"] == "PyTorchJob" and "spec" in o]
    args = job["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["args"]
    assert set(args) & set(HOSTILE), "the values reach the container as its arguments, unchanged"


PARAMS = [p.name for p in MODEL_TRAIN.params]


@functools.cache
def _benign_per_node_shapes() -> list[Any]:
    """The shapes of the objects a default per-node compile creates, filled with benign values (once)."""
    return [shape(o) for o in created_objects(compiled("model-train-per-node", "pytorchjob"), benign)]


@FUZZ
@given(st.dictionaries(st.sampled_from(PARAMS), st.text(max_size=40), max_size=4))
def test_fuzzed_compile_refuses_with_one_line_or_creates_exactly_the_benign_objects(
    given_values: dict[str, str],
) -> None:
    expected = _benign_per_node_shapes()
    options = cluster_options(cache=cache_volume(mode="per-node"))
    try:
        [workflow] = compile_pipeline(MODEL_TRAIN, given_values, "pytorchjob", options=options)
    except WorkflowError as exc:
        assert "\n" not in exc.message.strip() and exc.message
        return
    assert [shape(o) for o in created_objects(workflow, benign)] == expected
    values = {p["name"]: p["value"] for p in workflow["spec"]["arguments"]["parameters"]}
    assert [shape(o) for o in created_objects(workflow, lambda name, _: values.get(name, "x"))] == expected


def _when(workflow: Mapping[str, Any], step: str) -> str:
    [dag] = [t for t in workflow["spec"]["templates"] if t["name"] == workflow["spec"]["entrypoint"]]
    return next(t["when"] for t in dag["dag"]["tasks"] if t["name"] == step)


@pytest.mark.parametrize(
    ("accuracy", "serves"),
    [("0.99", True), ("0.5", False), ("0.5 || true", None), ("0.5) || (1", None), ("true", None), ("1e9'", None)],
)
def test_a_step_output_cannot_change_what_a_condition_tests(accuracy: str, serves: bool | None) -> None:
    """The gated example serves when evaluate.accuracy >= params.min-accuracy: an output is a value, never syntax."""
    when = _when(compiled("gated", "pytorchjob"), "serve-model")
    values = {
        "tasks.evaluate.outputs.parameters.accuracy": accuracy,
        "workflow.parameters.min-accuracy": "0.97",
        "workflow.parameters.model-serving": "true",
    }
    if serves is None:  # not a number: Argo fails the condition's evaluation, the step does not run
        with pytest.raises(ArgoRefused):
            fill(when, values)
    else:
        assert fill(when, values) == str(serves).lower()


@pytest.mark.parametrize("serving", ["true", "True ", "false", "true' || 'a", "x == x"])
def test_a_parameter_cannot_change_what_a_condition_tests(serving: str) -> None:
    when = _when(compiled("model-train", "pytorchjob"), "serve-model")
    expected = "true" if serving.strip().lower() == "true" else "false"
    assert fill(when, {"workflow.parameters.model-serving": serving}) == expected
