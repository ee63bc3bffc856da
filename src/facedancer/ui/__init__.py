"""``facedancer ui``: a local web page and an HTTP API over the swap library (the optional ``ui`` extra).

It sits at the command-line level: it uses :mod:`facedancer.swap` and :mod:`facedancer.io` exactly as
``facedancer swap`` does (the same labels, the same one-line errors), and nothing in the library imports it.
Starlette + uvicorn were chosen over Gradio on measured install size, pins and offline behaviour (README).
"""

from facedancer.ui.app import create_app
from facedancer.ui.server import listen, serve, url

__all__ = ["create_app", "listen", "serve", "url"]
