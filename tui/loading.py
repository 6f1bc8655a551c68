"""ChatApp's model loading: the load worker and what its messages do to the screen; a mixin, so
that Textual dispatches LoadStep, LoadFailed and ModelsLoaded to it like to the app's own methods.

The worker runs the app's Loader in a thread; every step, the failure or the loaded pair comes
back as a message on the UI thread. A pair loaded after the app closed is closed at once.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from textual import work
from textual.widgets import Static

from r2r_local.chat import has_thinking_switch
from r2r_local.errors import R2RError

from r2r_tui.load_panel import LoadPanel
from r2r_tui.messages import LoadFailed, LoadStep, ModelsLoaded

if TYPE_CHECKING:
    from r2r_tui.app import ChatApp


class ModelLoading:
    """Loading the pair and showing its steps, its failure or the pair it loaded."""

    def _start_loading(self: ChatApp) -> None:
        self._loading = True
        self._load_models()

    @work(thread=True, exit_on_error=False, group="load")
    def _load_models(self: ChatApp) -> None:
        try:
            loaded = self._loader(lambda text: self.post_message(LoadStep(text)))
        except R2RError as e:
            self.post_message(LoadFailed(e.title, str(e)))
            return
        except Exception as e:  # a bug, still shown in the app without a traceback
            self.post_message(LoadFailed("Internal error", f"{type(e).__name__}: {e}"))
            return
        finally:
            self._loading = False
        if self._shutting_down:  # the app closed while loading: nobody will take the models
            loaded.close()
            return
        self.post_message(ModelsLoaded(loaded))

    def on_load_step(self: ChatApp, event: LoadStep) -> None:
        self.query_one(LoadPanel).add_step(event.text)

    def on_load_failed(self: ChatApp, event: LoadFailed) -> None:
        self.query_one(LoadPanel).fail(event.title, event.message)
        self.notify(event.message, title=event.title, severity="error", timeout=30, markup=False)
        self.status.show(replace(self.status.figures, state="no models"))

    def on_models_loaded(self: ChatApp, event: ModelsLoaded) -> None:
        self.loaded = event.loaded
        self.router = event.loaded.router
        self.threshold = self.router.threshold
        self.query_one(LoadPanel).done()
        choice = event.loaded.choice
        plan = f" · GPU plan: {choice.plan}" if choice.plan else ""
        router = Path(choice.router).name if choice.router.endswith(".onnx") else choice.router  # a file: its name
        self.query_one("#models", Static).update(f"{choice.header} · router {router}{plan}")
        self.thinking_switch = has_thinking_switch(event.loaded.pair.small.chat_template)
        if self.thinking is not None and not self.thinking_switch:
            self.notify("this model's chat template has no thinking switch: it thinks as it always does",
                        severity="warning")
            self.thinking = None
        self.refresh_bindings()
        self._show_status("ready")
