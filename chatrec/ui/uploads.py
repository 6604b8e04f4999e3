"""Upload components that hand the file over undecoded, so chatrec's own checks judge it.

With plain gr.Image / gr.Audio, Gradio decodes an upload before the handler runs: a text file named
.png or a 10-gigapixel PNG failed as "upstream app raised an exception" instead of one clear message
naming the file. These are template subclasses (the browser renders them as gr.Image / gr.Audio).
Gradio keeps a type stub of every component class next to its module: ``uploads.pyi`` is that stub,
checked in so that importing this module writes nothing.
"""

import gradio as gr


class UploadedImage(gr.Image):
    is_template = True

    def preprocess(self, payload):
        return getattr(payload, "path", None) if payload is not None else None


class UploadedAudio(gr.Audio):
    is_template = True

    def preprocess(self, payload):
        return getattr(payload, "path", None) if payload is not None else None
