"""Take screenshots of the main pages at desktop and phone widths, for a visual review.

Not part of the test suite. Needs a running server with a user who belongs to a team:

    python scripts/screenshots.py --base http://127.0.0.1:8765 --user maya --password ...

Writes PNG files to /tmp/shots/ (never committed). Uses Debian's Chromium, never a download.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Literal

from playwright.sync_api import Page, sync_playwright

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
WIDTHS = {"desktop": (1280, 860), "phone": (390, 844)}


def sign_in(page: Page, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state("networkidle")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", default="http://127.0.0.1:8765")
    parser.add_argument("--user", default="maya")
    parser.add_argument("--password", required=True)
    parser.add_argument("--team", default="northwind")
    parser.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "shots"))
    parser.add_argument("--dark", action="store_true", help="prefers-color-scheme: dark")
    parser.add_argument("--only", default="", help="comma-separated page names")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pages = {
        "overview": f"/t/{args.team}/",
        "members": f"/t/{args.team}/members/",
        "invitations": f"/t/{args.team}/invitations/",
        "invite": f"/t/{args.team}/invitations/new/",
        "api-keys": "/account/api-keys/",
        "teams": "/teams/",
        "team-new": "/teams/new/",
        "team-settings": f"/t/{args.team}/settings/",
        "team-leave": f"/t/{args.team}/leave/",
        "password": "/accounts/password/",
        "not-found": "/no-such-page/",
    }
    only = {name for name in args.only.split(",") if name}
    scheme: Literal["dark", "light"] = "dark" if args.dark else "light"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        for label, (width, height) in WIDTHS.items():
            context = browser.new_context(
                viewport={"width": width, "height": height}, color_scheme=scheme
            )
            page = context.new_page()
            page.on(
                "console",
                lambda msg: (
                    print(f"  console[{msg.type}]: {msg.text}")
                    if msg.type in {"error", "warning"}
                    else None
                ),
            )
            suffix = f"{label}{'-dark' if args.dark else ''}"
            if not only or "login" in only:
                page.goto(f"{args.base}/accounts/login/")
                page.screenshot(path=str(out / f"login-{suffix}.png"), full_page=True)
            sign_in(page, args.base, args.user, args.password)
            for name, path in pages.items():
                if only and name not in only:
                    continue
                page.goto(args.base + path)
                page.wait_for_load_state("networkidle")
                page.screenshot(path=str(out / f"{name}-{suffix}.png"), full_page=True)
                overflow = page.evaluate("document.documentElement.scrollWidth")
                print(f"{name} {label}: scrollWidth={overflow}")
            if not only or "dialog" in only:
                page.goto(f"{args.base}/account/api-keys/")
                page.get_by_role("link", name="Revoke").first.click()
                page.wait_for_selector("#modal[open]")
                page.wait_for_timeout(400)
                page.screenshot(path=str(out / f"dialog-{suffix}.png"))
            if not only or "invitation" in only:
                page.goto(f"{args.base}/t/{args.team}/invitations/new/")
                page.get_by_role("button", name="Create invitation link").click()
                page.wait_for_load_state("networkidle")
                page.screenshot(path=str(out / f"invitation-created-{suffix}.png"), full_page=True)
                page.goto(f"{args.base}/t/{args.team}/invitations/")
                page.screenshot(path=str(out / f"invitations-full-{suffix}.png"), full_page=True)
            if not only or "menu" in only:
                page.goto(f"{args.base}/t/{args.team}/")
                menu = ".nav-mobile > summary" if width < 900 else ".team-switcher > summary"
                page.click(menu)
                page.screenshot(path=str(out / f"menu-{suffix}.png"))
            context.close()
        browser.close()


if __name__ == "__main__":
    main()
