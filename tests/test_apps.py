"""The MCP Apps interface: its `ui://` resource and tool metadata through the MCP client, list_images paging, and
the app itself in headless Chromium, hosted by a test page that implements the host side of the bridge against a
running `pixelmcp serve` (tiny profile). Screenshots of each state go to PIXELMCP_SCREENSHOT_DIR (default: the
test's temporary folder) for a person to look at."""

from __future__ import annotations

import base64
import io
import os
import shutil
from pathlib import Path

import anyio
import pytest
from helpers import ok
from mcp import Client
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID
from PIL import Image
from test_e2e import start_http

from pixelmcp.tools.gallery import APP_HOSTS, STUDIO_URI, UI_TOOLS

pytestmark = pytest.mark.anyio

HOST_PAGE = Path(__file__).parent / "apps" / "host.html"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


# --------------------------------------------------------------------------- server side, through the MCP client


async def test_the_app_is_a_listed_ui_resource_that_loads_nothing_from_the_network(server):
    async with Client(server) as client:
        listed = {r.uri: r for r in (await client.list_resources()).resources}
        read = (await client.read_resource(STUDIO_URI)).contents[0]
    assert listed[STUDIO_URI].mime_type == APP_MIME_TYPE == read.mime_type
    assert read.meta == {"ui": {"csp": {}, "prefersBorder": False}}  # no domain: hosts keep their strictest policy
    html = read.text
    assert html.startswith("<!doctype html>") and "globalThis.McpExtApps=" in html and "/*EXT_APPS*/" not in html
    lowered = html.lower()
    assert "<script src" not in lowered and "<link" not in lowered and "@import" not in lowered


async def test_image_tools_point_at_the_app_and_the_rest_do_not(server):
    async with Client(server) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    bound = {name for name, tool in tools.items() if (tool.meta or {}).get("ui")}
    assert bound == set(UI_TOOLS)
    assert all(tools[name].meta["ui"] == {"resourceUri": STUDIO_URI} for name in bound)
    assert EXTENSION_ID == "io.modelcontextprotocol/ui"


async def test_list_models_says_which_hosts_show_the_app(server):
    async with Client(server) as client:
        report = ok(await client.call_tool("list_models", {}))
    assert report["app"] == {"uri": STUDIO_URI, "shown_by": list(APP_HOSTS), "tools": list(UI_TOOLS)}


async def test_results_are_complete_without_the_app(server):
    async with Client(server) as client:
        result = await client.call_tool("generate_image", {"prompt": "a kite", "seed": 1, "rewrite": False})
    kinds = [block.type for block in result.content]
    assert kinds == ["image", "resource_link", "text"]  # what a host without apps shows, as before
    assert ok(result)["images"][0]["uri"].startswith("pixelmcp://images/")


async def test_list_images_pages_newest_first_with_previews(server):
    async with Client(server) as client:
        made = ok(await client.call_tool("generate_image", {"prompt": "three kites", "seed": 5, "n": 3,
                                                            "rewrite": False}))
        first = ok(await client.call_tool("list_images", {"limit": 2}))
        rest = ok(await client.call_tool("list_images", {"offset": 2, "limit": 2}))
        bad = await client.call_tool("list_images", {"limit": 0})
    assert first["total"] == rest["total"] == 3 and len(first["images"]) == 2 and len(rest["images"]) == 1
    listed = [image["uri"] for image in first["images"] + rest["images"]]
    assert sorted(listed) == sorted(image["uri"] for image in made["images"])
    ids = [image["id"] for image in first["images"] + rest["images"]]
    assert ids == sorted(ids, reverse=True)
    entry = first["images"][0]
    assert entry["prompt"] == "three kites" and entry["tool"] == "generate_image" and entry["model"] == "tiny-sd15"
    thumbnail = Image.open(io.BytesIO(base64.b64decode(entry["thumbnail"].split(",", 1)[1])))
    assert max(thumbnail.size) <= 160
    assert bad.is_error and "limit" in bad.content[0].text and "1..48" in bad.content[0].text


# --------------------------------------------------------------------------- the app, in a real browser


def _dump(result) -> dict:
    return result.model_dump(mode="json", by_alias=True, exclude_none=True)


async def open_host(playwright, mcp_request):
    """Chromium showing the test host page (tests/apps/host.html), which forwards the app's requests to
    `mcp_request`; (browser, page, the console's errors)."""
    browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
    page = await browser.new_page(viewport={"width": 900, "height": 1000})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    await page.expose_function("mcpRequest", mcp_request)
    await page.set_content(HOST_PAGE.read_text())
    return browser, page, errors


@pytest.fixture
def screenshots(tmp_path) -> Path:
    folder = Path(os.environ.get("PIXELMCP_SCREENSHOT_DIR") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="Debian's chromium is not installed")
