"""The language model: any Hugging Face causal LM, an optional LoRA, projectors, soft-token splicing.

Soft tokens follow LLaVA: the prompt holds ``<image>``/``<audio>`` placeholders; each is replaced by
projected encoder vectors in ``inputs_embeds``. Text around placeholders is tokenised piece by piece,
so no tokenizer or vocabulary change is needed and any causal LM works.

Ranking reads the next-token distribution at the answer position over the candidate labels
(a verbalizer, as in LlamaRec, Yue et al. 2023) with ``logits_to_keep=1``: the 262k-row output layer
runs for one position, not the whole prompt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from .projector import Projector
from .prompting import AUDIO, IMAGE, LABELS, split_placeholders

log = logging.getLogger(__name__)

TokenCallback = Callable[[int, str], None]  # (row in batch, new text)


@dataclass
class Media:
    """Encoder outputs for one prompt, keyed by placeholder, in order of appearance.

    image: list of (1, D_clip) tensors; audio: list of (M, D_audio) tensors.
    """

    image: list[torch.Tensor] = field(default_factory=list)
    audio: list[torch.Tensor] = field(default_factory=list)


@dataclass(frozen=True)
class Embedded:
    embeds: torch.Tensor  # (B, T, H), left-padded
    mask: torch.Tensor  # (B, T) 1 = real position
    positions: torch.Tensor  # (B, T) position ids counting real positions only
    soft_spans: list[list[tuple[int, int]]]  # per row, [start, end) of spliced soft tokens


class ChatLM(nn.Module):
    """A causal LM plus projectors. ``lm`` may be a peft model wrapping the base."""

    def __init__(self, tokenizer, lm: nn.Module, identity: str, projectors: dict[str, Projector] | None = None):
        super().__init__()
        self.tok = tokenizer
        self.lm = lm
        self.identity = identity  # exact base weights, e.g. packaged:gemma3-270m@sha256:...
        self.projectors = nn.ModuleDict(projectors or {})
        self.label_ids = self._label_token_ids()

    @property
    def device(self) -> torch.device:
        return next(self.lm.parameters()).device

    @property
    def hidden_size(self) -> int:
        return self.lm.get_input_embeddings().weight.shape[1]

    def _label_token_ids(self) -> list[int]:
        """Token id of " A", " B", ...: the answer token after "... is option"."""
        ids = []
        for label in LABELS:
            toks = self.tok(" " + label, add_special_tokens=False).input_ids
            if len(toks) != 1:
                raise ValueError(f"tokenizer splits label {' ' + label!r} into {len(toks)} tokens; verbalizer needs one")
            ids.append(toks[0])
        return ids

    # ---- prompt -> inputs_embeds -------------------------------------------------------------

    def _piece_ids(self, prompt: str) -> list[int | str]:
        """Token ids with placeholder strings left in place; BOS once at the start."""
        out: list[int | str] = []
        if self.tok.bos_token_id is not None:
            out.append(self.tok.bos_token_id)
        for piece in split_placeholders(prompt):
            if piece in (IMAGE, AUDIO):
                out.append(piece)
            else:
                out.extend(self.tok(piece, add_special_tokens=False).input_ids)
        return out

    def _segments(self, prompt: str) -> list[list[int] | str]:
        """Runs of token ids, with each placeholder as its own segment."""
        out: list[list[int] | str] = []
        for p in self._piece_ids(prompt):
            if isinstance(p, str):
                out.append(p)
            elif out and isinstance(out[-1], list):
                out[-1].append(p)
            else:
                out.append([p])
        return out

    def soft_tokens(self, kind: str, vectors: torch.Tensor) -> torch.Tensor:
        """Project encoder vectors (T, D) of one attachment -> (T * r, H)."""
        if kind not in self.projectors:
            raise KeyError(f"no trained {kind} projector in the loaded adapter")
        proj = self.projectors[kind]
        x = vectors.to(self.device, dtype=next(proj.parameters()).dtype)
        return proj(x.unsqueeze(0))[0].to(self.lm.get_input_embeddings().weight.dtype)

    def embed(self, prompts: Sequence[str], media: Sequence[Media | None] | None = None) -> Embedded:
        """Build left-padded inputs_embeds for a batch, splicing soft tokens at placeholders."""
        media = list(media) if media is not None else [None] * len(prompts)
        table = self.lm.get_input_embeddings()
        rows: list[torch.Tensor] = []
        spans: list[list[tuple[int, int]]] = []
        for prompt, med in zip(prompts, media, strict=True):
            queues = {IMAGE: list(med.image) if med else [], AUDIO: list(med.audio) if med else []}
            parts: list[torch.Tensor] = []
            row_spans: list[tuple[int, int]] = []
            length = 0
            for seg in self._segments(prompt):
                if isinstance(seg, list):  # a run of token ids
                    parts.append(table(torch.tensor(seg, device=self.device)))  # (t, H)
                    length += len(seg)
                    continue
                if not queues[seg]:
                    raise ValueError(f"prompt has a {seg} placeholder but no {seg} embedding was given")
                soft = self.soft_tokens("image" if seg == IMAGE else "audio", queues[seg].pop(0))  # (k, H)
                parts.append(soft)
                row_spans.append((length, length + soft.shape[0]))
                length += soft.shape[0]
            leftover = [k for k, q in queues.items() if q]
            if leftover:
                raise ValueError(f"embeddings given for {leftover} but the prompt has no placeholder for them")
            rows.append(torch.cat(parts))
            spans.append(row_spans)
        width = max(r.shape[0] for r in rows)
        hidden = rows[0].shape[1]
        embeds = rows[0].new_zeros(len(rows), width, hidden)
        mask = torch.zeros(len(rows), width, dtype=torch.long, device=self.device)
        for i, r in enumerate(rows):
            pad = width - r.shape[0]
            embeds[i, pad:] = r  # left padding keeps every row's answer position last
            mask[i, pad:] = 1
            spans[i] = [(s + pad, e + pad) for s, e in spans[i]]
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        return Embedded(embeds, mask, positions, spans)

    # ---- ranking -----------------------------------------------------------------------------

    def label_logits(self, emb: Embedded, n_labels: int) -> torch.Tensor:
        """(B, n_labels) next-token logits at the last position over the first n labels."""
        out = self.lm(
            inputs_embeds=emb.embeds,
            attention_mask=emb.mask,
            position_ids=emb.positions,
            logits_to_keep=1,
            use_cache=False,
        )
        last = out.logits[:, -1, :]  # (B, V)
        return last[:, self.label_ids[:n_labels]].float()

    @torch.no_grad()
    def rank(self, prompt: str, n_labels: int, media: Media | None = None) -> torch.Tensor:
        """(n_labels,) log-probabilities over the candidate labels for one prompt."""
        logits = self.label_logits(self.embed([prompt], [media]), n_labels)[0]
        return torch.log_softmax(logits, -1)

    # ---- generation --------------------------------------------------------------------------

    @torch.no_grad()
    def generate(
        self,
        prompts: Sequence[str],
        max_new_tokens: int,
        on_token: TokenCallback | None = None,
        stop: str = "\n",
    ) -> list[str]:
        """Greedy continuation of each text prompt, batched; stops a row at ``stop`` or EOS."""
        emb = self.embed(prompts)
        streamer = _RowStreamer(self.tok, len(prompts), on_token, stop)
        eos = [self.tok.eos_token_id] + [i for i in self.tok.convert_tokens_to_ids(["<end_of_turn>"]) if isinstance(i, int) and i != self.tok.unk_token_id]
        self.lm.generate(
            inputs_embeds=emb.embeds,
            attention_mask=emb.mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            streamer=streamer,
            eos_token_id=eos,
            pad_token_id=self.tok.pad_token_id,
            stopping_criteria=[streamer.stopping],
            top_p=None,
            top_k=None,
            temperature=None,
        )
        return [t.lstrip().split(stop)[0].strip() for t in streamer.texts()]


class _RowStreamer:
    """Decodes each batch row incrementally and reports new text as it arrives."""

    def __init__(self, tok, rows: int, callback: TokenCallback | None, stop: str):
        self.tok, self.callback, self.stop = tok, callback, stop
        self.ids: list[list[int]] = [[] for _ in range(rows)]
        self.sent = [0] * rows
        self.finished = [False] * rows
        self.first = True

    def put(self, value: torch.Tensor) -> None:
        if self.first:  # generate() first hands over the prompt (empty for inputs_embeds)
            self.first = False
            if value.dim() == 2 and value.shape[1] != 1 or value.numel() == 0:
                return
        value = value.reshape(len(self.ids), -1)
        for row, toks in enumerate(value.tolist()):
            if self.finished[row]:
                continue
            self.ids[row].extend(toks)
            text = self.tok.decode(self.ids[row], skip_special_tokens=True)
            if self.stop in text.lstrip():
                text = text[: len(text) - len(text.lstrip()) + text.lstrip().index(self.stop)]
                self.finished[row] = True
            new = text[self.sent[row]:]
            if new and not new.endswith("\ufffd") and self.callback:
                self.callback(row, new)
                self.sent[row] = len(text)
            if toks and toks[-1] in (self.tok.eos_token_id, self.tok.pad_token_id):
                self.finished[row] = True

    def end(self) -> None:
        pass

    def texts(self) -> list[str]:
        return [self.tok.decode(ids, skip_special_tokens=True) for ids in self.ids]

    def stopping(self, input_ids, scores, **kwargs) -> torch.Tensor:
        return torch.tensor(self.finished, device=input_ids.device)
