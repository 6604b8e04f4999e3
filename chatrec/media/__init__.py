"""Images and audio: loading user files safely, frozen CLIP / Whisper encoders, and a turn's attachments
turned into retrieval scores and soft-token inputs. Heavy modules are imported by their users, not here."""

from .files import MediaError

__all__ = ["MediaError"]
