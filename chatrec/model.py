"""The language model: any Hugging Face causal LM, an optional LoRA, projectors, soft-token splicing.

Soft tokens follow LLaVA: the prompt holds ``<image>``/``<audio>`` placeholders; each is replaced by
projected encoder vectors in ``inputs_embeds``. Text around placeholders is tokenised piece by piece,
so no tokenizer or vocabulary change is needed and any causal LM works.

Ranking is one forward pass over a prompt holding the conversation and then every candidate; each
candidate line ends at a ``<fit>`` mark, where the logit of " yes" minus " no" is that candidate's
score (a verbalizer read per line, as in LlamaRec's verbalizer, Yue et al. 2023, but pointwise).
``logits_to_keep`` selects those positions: the 262k-row output layer runs for n rows, not the prompt.
"""

from __future__ import annotations

import logging
import queue
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from . import decoding
from .projector import Projector
from .prompting import AUDIO, FIT, IMAGE, split_placeholders

log = logging.getLogger(__name__)

TokenCallback = Callable[[int, str], None]  # (row in batch, new text)


@dataclass
class SoftInputs:
    """Encoder outputs to splice as soft tokens into one prompt, in order of their placeholders.

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
    score_positions: list[list[int]] = field(default_factory=list)  # per row, where each <fit> score is read


class ChatLM(nn.Module):
    """A causal LM plus projectors. ``lm`` may be a peft model wrapping the base."""

    def __init__(self, tokenizer, lm: nn.Module, identity: str, projectors: dict[str, Projector] | None = None):
        super().__init__()
        self.tok = tokenizer
        self.lm = lm
        self.identity = identity  # exact base weights, e.g. packaged:gemma3-270m@sha256:...
        self.projectors = nn.ModuleDict(projectors or {})
        self.yes_id, self.no_id = self._answer_ids()

    @property
    def device(self) -> torch.device:
        return next(self.lm.parameters()).device

    @property
    def hidden_size(self) -> int:
        return self.lm.get_input_embeddings().weight.shape[1]

    def _answer_ids(self) -> tuple[int, int]:
        """Token ids of " yes" and " no": a candidate's score is their logit difference at its mark."""
        ids = []
        for word in (" yes", " no"):
            toks = self.tok(word, add_special_tokens=False).input_ids
            if len(toks) != 1:
                raise ValueError(f"tokenizer splits {word!r} into {len(toks)} tokens; the verbalizer needs one")
            ids.append(toks[0])
        return ids[0], ids[1]

    # ---- prompt -> inputs_embeds -------------------------------------------------------------

    def _piece_ids(self, prompt: str) -> list[int | str]:
        """Token ids with placeholder strings left in place; BOS once at the start."""
        out: list[int | str] = []
        if self.tok.bos_token_id is not None:
            out.append(self.tok.bos_token_id)
        for piece in split_placeholders(prompt):
            if piece in (IMAGE, AUDIO, FIT):
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

    def embed(self, prompts: Sequence[str], media: Sequence[SoftInputs | None] | None = None) -> Embedded:
        """Build left-padded inputs_embeds for a batch, splicing soft tokens at placeholders."""
        media = list(media) if media is not None else [None] * len(prompts)
        table = self.lm.get_input_embeddings()
        rows: list[torch.Tensor] = []
        spans: list[list[tuple[int, int]]] = []
        marks: list[list[int]] = []
        for prompt, med in zip(prompts, media, strict=True):
            queues = {IMAGE: list(med.image) if med else [], AUDIO: list(med.audio) if med else []}
            parts: list[torch.Tensor] = []
            row_spans: list[tuple[int, int]] = []
            row_marks: list[int] = []
            length = 0
            for seg in self._segments(prompt):
                if isinstance(seg, list):  # a run of token ids
                    parts.append(table(torch.tensor(seg, device=self.device)))  # (t, H)
                    length += len(seg)
                    continue
                if seg == FIT:  # no token: the score is read at the token before the mark
                    row_marks.append(length - 1)
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
            marks.append(row_marks)
        width = max(r.shape[0] for r in rows)
        hidden = rows[0].shape[1]
        embeds = rows[0].new_zeros(len(rows), width, hidden)
        mask = torch.zeros(len(rows), width, dtype=torch.long, device=self.device)
        for i, r in enumerate(rows):
            pad = width - r.shape[0]
            embeds[i, pad:] = r  # left padding keeps every row's answer position last
            mask[i, pad:] = 1
            spans[i] = [(s + pad, e + pad) for s, e in spans[i]]
            marks[i] = [m + pad for m in marks[i]]
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        return Embedded(embeds, mask, positions, spans, marks)

    # ---- ranking -----------------------------------------------------------------------------

    def candidate_logits(self, emb: Embedded) -> torch.Tensor:
        """(B, n) scores, logit(" yes") - logit(" no") at each row's <fit> marks; -inf past a row's last.

        Logits are computed only at the marks (``logits_to_keep`` with their positions).
        """
        if not emb.score_positions or not any(emb.score_positions):
            raise ValueError(f"the prompt has no {FIT} mark: nothing to score")
        keep = sorted({p for row in emb.score_positions for p in row})
        out = self.lm(
            inputs_embeds=emb.embeds,
            attention_mask=emb.mask,
            position_ids=emb.positions,
            logits_to_keep=torch.tensor(keep, device=self.device),
            use_cache=False,
        )
        diff = (out.logits[..., self.yes_id] - out.logits[..., self.no_id]).float()  # (B, len(keep))
        col = {p: j for j, p in enumerate(keep)}
        n = max(len(row) for row in emb.score_positions)
        scores = diff.new_full((len(emb.score_positions), n), float("-inf"))
        for i, row in enumerate(emb.score_positions):
            if row:
                scores[i, : len(row)] = diff[i, [col[p] for p in row]]
        return scores

    @torch.no_grad()
    def rank(self, prompt: str, n_candidates: int, media: SoftInputs | None = None) -> torch.Tensor:
        """(n_candidates,) log-probabilities over the candidates of one rank prompt."""
        emb = self.embed([prompt], [media])
        if len(emb.score_positions[0]) != n_candidates:
            raise ValueError(f"rank prompt scores {len(emb.score_positions[0])} candidates, expected {n_candidates}")
        return torch.log_softmax(self.candidate_logits(emb)[0], -1)

    # ---- generation --------------------------------------------------------------------------

    @torch.no_grad()
    def generate(
        self,
        prompts: Sequence[str],
        max_new_tokens: int,
        on_token: TokenCallback | None = None,
        stop: str = "\n",
        should_stop: Callable[[], bool] | None = None,
        no_repeat_ngram: int = 0,
        vocab: torch.Tensor | None = None,
    ) -> list[str]:
        """Greedy continuation of each text prompt, batched; stops a row at ``stop`` or EOS.

        ``no_repeat_ngram`` > 0 forbids repeating any run of that many tokens: a small greedy model
        otherwise falls into loops ("is a film by X is a film by X ...").

        ``on_token(row, text)`` receives new text as it is decoded; ``should_stop()`` returning True
        ends every row at the next token (a consumer that went away).

        ``vocab``: token ids the output layer computes (:mod:`chatrec.decoding`), with the prompts' own
        tokens added; None computes the whole vocabulary.
        """
        emb = self.embed(prompts)
        streamer = _RowStreamer(self.tok, len(prompts), on_token, stop, should_stop)
        if vocab is not None:
            mine = {i for p in prompts for i in self._piece_ids(p) if isinstance(i, int)}
            vocab = torch.unique(torch.cat([vocab, torch.tensor(sorted(mine), dtype=torch.long)]))
            decoding.install(self.lm)
        with warnings.catch_warnings(), decoding.restricted(vocab):
            warnings.filterwarnings("ignore", message=".*no_repeat_ngram_size.*")  # new tokens only is what we want
            self._generate(emb, max_new_tokens, streamer, no_repeat_ngram)
        return [t.lstrip().split(stop)[0].strip() for t in streamer.texts()]

    def _generate(self, emb, max_new_tokens: int, streamer, no_repeat_ngram: int) -> None:
        eos = [self.tok.eos_token_id] + [i for i in self.tok.convert_tokens_to_ids(["<end_of_turn>"])
                                         if isinstance(i, int) and i != self.tok.unk_token_id]
        self.lm.generate(
            inputs_embeds=emb.embeds,
            attention_mask=emb.mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            no_repeat_ngram_size=no_repeat_ngram or None,
            streamer=streamer,
            eos_token_id=eos,
            pad_token_id=self.tok.pad_token_id,
            stopping_criteria=[streamer.stopping],
            top_p=None,
            top_k=None,
            temperature=None,
        )

    def generate_stream(self, prompts: Sequence[str], max_new_tokens: int, stop: str = "\n",
                        no_repeat_ngram: int = 0, vocab: torch.Tensor | None = None,
                        ) -> Iterator[tuple[int, str] | list[str]]:
        """``generate`` as an iterator: yields ``(row, new text)`` as tokens arrive, then the list of texts.

        transformers' ``generate`` pushes tokens to a callback, so it runs in a worker thread and this
        generator relays them; closing the generator early stops generation at the next token.
        """
        events: queue.Queue = queue.Queue()
        closed = threading.Event()

        def work() -> None:
            try:
                texts = self.generate(prompts, max_new_tokens, lambda r, t: events.put((r, t)), stop, closed.is_set,
                                      no_repeat_ngram, vocab)
                events.put(("done", texts))
            except BaseException as e:  # re-raised in the consumer's thread
                events.put(("error", e))

        worker = threading.Thread(target=work, name="chatrec-generate", daemon=True)
        worker.start()
        try:
            while True:
                kind, value = events.get()
                if kind == "done":
                    yield value
                    return
                if kind == "error":
                    raise value
                yield kind, value
        finally:
            closed.set()
            worker.join()


class _RowStreamer:
    """Decodes each batch row incrementally and reports new text as it arrives."""

    def __init__(self, tok, rows: int, callback: TokenCallback | None, stop: str,
                 should_stop: Callable[[], bool] | None = None):
        self.tok, self.callback, self.stop, self.should_stop = tok, callback, stop, should_stop
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
        if self.should_stop is not None and self.should_stop():
            self.finished = [True] * len(self.finished)
        return torch.tensor(self.finished, device=input_ids.device)
