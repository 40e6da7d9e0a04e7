"""Actions several screens offer, each behind a confirmation: start a run of the branch
head, unpin environments a rollback pinned, clear a service's dependency caches. Mixed
into a screen (it brings `fetch`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text

from seamless_tui.fmt import short_sha, size_text
from seamless_tui.screens.confirm import ConfirmModal
from store.models import CacheInfo, RunInfo, Service


class ServiceActions:
    if TYPE_CHECKING:  # provided by BaseScreen (declared, not defined: no shadowing)
        app: Any
        seamless: Any
        client: Any

        def fetch(self, call: Any, then: Any) -> None: ...
        def notify(self, message: str, **kwargs: Any) -> None: ...

    def confirm_trigger(self, service: Service) -> None:
        question = Text.assemble("Start a run of ", (service.name, "bold"), " at the head of ",
                                 (service.branch, "bold"), "?")
        name = service.name

        def answered(ok: bool | None) -> None:
            if ok:
                self.fetch(lambda: self.client.trigger(name), self.show_triggered)

        self.app.push_screen(ConfirmModal(question, confirm="Start run"), answered)

    def show_triggered(self, run: RunInfo) -> None:
        # The run's screen names it (service, number, sha): no toast to say it again, one
        # that would be mounted anew on every screen shown while it lasts.
        self.seamless.open_run(run.id, known=run)

    def confirm_unpin(self, service: Service, environments: list[str]) -> None:
        pinned = [env for env in environments if env in service.pinned]
        if not pinned:
            where = " or ".join(environments)
            self.notify(f"{service.name} is not pinned in {where}: nothing to unpin",
                        severity="warning")
            return
        question = Text.assemble("Unpin ", (service.name, "bold"), " in ")
        for n, env in enumerate(pinned):
            at = short_sha(service.pinned[env])
            question.append_text(Text.assemble((", " if n else ""), (env, "bold"),
                                               f" (pinned at {at})"))
        question.append("?\nLater runs deploy there again.")
        name = service.name

        async def unpin() -> Service:
            result = None
            for env in pinned:
                result = await self.client.unpin(name, env)
            assert result is not None
            return result

        self.app.push_screen(ConfirmModal(question, confirm="Unpin"),
                             lambda ok: self.fetch(unpin, self.show_unpinned) if ok else None)

    def confirm_clear_cache(self, name: str) -> None:
        """Ask with the cache's size (from the agent), then empty it. A token whose role may
        not clear caches gets the agent's refusal as a toast."""
        self.seamless.hold_keys()  # `C` `y` typed fast: the `y` is for the dialog

        def ask(cache: CacheInfo) -> None:
            question = Text.assemble(
                "Clear the dependency caches of ", (name, "bold"), "?\n",
                f"{size_text(cache.bytes)} (of at most {size_text(cache.max_bytes)}) mounted "
                "at /cache in its stages: the next runs download and fill them again.")
            self.app.push_screen(
                ConfirmModal(question, confirm="Clear"),
                lambda ok: self.fetch(lambda: self.client.clear_cache(name),
                                      self.show_cache_cleared) if ok else None)

        self.fetch(lambda: self.client.cache(name), ask)

    def show_cache_cleared(self, cache: CacheInfo) -> None:
        self.notify(f"{cache.service}: caches cleared, {size_text(cache.freed_bytes or 0)} "
                    "freed")

    def show_unpinned(self, service: Service) -> None:
        self.notify(f"{service.name} unpinned: later runs deploy again")
        self.unpinned(service)

    def unpinned(self, service: Service) -> None:
        """Screens refresh what shows the pin."""
