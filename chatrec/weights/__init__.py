"""Model weights installed as Python packages: the packaged Gemma GGUF (dequantised once and cached),
the sentence embedder, and Whisper converted from CTranslate2. Nothing is downloaded at run time."""
