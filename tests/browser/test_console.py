"""The bridge console in Chromium, against a real local network (bridge and farmer processes).

One network for the module. Each test signs up its own account in a fresh browser profile.
"""

from __future__ import annotations

import http.server
import re
import shlex
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from metadisk.cli import config as cfg
from metadisk.client import Project
from tests.e2e.harness import SMALL, BackgroundNetwork, background_network, run_cli

ADMIN_TOKEN = "console-test-admin-token"
PASSWORD = "correct horse battery"
PASSPHRASE = "a passphrase for the console test"
Shot = Callable[[Any, str], Path]


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundNetwork]:
    root = tmp_path_factory.mktemp("console-net")
    settings = {"server": {"admin_token": ADMIN_TOKEN}}
    with background_network(root, farmers=10, bridge_settings=settings) as running:
        yield running


def console(network: BackgroundNetwork, path: str = "") -> str:
    return f"{network.bridge_url}/console{path}"


def sign_up(page: Any, network: BackgroundNetwork, shot: Shot | None = None) -> str:
    """A new account through the sign-up form; its email. The page ends on the projects list."""
    email = f"user-{uuid.uuid4().hex[:10]}@example.com"
    page.goto(console(network, "/signup"))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD)
    if shot is not None:
        shot(page, "console-signup")
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(re.compile(r"/console/projects$"))
    return email


def open_default_project(page: Any) -> str:
    page.get_by_role("link", name="default").click()
    page.wait_for_url(re.compile(r"/console/projects/[0-9a-f]{32}$"))
    return str(page.url)


def stat(page: Any, id_: str) -> str:
    return str(page.locator(f"#{id_} dd").inner_text())


