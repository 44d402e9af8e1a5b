"""Text summaries kept beside the scalars: where trainers write their plan.

The Hugging Face Trainer writes its ``TrainingArguments`` as JSON in the text summary
``args/text_summary`` when training starts (``max_steps``, ``num_train_epochs``, batch sizes, ...);
``tbhub.core.frameworks`` reads a run's plan from it. So the scalar reader keeps, per event file, the
latest text of each text-plugin tag (at most ``MAX_TEXTS`` tags per file, each cut at the decoder's
limit), in ``ScalarFileState.texts``. ``None`` there means a state stored before texts were kept:
such a file is read again from its start once.

A decoder delivers texts through ``TextDecoder.pop_texts`` (optional: a decoder without it gives
none), called after each batch it decoded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol, runtime_checkable

from tbhub.core.scalars.runs import run_tag
from tbhub.core.scalars.summary import ScalarFileState

__all__ = ["MAX_TEXTS", "TextDecoder", "keep_texts", "run_texts"]

MAX_TEXTS = 16
"""Text tags kept per event file: the first ones seen (a trainer writes two or three at its start);
a job that logs a new text tag per step does not make its state grow."""


@runtime_checkable
class TextDecoder(Protocol):
    """An ``EventDecoder`` that also collects text summaries.

    Contract: ``pop_texts()`` returns, for the events decoded (by ``decode`` or ``decode_batch``)
    since the previous call, each text-plugin tag's latest text (tags as written in the file), and
    forgets them. Calling it after every batch of one file gives each tag's latest text in the file.
    """

    def pop_texts(self) -> dict[str, str]: ...


def keep_texts(kept: Mapping[str, str], new: Mapping[str, str]) -> dict[str, str]:
    """``kept`` updated with ``new`` (later texts win), holding at most ``MAX_TEXTS`` tags: a tag not
    kept yet is added only while there is room."""
    out = dict(kept)
    for tag, text in new.items():
        if tag in out or len(out) < MAX_TEXTS:
            out[tag] = text
    return out


def run_texts(run_relpath: str, files: Iterable[ScalarFileState]) -> dict[str, str]:
    """A run's texts from the states of its files, keyed like its scalars (``run_tag``); where two
    files hold the same key, the file written last (its latest scalar, then its relpath) wins."""
    prefix = run_relpath.strip("/")
    out: dict[str, str] = {}
    ordered = sorted(files, key=lambda s: (max((t.last_wall_time for t in s.tags.values()), default=0.0),
                                           s.relpath))
    for state in ordered:
        if not state.texts:
            continue
        inner = state.relpath[len(prefix) + 1 :] if prefix and state.relpath.startswith(prefix + "/") \
            else state.relpath
        subdir = inner.rpartition("/")[0]
        for tag, text in state.texts.items():
            out[run_tag(subdir, tag)] = text
    return out
