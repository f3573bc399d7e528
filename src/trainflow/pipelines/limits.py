"""The sizes a pipeline may have: generous for real pipelines, refused above (each with one line naming the limit).

They bound the work `validate`, `show`, `compile`, `list` and `get` do for one pipeline, and what a
pipeline file can make the loader build in memory.
"""

from trainflow.pipelines.errors import PipelineError

MAX_STEPS = 500  # steps in one pipeline
MAX_FAN_OUT_ITEMS = 5_000  # items one step fans out over (a list, or a parameter's value at submission)
MAX_PIPELINE_FILE_BYTES = 1024 * 1024  # a YAML or JSON pipeline file
MAX_NESTING = 20  # lists and mappings inside each other in a pipeline file (a real one nests 5 deep)
MAX_KEY_LENGTH = 63  # an output, artifact or location key (a DNS label's length, as step names)


def check_step_count(count: int) -> None:
    """Refuse a pipeline with more steps than `MAX_STEPS`."""
    if count > MAX_STEPS:
        raise PipelineError(f"it has {count} steps: at most {MAX_STEPS} fit in one pipeline; split it in two")


def check_item_count(count: int, what: str) -> None:
    """Refuse a fan-out over more than `MAX_FAN_OUT_ITEMS` items; `what` names where the items come from."""
    if count > MAX_FAN_OUT_ITEMS:
        raise PipelineError(
            f"{what} has {count} items: at most {MAX_FAN_OUT_ITEMS} in one fan-out; split the list over steps"
        )
