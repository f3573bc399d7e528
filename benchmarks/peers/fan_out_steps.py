"""The listing step of trainflow's fan-out benchmark: N items for the next step to fan out over."""


def items(n: int) -> dict:
    return {"items": list(range(n))}
