"""A chain of N trivial kfp components run with kfp.local's SubprocessRunner; prints seconds per task."""

import sys
import time

from kfp import dsl, local

N = int(sys.argv[1])


@dsl.component
def trivial(text: str) -> str:
    return text + "."


@dsl.pipeline
def chain() -> str:
    task = trivial(text="")
    for _ in range(N - 1):
        task = trivial(text=task.output)
    return task.output


local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root="/tmp/kfp-bench-root")
start = time.perf_counter()
chain()
print(f"{(time.perf_counter() - start) / N:.4f}")
