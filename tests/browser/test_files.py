"""The gateway's file manager in Chromium, against a real network and a real gateway process.

One network and one gateway serve the module. Screenshots: ``files-*.png``.
"""

from __future__ import annotations

import re
import struct
import time
import urllib.parse
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from metadisk.client import Project
from metadisk.gateway.config import GatewayConfig
from metadisk.gateway.server import Gateway
from metadisk.gateway.web.paging import PAGE
from tests.e2e.harness import SMALL, background_network
from tests.gateway.harness import S3World, fresh_bucket_name, start_world

Shot = Callable[[Any, str], Path]
BIG = bytes(range(256)) * (3 * 4096 + 7)  # about 3 MiB: streamed, more than one segment


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3World]:
    with background_network(tmp_path_factory.mktemp("files-network"), farmers=6) as running:
        made = start_world(tmp_path_factory.mktemp("files-gateway"), running.tenant())
        try:
            yield made
        finally:
            made.gateway.stop_sync()


def files_url(world: S3World) -> str:
    assert world.gateway.files_url is not None, "the file manager is on, on loopback"
    return world.gateway.files_url


def png(width: int, height: int) -> bytes:
    """A small grey PNG, made by hand."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\0" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def signed_in(context: Any, world: S3World) -> Any:
    page = context.new_page()
    page.goto(files_url(world))
    assert page.url == world.url + "/-/", "the token is swapped for a cookie at once"
    return page


def new_bucket(page: Any, world: S3World) -> str:
    name = fresh_bucket_name("web")
    page.goto(world.url + "/-/")
    page.get_by_label("Name").fill(name)
    page.get_by_role("button", name="Create").click()
    page.wait_for_url(re.compile(r"/-/browse\?bucket="))
    return name


def drop_files(page: Any, files: dict[str, str]) -> None:
    """Drop `files` (name: text) on the drop zone, as a drag from the desktop does."""
    transfer = page.evaluate_handle(
        """(files) => {
            const transfer = new DataTransfer();
            for (const [name, text] of Object.entries(files)) {
                transfer.items.add(new File([text], name, { type: "text/plain" }));
            }
            return transfer;
        }""",
        files,
    )
    page.dispatch_event("#dropzone", "dragover", {"dataTransfer": transfer})
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": transfer})


def test_the_token_is_swapped_for_a_strict_session_cookie(context: Any, world: S3World) -> None:
    url = files_url(world)
    token = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["token"][0]
    page = context.new_page()
    answer = page.goto(world.url + "/-/")
    assert answer.status == 401
    assert "open the file manager's URL" in page.content()
    assert page.goto(world.url + "/-/?token=" + "x" + token[1:]).status == 403
    answer = page.goto(url)
    assert answer.status == 200 and page.url == world.url + "/-/"
    headers = answer.all_headers()
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "'unsafe-inline'" not in headers["content-security-policy"]
    (cookie,) = context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/-/"
    # The S3 side is untouched: an unsigned request is refused the S3 way.
    s3 = context.request.get(world.url + "/")
    assert s3.status == 403 and b"<Error>" in s3.body()


def test_a_change_from_another_origin_or_without_the_token_is_refused(
    context: Any, world: S3World
) -> None:
    page = signed_in(context, world)
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content")
    name = fresh_bucket_name("csrf")
    form = {"name": name, "csrf": csrf}
    request = context.request  # shares the page's cookies
    evil = request.post(
        world.url + "/-/buckets", form=form, headers={"Origin": "http://evil.example"}
    )
    assert evil.status == 403 and "another origin" in evil.text()
    cross = request.post(
        world.url + "/-/buckets", form=form, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert cross.status == 403
    bare = request.post(world.url + "/-/buckets", form={"name": name})
    assert bare.status == 403 and "CSRF" in bare.text()
    wrong = request.put(
        world.url + f"/-/upload?bucket={name}&key=x", data=b"x", headers={"X-CSRF-Token": "no"}
    )
    assert wrong.status == 403
    # A rebound DNS name reaching the loopback port is refused whatever it carries.
    rebound = request.get(world.url + "/-/", headers={"Host": f"evil.example:{world.gateway.port}"})
    assert rebound.status == 403
    page.goto(world.url + "/-/")
    assert name not in page.content(), "no refused request made the bucket"
    # The same form from the page itself works.
    ok = request.post(
        world.url + "/-/buckets", form=form, headers={"Origin": world.url}, max_redirects=0
    )
    assert ok.status == 303


def test_upload_preview_download_rename_delete(
    context: Any, world: S3World, screenshot: Shot, tmp_path: Path
) -> None:
    page = signed_in(context, world)
    bucket = new_bucket(page, world)
    screenshot(page, "files-empty-bucket")
    (tmp_path / "big.bin").write_bytes(BIG)
    (tmp_path / "notes.txt").write_text("first line\nsecond line\n")
    (tmp_path / "dot.png").write_bytes(png(3, 2))
    chosen = [str(tmp_path / name) for name in ("big.bin", "notes.txt", "dot.png")]
    page.set_input_files("#files", chosen)
    expect(page.locator("#upload-list li.ok")).to_have_count(3)
    total = len(BIG) + 23 + len(png(3, 2))
    assert page.locator("#total").get_attribute("value") == str(total)
    screenshot(page, "files-upload-progress")
    page.wait_for_selector('tr.file[data-key="notes.txt"]')
    drop_files(page, {"dropped-a.txt": "alpha", "dropped-b.txt": "bravo " * 100})
    expect(page.locator("#upload-list li.ok")).to_have_count(2)
    page.wait_for_selector('tr.file[data-key="dropped-b.txt"]')
    keys = page.locator("tr.file").evaluate_all("rows => rows.map(r => r.dataset.key)")
    assert keys == ["big.bin", "dot.png", "dropped-a.txt", "dropped-b.txt", "notes.txt"]
    page.get_by_label("New folder").fill("docs")
    page.get_by_role("button", name="Create folder").click()
    page.wait_for_url(re.compile(r"prefix=docs(%2F|/)$"))
    assert "Nothing here" in page.content(), "an empty folder exists and shows as empty"
    page.goto(world.url + f"/-/browse?bucket={bucket}")
    page.get_by_role("link", name="docs/").click()
    page.get_by_role("button", name="Delete this empty folder").click()
    page.wait_for_selector("text=Deleted docs/.")
    assert page.locator("tr.folder").count() == 0
    page.get_by_label("New folder").fill("docs")
    page.get_by_role("button", name="Create folder").click()
    page.wait_for_url(re.compile(r"prefix=docs(%2F|/)$"))
    page.goto(world.url + f"/-/browse?bucket={bucket}")
    page.get_by_label("Filter by name").fill("dropped")
    page.get_by_role("button", name="Filter").click()
    assert page.locator("tr.file").count() == 2 and page.locator("tr.folder").count() == 0
    page.goto(world.url + f"/-/browse?bucket={bucket}")
    assert page.locator("tr.folder").count() == 1
    screenshot(page, "files-folder")

    with page.expect_download() as downloading:
        page.locator('tr.file[data-key="big.bin"]').get_by_role("link", name="Download").click()
    download = downloading.value
    assert download.suggested_filename == "big.bin"
    assert Path(download.path()).read_bytes() == BIG

    page.get_by_role("link", name="dot.png").click()
    image = page.locator("#preview-image")
    expect(image).to_be_visible()
    for _ in range(50):  # fetched from /-/raw and decoded
        if image.evaluate("img => img.complete && img.naturalWidth") == 3:
            break
        time.sleep(0.1)
    assert image.evaluate("img => img.naturalWidth") == 3
    page.go_back()
    page.get_by_role("link", name="notes.txt").click()
    expect(page.locator("#preview-text")).to_contain_text("second line")
    screenshot(page, "files-preview")

    page.get_by_role("link", name="Rename or move").click()
    screenshot(page, "files-rename")
    page.get_by_label("New name or path").fill("renamed.txt")
    page.get_by_role("button", name="Rename").click()
    page.wait_for_selector('tr.file[data-key="renamed.txt"]')
    assert page.locator('tr.file[data-key="notes.txt"]').count() == 0
    page.locator('tr.file[data-key="renamed.txt"]').get_by_role("link", name="Delete").click()
    screenshot(page, "files-delete-confirm")
    page.get_by_role("button", name="Delete").click()
    page.wait_for_selector("text=Deleted renamed.txt.")
    assert page.locator('tr.file[data-key="renamed.txt"]').count() == 0


def test_a_shared_folder_opens_with_its_grant_in_another_browser(
    browser: Any, context: Any, world: S3World, screenshot: Shot, tmp_path: Path
) -> None:
    page = signed_in(context, world)
    bucket = new_bucket(page, world)
    page.get_by_label("New folder").fill("trip")
    page.get_by_role("button", name="Create folder").click()
    page.wait_for_url(re.compile(r"prefix=trip(%2F|/)$"))
    (tmp_path / "day1.txt").write_text("the sea")
    page.set_input_files("#files", [str(tmp_path / "day1.txt")])
    page.wait_for_selector('tr.file[data-key="trip/day1.txt"]')
    page.goto(world.url + f"/-/browse?bucket={bucket}")
    (tmp_path / "private.txt").write_text("not shared")
    page.set_input_files("#files", [str(tmp_path / "private.txt")])
    page.wait_for_selector('tr.file[data-key="private.txt"]')
    page.goto(world.url + f"/-/browse?bucket={bucket}&prefix=trip/")
    page.get_by_role("link", name="Share this folder").click()
    page.get_by_label("Expires after").fill("2")
    page.get_by_role("button", name="Make the grant").click()
    grant = page.get_by_label("Grant to copy").input_value()
    assert grant.startswith("mdg1")
    screenshot(page, "files-share")

    other = browser.new_context(viewport={"width": 1000, "height": 800})
    try:
        friend = signed_in(other, world)
        friend.get_by_role("link", name="Import a grant").click()
        screenshot(friend, "files-import")
        friend.get_by_label("Grant").fill(grant)
        friend.get_by_role("button", name="Browse with it").click()
        friend.get_by_role("link", name=f"{bucket}/trip/").click()
        friend.wait_for_selector('tr.file[data-key="trip/day1.txt"]')
        assert friend.locator("#uploader").count() == 0, "a read-only share offers no upload"
        screenshot(friend, "files-shared-folder")
        assert friend.get_by_role("link", name=bucket, exact=True).count() == 0, "no way up"
        friend.get_by_role("link", name="day1.txt").click()
        expect(friend.locator("#preview-text")).to_have_text("the sea")
        answer = friend.goto(world.url + f"/-/browse?bucket={bucket}")
        assert answer.status == 403, "the grant reaches the shared folder only"
        answer = friend.goto(world.url + f"/-/download?bucket={bucket}&key=private.txt")
        assert answer.status == 403
    finally:
        other.close()
    page.goto(world.url + "/-/")
    assert page.get_by_role("link", name=bucket).count() == 1, "the owner's session is unchanged"
    screenshot(page, "files-buckets")


def test_a_big_folder_comes_a_page_at_a_time(
    context: Any, world: S3World, screenshot: Shot
) -> None:
    page = signed_in(context, world)
    bucket = new_bucket(page, world)
    names = {f"n{number:04}.txt" for number in range(450)}
    with Project.open(world.full.grant, config=SMALL) as project:
        for name in sorted(names):
            project.upload(bucket, f"big/{name}", name.encode())
    page.goto(world.url + f"/-/browse?bucket={bucket}&prefix=big/")
    seen: list[str] = []
    pages = 0
    while True:
        pages += 1
        keys = page.locator("tr.file").evaluate_all("rows => rows.map(r => r.dataset.key)")
        assert keys == sorted(keys), "sorted within the page"
        assert len(keys) <= PAGE
        seen += keys
        following = page.get_by_role("link", name="Next page")
        if following.count() == 0:
            break
        with page.expect_navigation():
            following.click()
    assert pages == 3 and sorted(seen) == sorted(f"big/{n}" for n in names)
    page.goto(world.url + f"/-/browse?bucket={bucket}&prefix=big/&q=N042")
    keys = page.locator("tr.file").evaluate_all("rows => rows.map(r => r.dataset.key)")
    assert keys == [f"big/n042{d}.txt" for d in range(10)]
    answer = page.goto(world.url + f"/-/browse?bucket={bucket}&prefix=nowhere")
    assert answer.status == 400
    screenshot(page, "files-refused")


def test_a_cancelled_upload_leaves_nothing_behind(
    context: Any, world: S3World, tmp_path: Path
) -> None:
    page = signed_in(context, world)
    bucket = new_bucket(page, world)
    # A slow uplink, so the upload is still running when it is cancelled.
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    slow = {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 1 << 20}
    cdp.send("Network.emulateNetworkConditions", slow)
    (tmp_path / "slow.bin").write_bytes(BIG * 2)
    page.set_input_files("#files", [str(tmp_path / "slow.bin")])
    expect(page.locator("#upload-list li .state")).not_to_have_text("0%")
    page.get_by_role("button", name="Cancel uploads").click()
    expect(page.locator("#upload-list li .state")).to_have_text("cancelled")
    with Project.open(world.full.grant, config=SMALL) as project:
        for _ in range(50):  # the gateway notices the cut connection, then aborts
            if not project.list_uploads(bucket):
                break
            time.sleep(0.2)
        assert project.list_uploads(bucket) == []
        assert list(project.list_objects(bucket)) == []


def test_the_file_manager_is_off_unless_the_gateway_listens_on_loopback(world: S3World) -> None:
    for host, on in (("0.0.0.0", False), ("192.0.2.7", False), ("127.0.0.1", True), ("::1", True)):
        gateway = Gateway(GatewayConfig((world.full,), host=host, port=0))
        paths = {route.resource.canonical for route in gateway.app().router.routes()}
        assert (gateway.files.enabled, "/-/" in paths) == (on, on), host
        assert "/{tail}" in paths, "the S3 side is always there"