def test_sign_up_make_a_key_upload_with_it_see_usage_and_revoke_it(
    network: BackgroundNetwork, context: Any, screenshot: Shot, tmp_path: Path
) -> None:
    page = context.new_page()
    page.goto(console(network, "/login"))
    screenshot(page, "console-login")
    sign_up(page, network, screenshot)
    cookie = next(c for c in context.cookies() if c["name"] == "mdc_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    screenshot(page, "console-projects")
    project_url = open_default_project(page)
    assert stat(page, "objects") == "0"
    chart_before = page.locator("#history svg desc").text_content()

    page.get_by_label("Name", exact=True).fill("laptop")
    page.get_by_role("button", name="Create key").click()
    api_key = page.locator("#api-key").input_value()
    command = page.locator("#setup-command").input_value()
    assert api_key.startswith("mdk1") and api_key in command
    screenshot(page, "console-key")

    # The exact command the page shows, run as a user would, passphrase from the environment.
    words = shlex.split(command)
    assert words[:3] == ["metadisk", "setup", network.bridge_url]
    config_dir = tmp_path / "cli"
    done = run_cli(
        *words[1:], "--passphrase-env", "MDK_PASS",
        config_dir=config_dir, env={"MDK_PASS": PASSPHRASE},
    )  # fmt: skip
    assert done.status == 0, done.err
    assert "stored" in done.err  # the project's passphrase verifier, from now on checked
    grant = cfg.load(config_dir).grant
    assert grant is not None
    wrong = run_cli(
        *words[1:], "--force", "--passphrase-env", "MDK_PASS",
        config_dir=tmp_path / "other", env={"MDK_PASS": "not the passphrase"},
    )  # fmt: skip
    assert wrong.status != 0 and "wrong passphrase" in wrong.err
    data = uuid.uuid4().bytes * 4096  # 64 KiB
    with Project.open(grant, config=SMALL) as project:
        project.create_bucket("photos")
        project.upload("photos", "cat.bin", data)

    # A read-only key for one bucket: it reads the object, and may not write.
    page.goto(project_url)
    page.get_by_label("Name", exact=True).fill("reader")
    page.get_by_label("read and list only").check()
    page.get_by_label("Only this bucket").fill("photos")
    page.get_by_label("Expires after (days)").fill("7")
    page.get_by_role("button", name="Create key").click()
    assert "read and list only, bucket photos only" in page.locator("main").inner_text()
    reader_words = shlex.split(page.locator("#setup-command").input_value())
    reader_dir = tmp_path / "reader"
    done = run_cli(
        *reader_words[1:], "--passphrase-env", "MDK_PASS",
        config_dir=reader_dir, env={"MDK_PASS": PASSPHRASE},
    )  # fmt: skip
    assert done.status == 0, done.err
    reader = cfg.load(reader_dir).grant
    assert reader is not None
    with Project.open(reader, config=SMALL) as project:
        project.download("photos", "cat.bin", tmp_path / "cat.bin")
        assert (tmp_path / "cat.bin").read_bytes() == data
        with pytest.raises(Exception, match=r"(?i)denied|not allowed"):
            project.upload("photos", "dog.bin", b"woof")

    page.goto(project_url)
    assert stat(page, "objects") == "1"
    assert stat(page, "stored") != "0 B"
    chart_after = page.locator("#history svg desc").text_content()
    assert chart_after != chart_before
    screenshot(page, "console-project")

    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Revoke laptop").click()
    page.wait_for_url(project_url)
    assert page.get_by_role("button", name="Revoke laptop").count() == 0
    with (
        pytest.raises(Exception, match=r"(?i)revoked|unknown|deleted|invalid"),
        Project.open(grant, config=SMALL) as project,
    ):
        project.list_buckets()


class _Evil(http.server.BaseHTTPRequestHandler):
    """Another origin's page: a form that posts to the console by itself."""

    target = ""

    def do_GET(self) -> None:
        body = (
            f'<form id="f" method="post" action="{self.target}">'
            '<input name="name" value="stolen"><input name="csrf" value="guessed"></form>'
            '<script>document.getElementById("f").submit()</script>'
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_post_from_another_origin_or_without_the_token_is_refused(
    network: BackgroundNetwork, context: Any
) -> None:
    page = context.new_page()
    sign_up(page, network)
    project_url = open_default_project(page)
    keys_url = f"{project_url}/keys"
    csrf = page.locator("input[name=csrf]").first.input_value()

    # The page's own request, but without the token, or with a wrong one: refused.
    assert context.request.post(keys_url, form={"name": "a"}).status == 403
    assert context.request.post(keys_url, form={"name": "a", "csrf": "x" * 43}).status == 403
    # With the token but from another origin: refused.
    evil = {"Origin": "http://evil.example"}
    sent = context.request.post(keys_url, form={"name": "a", "csrf": csrf}, headers=evil)
    assert sent.status == 403
    # A page of another origin (another port: same site, so the Strict cookie goes along).
    _Evil.target = keys_url
    server = http.server.HTTPServer(("127.0.0.1", 0), _Evil)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        other = context.new_page()
        with other.expect_response(keys_url) as answer:
            other.goto(f"http://127.0.0.1:{server.server_address[1]}/")
        assert answer.value.status == 403
    finally:
        server.shutdown()
        server.server_close()
    page.goto(project_url)
    assert page.get_by_role("button", name=re.compile("^Revoke")).count() == 0
    # The same request from the page, token and origin right, is taken: the refusals were real.
    same = {"Origin": network.bridge_url}
    made = context.request.post(
        keys_url, form={"name": "mine", "csrf": csrf}, headers=same, max_redirects=0
    )
    assert made.status == 200 and "mdk1" in made.text()
    # Logging in without the pre-login token is refused too.
    login = console(network, "/login")
    assert context.request.post(login, form={"email": "a@b.cd", "password": "x"}).status == 403


def test_operator_pages_show_the_node_table(
    network: BackgroundNetwork, context: Any, screenshot: Shot
) -> None:
    page = context.new_page()
    page.goto(console(network, "/admin"))
    page.wait_for_url(re.compile(r"/console/admin/login$"))
    page.get_by_label("Admin token").fill("not the token")
    page.get_by_role("button", name="Log in").click()
    assert "valid admin token" in page.locator("[role=alert]").inner_text()
    page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    screenshot(page, "console-admin-login")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/console/admin$"))
    rows = page.locator("#nodes tbody tr")
    assert rows.count() == len(network.farmers)
    table = page.locator("#nodes").inner_text()
    for farmer in network.farmers:
        assert farmer.node_id[:16] in table
    assert "online" in table
    assert page.locator("#totals").inner_text()
    screenshot(page, "console-admin")
