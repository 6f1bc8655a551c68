"""Which models a command loads: its flags, then the user's config file; `--demo` for the shipped pair.

One resolution for `r2r generate`, `r2r bench`, `r2r label` and r2r-chat, so that a pair set up
with `r2r models add` or `r2r models pull` is the pair every command runs. There is no built-in
product pair: with no flags and no configured pair, NoModelsError says in one line what to do
(`no_models_message`, also for `r2r serve`). Layer counts nobody chose are left to the GPU fit
plan, made when the models load (`specs_for`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from r2r_local.config import DEFAULT_N_CTX, ModelSpec
from r2r_local.errors import ConfigError
from r2r_local.server_bounds import SERVER_KEYS, ServerBounds, flag_name

if TYPE_CHECKING:
    from r2r_local.fit import FitPlan

# The values a command's flags and the [models] table of the config file share.
KEYS = ("small", "large", "router", "n_ctx", "threads", "small_gpu_layers", "large_gpu_layers", *SERVER_KEYS)


class NoModelsError(ConfigError):
    """No model flags, no --demo and no pair in the config file: nothing to load."""

    title = "No models set up"


def no_models_message() -> str:
    """The one line every model-running command (generate, bench, label, serve, r2r-chat's
    fallback) prints when no pair is given or configured: the three ways to get one."""
    return ("no models are set up: add --demo to run the built-in demo pair, download a real pair with "
            "r2r models pull NAME (r2r models list shows them, with sizes), or give --small PATH --large PATH")


@dataclass(frozen=True)
class PairChoice:
    """The resolved choice. router None: the command's own default; a layer count None: the fit
    plan decides at load. source: "flags" (a model path came from a flag), "config" or "demo".
    notes: lines worth telling the user (a configured value not used). server: the request bounds
    of a served large model (`large` http://...), None for a local one."""

    small: str
    large: str
    router: str | None
    n_ctx: int
    threads: int | None
    small_gpu_layers: int | None
    large_gpu_layers: int | None
    source: str
    notes: tuple[str, ...] = ()
    server: ServerBounds | None = None


def resolve_pair(flags: Mapping[str, Any], *, demo: bool = False, config: dict[str, Any] | None = None,
                 config_file: Path | None = None) -> PairChoice:
    """Merge `flags` (KEYS; None or absent = not given) over the config file (read from
    `config_file` or the default place unless `config` is given).

    With `demo` the shipped demo pair is used and the config file is not read. Neither model
    given nor configured raises NoModelsError (`no_models_message`); a model given by one flag
    while the other is neither given nor configured is refused. A configured router file goes
    with the configured small model: with another --small it is not used (a note says so) and
    the command's default router runs.
    """
    given = {k: flags.get(k) for k in KEYS}
    if demo:
        return _demo_choice(given)
    if config is None:
        from r2r_local.config import load_user_config

        config = load_user_config(config_file)

    def pick(key: str) -> Any:
        return given[key] if given[key] is not None else config.get(key)

    small, large = pick("small"), pick("large")
    if small is None and large is None:
        raise NoModelsError(no_models_message())
    source = "flags" if given["small"] or given["large"] else "config"
    if small is None or large is None:
        missing, present = ("small", "large") if small is None else ("large", "small")
        raise ConfigError(f"--{present} is given but no {missing} model: add --{missing} PATH "
                          "(or configure a pair with r2r models add)")
    router, notes = given["router"], ()
    if router is None and config.get("router") is not None:
        router, notes = _configured_router(config["router"], config.get("small"), small)
    server, server_notes = bounds_for(large, given, config)
    n_ctx = pick("n_ctx")
    return PairChoice(small, large, router, DEFAULT_N_CTX if n_ctx is None else n_ctx, pick("threads"),
                      pick("small_gpu_layers"), pick("large_gpu_layers"), source, notes + server_notes, server)


def bounds_for(large: str, given: Mapping[str, Any],
               config: Mapping[str, Any]) -> tuple[ServerBounds | None, tuple[str, ...]]:
    """The request bounds of a served `large` (flags over the config file over the defaults).
    With a local large model a bound given as a flag is refused in one line, and one from the
    config file is not used (a note says so)."""
    from r2r_local.backends.remote import is_remote

    if not is_remote(large):
        flags = [flag_name(k) for k in SERVER_KEYS if given.get(k) is not None]
        if flags:
            raise ConfigError(f"{', '.join(flags)}: only for a large model behind a server (--large http://HOST:PORT); "
                              f"{large} is a local file")
        configured = [f"models.{k}" for k in SERVER_KEYS if config.get(k) is not None]
        return None, ((f"the configured {', '.join(configured)} only apply to a large model behind a server: "
                       f"not used with {large}",) if configured else ())
    values = [given[k] if given.get(k) is not None else config.get(k) for k in SERVER_KEYS]
    return ServerBounds.of(*values), ()


def _configured_router(router: str, configured_small: str | None, small: str) -> tuple[str | None, tuple[str, ...]]:
    """The configured router, unless it is a router file and the small model is not the configured
    one (a router reads the hidden states of the model it was trained for)."""
    if ".onnx" not in router or configured_small is None or _same_file(configured_small, small):
        return router, ()
    return None, (f"the configured router {router} belongs to the configured small model, not to {small}: "
                  "it is not used (give --router to choose one)",)


def _same_file(a: str, b: str) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return a == b


def _demo_choice(given: dict[str, Any]) -> PairChoice:
    from r2r_local.backends.remote import is_remote

    remote_large = given["large"] if is_remote(given["large"]) else None
    if given["small"] or (given["large"] and not remote_large):
        raise ConfigError("--demo uses the built-in pair: leave out --small and --large "
                          "(--large http://HOST:PORT, a server of the demo's large model, is allowed)")
    from r2r_local.demo import FALLBACK_ROUTER, demo_pair, demo_router

    pair = demo_pair()
    router = given["router"]
    if router is None:
        shipped = demo_router()
        router = str(shipped) if shipped is not None else FALLBACK_ROUTER
    n_ctx = given["n_ctx"]
    large = remote_large or str(pair.large)
    server, _ = bounds_for(large, given, {})
    return PairChoice(str(pair.small), large, router, DEFAULT_N_CTX if n_ctx is None else n_ctx,
                      given["threads"], given["small_gpu_layers"], given["large_gpu_layers"], "demo", server=server)


def specs_for(choice: PairChoice, router: str | None) -> tuple[ModelSpec, ModelSpec, "FitPlan | None"]:
    """The two ModelSpecs. Layer counts the choice leaves open come from the fit plan (small model
    and `router` first, then as many large-model layers as fit) on a llama.cpp build with GPU
    offload, and are 0 on a CPU-only build; the plan is returned when one was made."""
    n_small, n_large = choice.small_gpu_layers, choice.large_gpu_layers
    plan = None
    from r2r_local.backends.remote import is_remote

    if is_remote(choice.large):  # the server places its model itself; the small model has the GPU
        n_large = 0
        if n_small is None:
            from r2r_local.backends.llama_cpp import supports_gpu_offload

            n_small = -1 if supports_gpu_offload() else 0
    if n_small is None or n_large is None:
        from r2r_local.backends.llama_cpp import supports_gpu_offload

        if supports_gpu_offload():
            from r2r_local.backends.gguf_file import check_gguf_path
            from r2r_local.fit import config_layers, plan_for_machine

            check_gguf_path(choice.small, "small")
            check_gguf_path(choice.large, "large")
            plan = plan_for_machine(choice.small, choice.large, n_ctx=choice.n_ctx, router=router,
                                    small_gpu_layers=n_small, large_gpu_layers=n_large)
            n_small, n_large = config_layers(plan.small), config_layers(plan.large)
        else:
            n_small, n_large = n_small or 0, n_large or 0
    common = dict(n_ctx=choice.n_ctx, threads=choice.threads)
    return (ModelSpec(choice.small, n_gpu_layers=n_small, role="small", **common),
            ModelSpec(choice.large, n_gpu_layers=n_large, role="large", server=choice.server, **common), plan)
