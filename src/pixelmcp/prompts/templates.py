"""MCP prompt templates: ready-made requests an assistant can offer its user.

Each returns the user message that starts the work; the assistant then calls pixelmcp's tools.
"""

from __future__ import annotations


def product_shot(product: str, setting: str = "a clean white studio", style: str = "commercial photography") -> str:
    """A catalogue-ready product image, checked before it is shown."""
    return (
        f"Make a product shot of {product} in {setting}, in the style of {style}.\n"
        "1. Call generate_image with a detailed prompt: the product centred and in sharp focus, soft even lighting, "
        "a subtle shadow, no text or logos that are not part of the product; n=2.\n"
        "2. Call compare_images on the two results and pick the one where the product is most complete and "
        "least distorted; say why, quoting the measured similarity.\n"
        "3. Show me the chosen image (its pixelmcp:// link) and the seed, so it can be made again."
    )


def character_sheet(character: str, reference_image: str = "", views: str = "front, three-quarter, side") -> str:
    """A consistent character across several views, using style_transfer's subject mode."""
    reference = (
        f"Use {reference_image} as the reference."
        if reference_image else
        f"First call generate_image for a full-body {character} on a plain background and use its pixelmcp:// uri "
        "as the reference."
    )
    return (
        f"Create a character sheet for {character}: one image per view ({views}).\n"
        f"{reference}\n"
        "For each view, call style_transfer with mode='subject', scale=0.8, style_image=<the reference uri> and a "
        "prompt that names the view and keeps clothing, colours and proportions identical; reuse one seed.\n"
        "Then call compare_images on all views and report anything that drifted (colours, clothing, features)."
    )


def refine_loop(goal: str, image: str = "", rounds: int = 3) -> str:
    """Improve an image step by step, checking each change with measurements."""
    start = f"Start from {image}." if image else "Start by calling generate_image for the goal."
    return (
        f"Goal: {goal}. {start}\n"
        f"Repeat up to {rounds} times: call ask_about_image on the current image asking what keeps it from the goal; "
        "make one change (controlnet_generate with the current image to keep its composition, or generate_image "
        "with a revised prompt and the same seed); then call compare_images on the old and new image and keep the "
        "new one only if it is closer to the goal. Stop early when it matches.\n"
        "Finish with the final image's pixelmcp:// link and a one-line summary of each round."
    )


TEMPLATES = (product_shot, character_sheet, refine_loop)
