"""The scenarios (``--scenario``): ``agent``, ``eval``, ``readers`` and their weighted ``mix``."""

from __future__ import annotations

import random

from loadtest.calls import Calls
from loadtest.scenarios.agent import AgentScenario
from loadtest.scenarios.base import Scenario, Step
from loadtest.scenarios.evaluation import EvalScenario
from loadtest.scenarios.readers import ReadersScenario

MIX_SHARES = {"agent": 0.5, "readers": 0.3, "eval": 0.2}  # of the operations; a busy deployment's day


class MixScenario(Scenario):
    """The three scenarios at once, each on its own experiment, in the shares of ``MIX_SHARES``:
    an agent platform writing, people reading, evaluations running."""

    name = "mix"
    methods = tuple(sorted({*AgentScenario.methods, *EvalScenario.methods, *ReadersScenario.methods}))

    def __init__(self, rng: random.Random) -> None:
        super().__init__(rng)
        self.parts: list[Scenario] = [AgentScenario(rng), ReadersScenario(rng), EvalScenario(rng)]

    async def setup(self, calls: Calls) -> list[str]:
        lines = []
        for part in self.parts:
            lines += await part.setup(calls)
        return lines

    def steps(self) -> list[Step]:
        """Every part's steps, weights scaled so each part gets its share of the operations."""
        out = []
        for part in self.parts:
            steps = part.steps()
            total = sum(s.weight for s in steps)
            out += [Step(f"{part.name}.{s.name}", MIX_SHARES[part.name] * s.weight / total, s.run) for s in steps]
        return out


SCENARIOS: dict[str, type[Scenario]] = {s.name: s for s in (AgentScenario, EvalScenario, ReadersScenario, MixScenario)}


def make(name: str, rng: random.Random) -> Scenario:
    return SCENARIOS[name](rng)


__all__ = ["SCENARIOS", "Scenario", "Step", "make"]
