"""Random ``<adjective>-<noun>-<number>`` names for runs and models created without one (as
MLflow does), e.g. ``brave-owl-417``."""

from __future__ import annotations

import secrets

_ADJECTIVES = (
    "able", "amber", "bold", "brave", "bright", "calm", "clever", "crisp", "eager", "fair",
    "gentle", "glad", "golden", "honest", "keen", "kind", "lively", "lucky", "merry", "nimble",
    "polite", "proud", "quick", "quiet", "rapid", "sharp", "shy", "silver", "steady", "swift",
    "tidy", "vivid", "warm", "wise", "witty", "young",
)  # fmt: skip
_NOUNS = (
    "ant", "bat", "bear", "bee", "cat", "colt", "crab", "crane", "deer", "dove", "eel", "elk",
    "finch", "fox", "frog", "goat", "hare", "hawk", "heron", "ibis", "jay", "koala", "lark",
    "lion", "lynx", "mole", "moth", "newt", "owl", "panda", "quail", "ram", "seal", "shrew",
    "snail", "swan", "toad", "trout", "vole", "wasp", "wolf", "wren", "yak", "zebra",
)  # fmt: skip


def random_name() -> str:
    return f"{secrets.choice(_ADJECTIVES)}-{secrets.choice(_NOUNS)}-{secrets.randbelow(1000)}"
