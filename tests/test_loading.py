"""Loading real checkpoints: tokenizer classes as the published repos name them, and missing packages named."""

from __future__ import annotations

import json

import pytest
from helpers import ok
from mcp import Client

from pixelmcp.catalog import ModelSpec
from pixelmcp.engine.loading import loading
from pixelmcp.engine.tiny import TINY_VERSION
from pixelmcp.errors import ModelLoadError

pytestmark = pytest.mark.anyio

PIXEL = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ"
         "/pLvAAAAAElFTkSuQmCC")


async def test_siglip_loads_with_the_tokenizer_class_its_repos_name(server, settings):
    async with Client(server) as client:
        data = ok(await client.call_tool("classify_image", {"image": PIXEL, "labels": ["a cat", "a dog"],
                                                            "model": "tiny-siglip"}))
    assert data["scoring"] == "sigmoid"
    folder = settings.tiny_dir / f"v{TINY_VERSION}" / "siglip"
    config = json.loads((folder / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "SiglipTokenizer" and (folder / "spiece.model").is_file()


def test_a_missing_package_is_named_with_its_install_command(tmp_path):
    spec = ModelSpec(alias="siglip-so400m", kind="siglip", source=str(tmp_path))
    with pytest.raises(ModelLoadError) as refused, loading(spec, str(tmp_path)):
        raise ImportError("SiglipTokenizer requires the SentencePiece library", name="sentencepiece")
    message = str(refused.value)
    assert "'siglip-so400m'" in message and "`pip install sentencepiece`" in message
