"""Incremental scalar extraction: per event file and tag, what the scalars look like.

``summarize_file`` reads every record of an event file (or only the records appended since the
previous call), hands each payload to an injected ``EventDecoder`` (protobuf lives in
``tbhub.adapters.scalar_decoder``) and folds the scalar points into one ``TagSummary`` per tag.
``merge_tags`` combines the files of one run into per-run tag summaries. The alert engine and
``tbhub compare`` read these summaries; nothing here needs TensorBoard.

Invariants (what the rest of tbhub relies on):

* Records are read like TensorBoard's reader reads them: in file order, stopping at the first short
  record (``truncated``, normal while a job writes) or at the first bad header or payload CRC
  (``corrupt``). ``records`` then equals the number of records TensorBoard's ``RawEventFileLoader``
  yields for the same bytes, and ``offset`` is the byte just past the last complete, valid record.
* A file is never read past ``size`` (the caller's snapshot of it); no buffer larger than the bytes
  that actually exist is allocated, whatever a damaged header claims. File content never raises
  (damage is reported in the state; a payload the decoder cannot parse is skipped); I/O errors
  propagate.
* Resuming (same inode, not shrunk, not corrupt) reads only the bytes from ``previous.offset`` on
  and gives exactly the state a full pass over the file would give. Anything else (another inode:
  the file was replaced; a smaller size: it was truncated; a previous pass that stopped at a bad
  CRC: it may have been repaired) starts from byte 0 with a fresh state.
* Scalars are what TensorBoard's scalars dashboard shows: every ``simple_value`` (PyTorch,
  tensorboardX, TF1, Keras v1), and TF2 tensor summaries of a tag whose plugin is ``scalars``
  holding one float, double or half. The plugin of a tag is taken from the first value of that tag
  carrying ``metadata`` in the file (TF2 writers write it only on a tag's first occurrence); the
  memory (``plugins``) is part of the state, so a resumed file still knows its scalar tags.
  TensorBoard remembers plugins per run folder rather than per file; the two agree on what writers
  produce, since every writer (a new file) repeats the metadata on its first value of each tag.
* Within a file "first" and "last" follow file order (TensorBoard's order), whatever the steps.
  NaN and ±Inf are counted (``nan_count``, ``inf_count``) but never enter ``min``/``max``/``mean``;
  ``last_value`` is whatever came last, NaN included: that is how a divergence shows.

Tag naming in a run (``merge_tags``): a run is the ``{dataset}/{run}`` folder, but Keras and many
trainers write ``train/`` and ``validation/`` sub-folders with the same tags (``epoch_loss`` in
both). TensorBoard shows those as separate runs; tbhub keys them ``"{subdir}/{tag}"``
(``train/epoch_loss``, ``validation/epoch_loss``), or keeps the tag as is when it already starts with
that sub-folder (tag ``train/loss`` written in ``train/`` stays ``train/loss``). Files directly in the
run folder keep their bare tags. See ``run_tag``.

Modules: ``decoding`` (the decoder contracts and the points they give), ``summary`` (per-tag
summaries and how they fold together), ``records`` (reading CRC-checked records in batches),
``files`` (one event file, resumable), ``runs`` (a run's files into per-run tags) and ``parallel``
(many local files, in worker processes when it pays).
"""

from __future__ import annotations

from tbhub.core.scalars.decoding import BatchEventDecoder, EventDecoder, ScalarPoint, Series
from tbhub.core.scalars.files import bytes_to_parse, iter_points, resume_offset, summarize_file
from tbhub.core.scalars.parallel import PARALLEL_MIN_BYTES, summarize_many
from tbhub.core.scalars.records import READ_SIZE
from tbhub.core.scalars.runs import merge_tags, run_tag
from tbhub.core.scalars.summary import TAIL_SIZE, ScalarFileState, TagSummary
from tbhub.core.scalars.texts import TextDecoder, run_texts

__all__ = [
    "PARALLEL_MIN_BYTES",
    "READ_SIZE",
    "TAIL_SIZE",
    "BatchEventDecoder",
    "EventDecoder",
    "ScalarFileState",
    "ScalarPoint",
    "Series",
    "TagSummary",
    "TextDecoder",
    "bytes_to_parse",
    "iter_points",
    "merge_tags",
    "resume_offset",
    "run_tag",
    "run_texts",
    "summarize_file",
    "summarize_many",
]
