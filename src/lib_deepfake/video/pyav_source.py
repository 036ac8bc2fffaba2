"""CPU decoding with PyAV that decodes only what a sampling plan needs.

For each wanted frame ``w`` (ascending) the source finds the keyframe ``k`` before it in the index. If the decoder is
already positioned in ``[k, w)`` it decodes forward; otherwise it seeks to ``k`` and decodes forward from there.
Only wanted frames are converted to RGB (conversion costs about as much as decoding); unwanted non-reference frames
are skipped by the decoder; each run ends by draining the decoder, not by feeding it more packets.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from lib_deepfake.video._av import Deadline, decode_error, open_input
from lib_deepfake.video.errors import VideoFileError
from lib_deepfake.video.frames import DecodeStats, Frame, FrameBatch, SourceBase, check_batch_size, stack_frames
from lib_deepfake.video.index import VideoIndex, check_complete, index_container
from lib_deepfake.video.info import DEFAULT_MAX_PIXELS, DEFAULT_TIMEOUT_S, probe_container
from lib_deepfake.video.sampling import ResolvedPlan, SamplingPlan

logger = logging.getLogger(__name__)


class PyAVSource(SourceBase):
    """A video opened with PyAV (CPU). Implements :class:`~lib_deepfake.video.frames.VideoSource`.

    Opening probes the file (headers + first frame) and builds the :class:`VideoIndex` (demux only).

    Args:
        path: the video file.
        threads: decoder threads (0 = libavcodec picks, one per core).
        thread_type: "AUTO" (frame + slice threading; best for dense plans), "SLICE" (no frame-threading delay
            after each seek), "FRAME" or "NONE".
        timeout_s: time limit for opening (probe + index) and, separately, for each plan read.
        allow_truncated: decode the readable part of a truncated file (warning) instead of raising
            :class:`CorruptVideoError`.
        max_pixels: refuse larger frames before decoding (:class:`ResolutionTooLargeError`).

    Raises:
        Any :class:`lib_deepfake.errors.VideoError` subclass from :mod:`lib_deepfake.video.errors`.
    """

    name = "pyav"

    def __init__(
        self,
        path: str | Path,
        *,
        threads: int = 0,
        thread_type: str = "AUTO",
        timeout_s: float | None = DEFAULT_TIMEOUT_S,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        allow_truncated: bool = False,
    ) -> None:
        self.path = Path(path)
        self.timeout_s = timeout_s
        self._stats = DecodeStats()
        self._container, self._stream = open_input(self.path)
        try:
            ctx = self._stream.codec_context
            # Threading must be configured before the codec opens (on the first decode, inside probe).
            ctx.thread_type = thread_type
            ctx.thread_count = int(threads)
            deadline = Deadline(timeout_s, self.path, "opening")
            self._info = probe_container(self._container, self._stream, self.path, max_pixels=max_pixels,
                                         deadline=deadline)  # fmt: skip
            self._index = index_container(self._container, self._stream, self.path, deadline)
            # A truncated file (allowed) may end inside a packet: decoding stops there (see _decode_segment).
            self._truncated = check_complete(self._info, self._index, self.path, allow_truncated=allow_truncated)
        except BaseException:
            self._container.close()
            raise

    # -- VideoSource -------------------------------------------------------------------------------------------
    def read(self, plan: SamplingPlan | str) -> FrameBatch:
        import torch

        rp = self.resolve(plan)
        # Frames are copied into one preallocated batch as they come, so at most one decoded frame is alive besides
        # the batch (stacking a list afterwards doubles peak memory and costs a second pass over it).
        h, w = self._info.display_height, self._info.display_width
        check_batch_size(len(rp), h, w, self.path)
        out = torch.empty((len(rp), h, w, 3), dtype=torch.uint8)
        got: list[Frame] = []
        for j, fr in enumerate(self._iter_resolved(rp)):
            if tuple(fr.image.shape) != (h, w, 3):
                from lib_deepfake.video.errors import CorruptVideoError

                raise CorruptVideoError(
                    f"frame {fr.index} is {fr.image.shape[1]}x{fr.image.shape[0]}, the stream {w}x{h}: "
                    "size changes mid-stream cannot be batched", self.path)  # fmt: skip
            out[j].copy_(fr.image)
            got.append(Frame(out[j], fr.index, fr.time_s))
        batch = stack_frames([], info=self._info, plan=rp, stats=self._stats, decoder=self.name)
        batch.frames = out[: len(got)]
        batch.indices = np.array([f.index for f in got], np.int64)
        batch.times_s = np.array([f.time_s for f in got], np.float64)
        shift_of = dict(zip(rp.indices.tolist(), rp.shifts.tolist(), strict=True))
        batch.shifts = np.array([shift_of.get(f.index, 0) for f in got], np.int64)
        return batch

    def close(self) -> None:
        self._container.close()

    # -- decoding ----------------------------------------------------------------------------------------------
    def _iter_resolved(self, rp: ResolvedPlan) -> Iterator[Frame]:
        stats = self._stats = DecodeStats()
        t0 = time.perf_counter()
        try:
            yield from self._decode(rp, stats, Deadline(self.timeout_s, self.path, "decoding"))
        except VideoFileError:
            raise
        except Exception as exc:  # noqa: BLE001 - libav errors are properties of the file
            raise decode_error(exc, self.path) from exc
        finally:
            stats.wall_s = time.perf_counter() - t0
        if stats.missing:
            logger.warning("%s: %d wanted frame(s) could not be decoded: %s", self.path, len(stats.missing),
                           stats.missing[:10])  # fmt: skip

    def _decode(self, rp: ResolvedPlan, stats: DecodeStats, deadline: Deadline) -> Iterator[Frame]:
        wanted = [int(i) for i in rp.indices]
        for segment in plan_segments(wanted, self._index):
            yield from self._decode_segment(segment, stats, deadline)

    def _decode_segment(self, segment: list[int], stats: DecodeStats, deadline: Deadline) -> Iterator[Frame]:
        """Seek to the keyframe before ``segment[0]``, decode forward until the last wanted frame is out.

        Three things keep the work minimal: packets of frames nobody wants are decoded with
        ``skip_frame="NONREF"`` (non-reference B-frames are dropped unseen; reference frames must be decoded);
        once every wanted frame's packet is sent the decoder is drained instead of fed more packets (frame
        threading and B-frame reordering would otherwise make us decode frames past it); and the next segment
        seeks again (the seek flushes the decoder).
        """
        index = self._index
        ctx = self._stream.codec_context
        want_pts = {int(index.pts[i]) for i in segment}
        unsent = set(want_pts)  # wanted packets not yet sent (decode order differs from presentation order)
        pending = list(segment)  # ascending; popped from the front as frames come out
        key = index.keyframe_before(segment[0])
        # backward=True lands on the random-access point at or before pts; PyAV flushes the decoder on seek.
        self._container.seek(int(index.pts[key]), stream=self._stream, backward=True, any_frame=False)
        stats.seeks += 1
        last_idx: int | None = None

        def take(frame: Any) -> Frame | None:
            nonlocal last_idx
            stats.frames_decoded += 1
            idx = index.index_of_pts(frame.pts if frame.pts is not None else frame.dts)
            if idx is None:
                idx = (last_idx + 1) if last_idx is not None else key
            last_idx = idx
            # Wanted frames the decoder went past without producing (damaged) are missing.
            while pending and pending[0] < idx:
                stats.missing.append(pending.pop(0))
            if pending and pending[0] == idx:
                pending.pop(0)
                return self._convert(frame, idx, stats)
            return None

        drained = False
        try:
            for packet in self._container.demux(self._stream):
                deadline.check()
                if packet.size == 0:  # end of stream: this empty packet drains the decoder
                    ctx.skip_frame = "DEFAULT"
                    for frame in packet.decode():
                        if (out := take(frame)) is not None:
                            yield out
                    drained = True
                    break
                stats.packets_read += 1
                ppts = None if packet.pts is None else int(packet.pts)
                ctx.skip_frame = "DEFAULT" if (ppts is None or ppts in want_pts) else "NONREF"
                unsent.discard(ppts)  # type: ignore[arg-type]
                for frame in packet.decode():
                    if (out := take(frame)) is not None:
                        yield out
                if not pending or not unsent:
                    break
            if pending and not drained:
                ctx.skip_frame = "DEFAULT"
                for frame in ctx.decode(None):
                    deadline.check()
                    if (out := take(frame)) is not None:
                        yield out
        except Exception as exc:  # noqa: BLE001 - only libav's errors on a file known to be cut short are absorbed
            if not (self._truncated and _is_libav_error(exc)):
                raise
            # The file ends inside a packet (its index promised more): whatever was not decoded is missing. A
            # single-threaded decoder reports the cut packet; a frame-threaded one drops it silently.
            logger.warning("%s: decoding stopped at the cut (%s); %d wanted frame(s) missing", self.path,
                           str(exc).splitlines()[0], len(pending))  # fmt: skip
            ctx.skip_frame = "DEFAULT"
            stats.missing.extend(pending)
            return
        ctx.skip_frame = "DEFAULT"
        stats.missing.extend(pending)

    def _convert(self, frame: Any, idx: int, stats: DecodeStats) -> Frame:
        import torch

        # libswscale handles 8/10-bit YUV, gray, odd sizes and full/limited range in one call.
        rgb = frame.to_ndarray(format="rgb24")
        stats.frames_converted += 1
        rot = self._info.rotation
        if rot:
            rgb = np.ascontiguousarray(np.rot90(rgb, k=rot // 90))
        return Frame(image=torch.from_numpy(rgb), index=idx, time_s=float(self._index.times_s[idx]))


def _is_libav_error(exc: BaseException) -> bool:
    import av

    return isinstance(exc, av.FFmpegError)


def plan_segments(wanted: list[int], index: VideoIndex) -> list[list[int]]:
    """Split ascending wanted indices into runs decoded from one seek.

    A wanted frame joins the current run when no keyframe lies between the run's last frame (+1) and it: then
    decoding forward costs no more than seeking. Otherwise a new run starts at the keyframe before it.
    """
    runs: list[list[int]] = []
    for w in wanted:
        if runs and index.keyframe_before(w) <= runs[-1][-1] + 1:
            runs[-1].append(w)
        else:
            runs.append([w])
    return runs


__all__ = ["PyAVSource", "plan_segments"]
