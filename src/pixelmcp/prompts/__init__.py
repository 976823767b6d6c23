"""System prompts and prompt-cleaning rules, kept apart from the code that sends them."""
