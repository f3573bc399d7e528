"""The trivial function each step of trainflow's benchmark chain calls (as the peers' chains do)."""


def step(i: int) -> dict:
    return {"i": i + 1}
