"""The chatrec web UI: ``python app_gradio.py [flags]`` is ``chatrec ui [flags]`` (see chatrec/ui/gradio_app.py)."""

import sys

from chatrec.ui.gradio_app import build_app, main

__all__ = ["build_app", "main"]

if __name__ == "__main__":
    sys.exit(main())
