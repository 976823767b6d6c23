"""The local model pool and its backends. torch, diffusers and transformers are imported
only inside functions here, on first use, never at import time."""
