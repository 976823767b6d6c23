"""Images in and out, with no MCP in them: decoding inputs (files, data URIs, URLs), previews, the PNG store."""
