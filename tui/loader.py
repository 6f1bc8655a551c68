"""Which models to load (built-in default -> config file -> flags) and loading them through the core.

The app never loads models itself: it is handed a `Loader`, a function that takes a progress
callback and returns a `Loaded`. `--demo` and the GPU fit plan plug in here: a demo resolver
returns a `ModelChoice` like `resolve_choice` does, and a planner fills `ModelChoice.plan`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from r2r_local.config import DEFAULT_N_CTX, ModelSpec
from r2r_local.errors import ConfigError

if TYPE_CHECKING:
    from r2r_local.decode import Policy
    from r2r_local.pair import LoadedPair
    from r2r_local.router import Router

DEFAULT_ROUTER = "entropy:1.5"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ChatOptions:
    """Model choices from the command line; None means "not given" (config or default decides)."""

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


@dataclass(frozen=True)
class ModelChoice:
    """The resolved pair to load. description: one line for the screen; plan: the GPU fit plan
    line when a planner made one; source: where the choice came from (flags, config, default, demo)."""

    small: ModelSpec
    large: ModelSpec
    router: str
    description: str
    source: str
    plan: str | None = None
    overlap: bool = False  # the small model's next step runs while the router decides
    ahead: bool = False  # the small model writes ahead during the large model's calls


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
    """Merge the built-in default, the user's config file and the flags (later wins)."""
    if options.demo:
        return demo_choice(options)
    if config is None:
        from r2r_local.config import load_user_config

        config = load_user_config(options.config_file)

    def pick(key: str, default: Any) -> Any:
        flag = getattr(options, key)
        return flag if flag is not None else config.get(key, default)

    small, large = pick("small", None), pick("large", None)
    given = "flags" if (options.small or options.large) else ("config" if config else "default")
    if small is None or large is None:
        from r2r_local.defaults import smollm2_path

        default = str(smollm2_path())
        small, large = small or default, large or default
    n_ctx, threads = pick("n_ctx", DEFAULT_N_CTX), pick("threads", None)
    small_spec = ModelSpec(small, n_ctx=n_ctx, n_gpu_layers=pick("small_gpu_layers", 0), threads=threads, role="small")
    large_spec = ModelSpec(large, n_ctx=n_ctx, n_gpu_layers=pick("large_gpu_layers", 0), threads=threads, role="large")
    unset = [k for k in ("small_gpu_layers", "large_gpu_layers") if pick(k, None) is None]
    router = pick("router", DEFAULT_ROUTER)
    choice = ModelChoice(small_spec, large_spec, router, describe(small_spec, large_spec), given,
                         overlap=options.overlap, ahead=options.ahead)
    return fit_layers(choice, unset) if unset else choice


def fit_layers(choice: ModelChoice, unset: list[str]) -> ModelChoice:
    """GPU layers nobody set come from the fit plan (r2r_local.fit) on a build with GPU offload;
    the plan's lines become `choice.plan`, shown while loading."""
    from r2r_local.backends.llama_cpp import supports_gpu_offload

    if not supports_gpu_offload():
        return choice
    from r2r_local.fit import config_layers, plan_for_machine

    flags = {k: getattr(choice, k.split("_")[0]).n_gpu_layers for k in ("small_gpu_layers", "large_gpu_layers")
             if k not in unset}
    plan = plan_for_machine(choice.small.path, choice.large.path, n_ctx=choice.small.n_ctx, router=choice.router,
                            **flags)
    return replace(choice, small=replace(choice.small, n_gpu_layers=config_layers(plan.small)),
                   large=replace(choice.large, n_gpu_layers=config_layers(plan.large)),
                   plan="; ".join(plan.lines()))


def demo_choice(options: ChatOptions) -> ModelChoice:
    """The built-in demo pair (models/demo) with its router when one is shipped."""
    from r2r_local.demo import FALLBACK_ROUTER, demo_pair, demo_router

    pair = demo_pair()
    n_ctx = options.n_ctx if options.n_ctx is not None else DEFAULT_N_CTX
    threads = options.threads
    small = ModelSpec(str(pair.small), n_ctx=n_ctx, threads=threads, role="small",
                      n_gpu_layers=options.small_gpu_layers or 0)
    large = ModelSpec(str(pair.large), n_ctx=n_ctx, threads=threads, role="large",
                      n_gpu_layers=options.large_gpu_layers or 0)
    router = options.router or (str(demo_router()) if demo_router() else FALLBACK_ROUTER)
    return ModelChoice(small, large, router, "built-in demo pair (addition)", "demo", overlap=options.overlap,
                       ahead=options.ahead)


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
