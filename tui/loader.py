"""Which models to load (config file -> flags, or `--demo`) and loading them through the core.

The app never loads models itself: it is handed a `Loader`, a function that takes a progress
callback and returns a `Loaded`. `resolve_choice` picks the pair the way r2r's commands do
(r2r_local.choice: flags, config file; `--demo`; the GPU fit plan), and an optional planner may
replace `ModelChoice.plan`. With no pair given or configured, `first_run_for` gives the app what
its welcome view offers instead (the demo pair, the known pairs to download).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from r2r_local.config import ModelSpec

if TYPE_CHECKING:
    from r2r_local.decode import Policy
    from r2r_local.pair import LoadedPair
    from r2r_local.pair_fit import Machine, PairFit
    from r2r_local.router import Router

DEFAULT_ROUTER = "entropy:1.5"
# Shown with a single-turn pair (see ModelChoice.single_turn).
SINGLE_TURN_NOTE = "answers each message on its own"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ChatOptions:
    """Model choices from the command line; None means "not given" (the config file decides)."""

    small: str | None = None
    large: str | None = None
    router: str | None = None
    n_ctx: int | None = None
    threads: int | None = None
    small_gpu_layers: int | None = None
    large_gpu_layers: int | None = None
    demo: bool = False
    config_file: Path | None = None
    overlap: bool = False
    ahead: bool = False
    large_timeout: float | None = None
    large_retries: int | None = None
    large_top_k: int | None = None


@dataclass(frozen=True)
class ModelChoice:
    """The resolved pair to load. description: one line for the screen; plan: the GPU fit plan
    line when a planner made one; source: where the choice came from (flags, config, demo)."""

    small: ModelSpec
    large: ModelSpec
    router: str
    description: str
    source: str
    plan: str | None = None
    overlap: bool = False  # the small model's next step runs while the router decides
    ahead: bool = False  # the small model writes ahead during the large model's calls
    notes: tuple[str, ...] = ()  # configured values not used (a router file for another small model)

    @property
    def single_turn(self) -> bool:
        """Whether each answer is given the latest user message alone. The built-in demo pair
        (each question an independent addition) learned one-question conversations only: with the
        earlier turns in its prompt it answered follow-up questions wrongly (200 held-out problems:
        99% right asked first, 75% asked second, 74% third; scripts/demo_followups.py), so it
        starts each answer fresh (99% at every turn); the conversation is kept and shown, and says
        so. Real pairs are given the whole conversation."""
        return self.source == "demo"

    @property
    def header(self) -> str:
        """What the models line says about the pair (the description, and how it answers)."""
        return self.description + (f" · {SINGLE_TURN_NOTE}" if self.single_turn else "")


@dataclass
class Loaded:
    """A loaded pair, the configured router and the routed policy (overlap / write-ahead) that
    routed answers use; each answer passes them (or another mode) with its request."""

    pair: "LoadedPair"
    router: "Router"
    policy: "Policy"
    choice: ModelChoice

    def close(self) -> None:
        self.pair.close()


Loader = Callable[[Progress], Loaded]


def resolve_choice(options: ChatOptions, config: dict[str, Any] | None = None) -> ModelChoice:
    """Merge the user's config file and the flags (later wins), as r2r's commands do
    (r2r_local.choice; NoModelsError when neither names a pair); GPU layers nobody set come from
    the fit plan, whose lines become `choice.plan` on a build with GPU offload."""
    from r2r_local.choice import KEYS, resolve_pair, specs_for

    pair = resolve_pair({k: getattr(options, k) for k in KEYS}, demo=options.demo, config=config,
                        config_file=options.config_file)
    router = pair.router or DEFAULT_ROUTER
    small, large, plan = specs_for(pair, router)
    description = "built-in demo pair (addition)" if options.demo else describe(small, large)
    return ModelChoice(small, large, router, description, pair.source,
                       plan="; ".join(plan.lines()) if plan else None, overlap=options.overlap,
                       ahead=options.ahead, notes=pair.notes)


@dataclass(frozen=True)
class FirstRun:
    """What the welcome view offers when no pair is set up. demo: loads the built-in demo pair;
    pulled: loads the pair a finished `r2r models pull` configured; survey: this machine and every
    known pair's size and fit (slow-ish: run off the UI thread); pull_argv: the command that
    downloads and configures the pair NAME."""

    demo: Loader
    pulled: Loader
    survey: Callable[[], "tuple[Machine, list[PairFit]]"]
    pull_argv: Callable[[str], list[str]]


def first_run_for(options: ChatOptions) -> FirstRun | None:
    """The welcome view's offers when `options` and the config file name no pair (and no --demo);
    None otherwise, also when the config cannot be read (loading then says why)."""
    from r2r_local.choice import KEYS, NoModelsError, resolve_pair
    from r2r_local.errors import R2RError

    try:
        resolve_pair({k: getattr(options, k) for k in KEYS}, demo=options.demo, config_file=options.config_file)
        return None
    except NoModelsError:
        pass
    except R2RError:
        return None
    # `r2r models pull` writes the default config file: the pulled pair is loaded from there.
    return FirstRun(core_loader(replace(options, demo=True)), core_loader(replace(options, config_file=None)),
                    survey, pull_argv)


def survey() -> "tuple[Machine, list[PairFit]]":
    from r2r_local.pair_fit import detect_machine, fit_known_pairs

    machine = detect_machine()
    return machine, fit_known_pairs(machine)


def pull_argv(name: str) -> list[str]:
    import sys

    return [sys.executable, "-m", "r2r_local.cli", "models", "pull", name]


def describe(small: ModelSpec, large: ModelSpec) -> str:
    a, b = Path(small.path).name, Path(large.path).name
    if small.path == large.path:
        return f"{a} on both sides"
    return f"small {a} · large {b}"


def core_loader(options: ChatOptions, planner: Callable[[ModelChoice], str | None] | None = None) -> Loader:
    """A Loader that resolves the choice and loads it with r2r_local.pair.load_pair."""

    def load(progress: Progress) -> Loaded:
        progress("reading the configuration")
        choice = resolve_choice(options)
        if planner is not None:
            choice = replace(choice, plan=planner(choice))
        for note in choice.notes:
            progress(note)
        if choice.plan:
            progress(f"GPU plan: {choice.plan}")
        return load_choice(choice, progress)

    return load


def load_choice(choice: ModelChoice, progress: Progress) -> Loaded:
    from r2r_local.pair import load_pair

    stages = {"small": "loading the small model {}", "large": "loading the large model {}",
              "vocab": "checking that the two models share a tokenizer"}

    def report(stage: str, path: str) -> None:
        progress(stages[stage].format(Path(path).name))

    from r2r_local.decode import routed

    pair = load_pair(choice.small, choice.large, progress=report)
    try:
        progress(f"setting up the router {choice.router}")
        router = pair.router(choice.router)
        policy = routed(overlap=choice.overlap, ahead=choice.ahead)
        pair.warn_threads(policy)
    except BaseException:
        pair.close()
        raise
    progress("ready")
    return Loaded(pair, router, policy, choice)
