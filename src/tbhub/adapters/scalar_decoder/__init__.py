"""Scalar points from serialized ``tensorboard.Event`` payloads: the ``EventDecoder`` (and
``BatchEventDecoder``) of ``tbhub.core.scalars``, with TensorBoard's protos (upb) as the authority.

Two shapes are read, as TensorBoard's scalars dashboard reads them:

* ``summary.value[].simple_value`` (PyTorch, tensorboardX, TF1, Keras v1);
* TF2 tensor summaries: ``value.tensor`` of a tag whose plugin is ``scalars``, holding one element
  of dtype float, double or half (``float_val``/``double_val``/``half_val`` or ``tensor_content``;
  any shape with one element, like ``make_ndarray(...).item()``). Other dtypes (int32, int64,
  strings, and bfloat16, which TensorBoard cannot convert without TensorFlow) give no point.

Why not just ``Event.FromString``: parsing with upb is quick, but every attribute read through its
Python wrappers costs 0.1-0.5 µs: about 3 µs for a one-scalar event and over 10 µs for a TF1 event
with ten values, and tbhub reads tens of millions of events. Real event files repeat a handful of
byte layouts (same tags, same fields, same varint lengths) that differ only in the bytes of the
wall time, the step and each value. So the decoder learns *templates*: the first event of a layout
is decoded by upb, walked to find where those bytes lie, and the template is checked against upb's
result. A later event of the same length is checked with one masked comparison (the payload read
as one little-endian integer, ``& mask == expect``: every constant byte, and the continuation bits
of the step's varint) and decoded by one ``struct.Struct.unpack``. The fast path is exact, not a
heuristic: outside the fields the bytes are identical and the step's varint has the template's
length, so the protobuf structure is identical, and the fields are raw fixed-width values.

``decode_batch`` goes further for whole batches: training jobs write their tags in a fixed cycle,
so after each event the decoder first tries the template that followed this one last time (then the
other templates of that length), and matched events are not turned into points at all: their
payloads are kept (bytes: nothing for the garbage collector to walk) and, at the end of a segment,
joined and cut into columns in C, step varints decoded column-wise. ``decode_sparse`` leaves the
columns unread until indexed or sliced, for the series reader that keeps 1,000 points of a series.
Anything unusual (extra event fields, histograms, half floats, varint-encoded values, a new layout)
goes through upb.

Modules: ``reference`` (every event through upb: the authority), ``templates`` (a learnt byte
layout and its column decoding), ``layouts`` (learning a layout from one event, checked against
upb), ``columns`` (a field of joined payloads, read in C) and ``decoder`` (``ProtobufDecoder``: the
fast paths, falling back to upb).
"""

from __future__ import annotations

from tbhub.adapters.scalar_decoder.decoder import ProtobufDecoder
from tbhub.adapters.scalar_decoder.reference import SCALARS_PLUGIN, tensor_scalar

__all__ = ["SCALARS_PLUGIN", "ProtobufDecoder", "tensor_scalar"]
