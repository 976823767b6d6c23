"""Instructions sent with vision-language questions."""

ANSWER_INSTRUCTION = (
    "Look carefully at the image and answer the question factually and concisely. "
    "If something cannot be seen or read clearly, say so instead of guessing."
)

COMPARE_INSTRUCTION = (
    "You are shown {count} images, in order (image 1 to image {count}). Refer to them by number. "
    "Be specific about positions, objects, colours and text. If something cannot be seen clearly, say so."
)

DEFAULT_COMPARE_QUESTION = "What are the differences between these images?"


#: What a verifying caption asks the vision model (generated and edited images, verify="caption").
CAPTION_QUESTION = ("Describe this image in one sentence: what it actually shows (its main subjects, their "
                    "colours and setting), not what it was meant to show.")


def answer_prompt(question: str) -> str:
    return f"{ANSWER_INSTRUCTION}\n\nQuestion: {question}"


def compare_prompt(question: str, count: int) -> str:
    return f"{COMPARE_INSTRUCTION.format(count=count)}\n\nQuestion: {question}"
