"""A Playwright page that collects what must never happen on the web page (console errors, failed requests, script
dialogs) and can check itself with axe-core and take screenshots."""

import re
from pathlib import Path

AXE_RUN = """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
    .map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(' '))}))"""


class Browsing:
    def __init__(self, page, shots: Path, axe_source: str):
        self.page, self.shots, self.axe_source = page, shots, axe_source
        self.console_errors: list[str] = []
        self.dialogs: list[str] = []
        self.axe_runs = 0
        page.on("console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.console_errors.append(f"uncaught: {e}"))
        page.on("dialog", self._dialog)

    def _dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def axe(self, where: str) -> list[dict]:
        """axe-core's serious and critical violations on the page as it is now (injected over DevTools, so the
        page's Content-Security-Policy, which allows no inline script, stays as it is)."""
        if not self.page.evaluate("() => typeof axe !== 'undefined'"):
            self.page.evaluate(self.axe_source)
        self.axe_runs += 1
        found = self.page.evaluate(AXE_RUN)
        bad = [v for v in found if v["impact"] in ("serious", "critical")]
        assert not bad, f"{where}: axe-core found {bad}"
        return found

    def clean(self) -> None:
        assert not self.console_errors, f"console errors: {self.console_errors}"
        assert not self.dialogs, f"script dialogs opened: {self.dialogs}"


def sign_in(b: Browsing, key: str) -> None:
    page = b.page
    page.goto("/")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("navigation", name="Sections").wait_for()


def text_of(page, selector: str) -> str:
    return re.sub(r"\s+", " ", page.locator(selector).inner_text())