async def test_a_generated_image_opens_in_the_viewer_and_a_painted_mask_makes_an_edit(tiny_cache, tmp_path,
                                                                                       screenshots):
    from playwright.async_api import async_playwright

    assert CHROMIUM, "CI installs Debian's chromium (.ci/run): the app must be proven in a real browser there"
    process, port = await start_http(tiny_cache, tmp_path)
    calls: list[tuple[str, dict]] = []
    try:
        with anyio.fail_after(240):
            async with Client(f"http://127.0.0.1:{port}/mcp") as client, async_playwright() as playwright:
                async def mcp_request(method: str, params: dict) -> dict:
                    calls.append((method, params))
                    if method == "tools/call":
                        return _dump(await client.call_tool(params["name"], params.get("arguments") or {}))
                    if method == "resources/read":
                        return _dump(await client.read_resource(params["uri"]))
                    if method == "ui/download-file":
                        return {}
                    raise ValueError(f"the test host does not forward {method}")

                browser, page, errors = await open_host(playwright, mcp_request)
                html = (await client.read_resource(STUDIO_URI)).contents[0].text
                arguments = {"prompt": "a red kite over the sea", "seed": 3, "n": 2, "rewrite": False,
                             "width": 128, "height": 96}
                generated = await client.call_tool("generate_image", arguments)
                first = ok(generated)["images"][0]
                await page.evaluate("([html, name, args, result]) => openApp(html, name, args, result, 'dark')",
                                    [html, "generate_image", arguments, _dump(generated)])
                app = page.frame_locator("#app")

                # 1. The viewer: the full-resolution PNG (read through the host, not the preview), its parameters,
                # the call's other image, and the host's dark theme.
                full = app.locator("#full")
                await app.locator(f'#full[data-uri="{first["uri"]}"][src^="data:image/png"]').wait_for()
                assert await full.evaluate("img => img.decode().then(() => [img.naturalWidth, img.naturalHeight])") \
                    == [128, 96]
                assert await app.locator('dd[data-field="prompt"]').text_content() == "a red kite over the sea"
                assert await app.locator('dd[data-field="seed"]').text_content() == "3"
                assert await app.locator("#siblings .thumb").count() == 2
                assert await app.locator("html").get_attribute("data-theme") == "dark"
                assert ("resources/read", {"uri": first["uri"]}) in calls
                await page.screenshot(path=str(screenshots / "1-viewer.png"))

                # New seed: the same call again, with the seed after the call's last one.
                await app.locator("#act-seed").click()
                await app.locator('dd[data-field="seed"]', has_text="5").wait_for()
                again = [p["arguments"] for m, p in calls if m == "tools/call" and p["name"] == "generate_image"]
                assert again == [{**{k: v for k, v in arguments.items() if k != "n"}, "seed": 5}]
                assert await app.locator("#siblings .thumb").count() == 0  # one image now

                # 2. The gallery, through list_images.
                await app.locator("#tab-gallery").click()
                await app.locator("#grid .thumb").nth(2).wait_for()
                assert await app.locator("#grid .thumb").count() == 3
                await page.screenshot(path=str(screenshots / "2-gallery.png"))
                await app.locator("#grid .thumb").nth(1).click()  # one of the first call's: back in the viewer
                edited = await full.get_attribute("data-uri")
                assert edited in {image["uri"] for image in ok(generated)["images"]}

                # 3. The mask painter: a stroke across the middle, a prompt, Apply.
                await app.locator("#act-edit").click()
                canvas = app.locator("#mask")
                await canvas.wait_for()
                await app.locator("#size").fill("120")  # brush width in screen pixels
                box = await canvas.bounding_box()
                y = box["y"] + box["height"] / 2
                await page.mouse.move(box["x"] + box["width"] * 0.2, y)
                await page.mouse.down()
                await page.mouse.move(box["x"] + box["width"] * 0.8, y, steps=8)
                await page.mouse.up()
                await app.locator("#prompt").fill("a green balloon")
                await page.screenshot(path=str(screenshots / "3-painter.png"))
                await app.locator("#apply").click()
                await app.locator('dd[data-field="prompt"]', has_text="a green balloon").wait_for()
                edits = [p["arguments"] for m, p in calls if m == "tools/call" and p["name"] == "edit_image"]
                assert len(edits) == 1 and edits[0]["prompt"] == "a green balloon" and edits[0]["image"] == edited
                mask = Image.open(io.BytesIO(base64.b64decode(edits[0]["mask"].split(",", 1)[1]))).convert("L")
                assert mask.size == (128, 96)
                assert mask.getpixel((64, 48)) > 200 and mask.getpixel((64, 5)) < 30  # the stroke, and not elsewhere
                await app.locator('#full[src^="data:image/png"]').wait_for()
                shown = await full.get_attribute("data-uri")
                assert shown not in {image["uri"] for image in ok(generated)["images"]}  # the edit's result
                await page.screenshot(path=str(screenshots / "4-edited.png"))

                # 4. Mask from text: edit_image finds the area and the mask it used comes back for correction.
                await app.locator("#act-edit").click()
                await app.locator("#mask-words").fill("the balloon")
                await app.locator("#from-text").click()
                await app.locator("#status", has_text="loaded").wait_for()
                worded = [p["arguments"] for m, p in calls if m == "tools/call" and p["name"] == "edit_image"][-1]
                assert worded == {"image": shown, "prompt": "a green balloon", "mask_prompt": "the balloon"}
                assert await canvas.evaluate("c => c.getContext('2d').getImageData(0, 0, c.width, c.height).data"
                                             ".some((v, i) => i % 4 === 3 && v > 0)")
                await page.screenshot(path=str(screenshots / "5-mask-from-text.png"))
                await browser.close()
                assert not [e for e in errors if "Content Security Policy" in e or "Uncaught" in e], errors
    finally:
        process.terminate()


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="Debian's chromium is not installed")
async def test_the_viewer_shows_loras_a_variations_parent_and_a_sweep_cells_values(screenshots, server):
    # (screenshots first: the server fixture clears PIXELMCP_* variables, PIXELMCP_SCREENSHOT_DIR among them)
    from playwright.async_api import async_playwright

    assert CHROMIUM, "CI installs Debian's chromium (.ci/run): the app must be proven in a real browser there"
    quiet = {"rewrite": False, "verify": False}
    with anyio.fail_after(180):
        async with Client(server) as client, async_playwright() as playwright:
            async def mcp_request(method: str, params: dict) -> dict:
                if method == "resources/read":
                    return _dump(await client.read_resource(params["uri"]))
                if method == "tools/call":
                    return _dump(await client.call_tool(params["name"], params.get("arguments") or {}))
                raise ValueError(f"the test host does not forward {method}")

            parent_args = {"prompt": "a kite", "seed": 2, "loras": [{"name": "tiny-lora-a", "weight": 0.6}], **quiet}
            parent = ok(await client.call_tool("generate_image", parent_args))
            vary_args = {"image": parent["uri"], "n": 1, "seed": 9, "verify": False}
            varied = await client.call_tool("vary_image", vary_args)
            varied_uri = ok(varied)["uri"]
            sweep_args = {"prompt": "a kite", "seed": 2, "sweep_steps": [2, 3], **quiet}
            swept = await client.call_tool("generate_image", sweep_args)
            html = (await client.read_resource(STUDIO_URI)).contents[0].text
            browser, page, errors = await open_host(playwright, mcp_request)
            await page.evaluate("([html, name, args, result]) => openApp(html, name, args, result, 'light')",
                                [html, "vary_image", vary_args, _dump(varied)])
            app = page.frame_locator("#app")
            await app.locator('dd[data-field="parent"]').wait_for()
            assert await app.locator('dd[data-field="parent"]').text_content() == parent["uri"]
            assert await app.locator('dd[data-field="loras"]').text_content() == "tiny-lora-a 0.6"
            assert await app.locator('dd[data-field="strength"]').text_content() == "0.35"
            await page.screenshot(path=str(screenshots / "6-variation.png"))

            await page.evaluate("([html, name, args, result]) => openApp(html, name, args, result, 'light')",
                                [html, "generate_image", sweep_args, _dump(swept)])
            app = page.frame_locator("#app")
            await app.locator('dd[data-field="sweep"]').wait_for()
            assert await app.locator('dd[data-field="sweep"]').text_content() == "steps 2"
            await app.locator("#siblings .thumb").nth(1).click()
            await app.locator('dd[data-field="sweep"]', has_text="steps 3").wait_for()
            await page.screenshot(path=str(screenshots / "7-sweep.png"))

            # The gallery shows the same for an image opened from list_images (its order, as the app pages it).
            listed = [image["uri"] for image in ok(await client.call_tool("list_images", {"limit": 12}))["images"]]
            await app.locator("#tab-gallery").click()
            await app.locator("#grid .thumb").nth(len(listed) - 1).wait_for()
            await app.locator("#grid .thumb").nth(listed.index(varied_uri)).click()
            await app.locator('dd[data-field="parent"]', has_text=parent["uri"]).wait_for()
            assert await app.locator('dd[data-field="loras"]').text_content() == "tiny-lora-a 0.6"
            await browser.close()
            assert not [e for e in errors if "Content Security Policy" in e or "Uncaught" in e], errors
