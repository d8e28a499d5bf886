# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""TSN segment sampling of short snippets, with several test views.

TDN reads ``num_clips`` segments of ``clip_len`` consecutive frames each
(``clip_len=5``). In training MMAction2's ``SampleFrames`` already samples as
the official release does (``MCG-NJU/TDN``, ``ops/dataset.py``,
``_sample_indices``): a random snippet start inside each of ``num_clips``
equal parts of the ``n - clip_len + 1`` possible starts. In test mode,
however, ``SampleFrames`` treats ``clip_len > 1`` as a 3D clip and spreads
the snippets from the first to the last frame, and it cannot draw several
segment-sampled views of one video (``twice_sample`` breaks for
``clip_len > 1``). :class:`SegmentSampleFrames` adds the release's test
sampling (``_get_test_indices``: the snippet at the middle of every
segment) and ``num_views`` such samplings for multi-clip testing (TDN
Table 3: 10 clips x 3 crops).
"""
import numpy as np
from mmaction.datasets.transforms import SampleFrames
from mmaction.registry import TRANSFORMS


@TRANSFORMS.register_module()
class SegmentSampleFrames(SampleFrames):
    """Sample ``num_clips`` segments of ``clip_len`` frames per view.

    Train mode is MMAction2's ``SampleFrames`` (one view). In test mode the
    ``n - clip_len + 1`` possible snippet starts are cut into ``num_clips``
    segments of length ``s``; view ``v`` (of ``num_views``) starts segment
    ``k`` at ``int(s * (k + (v + 0.5) / num_views))``. With one view this is
    the segment middle, as in the release's test code; with ``V`` views the
    starts are spread evenly over each segment (the release draws them at
    random per clip, which is not reproducible). Views are concatenated
    view-major, so every ``num_clips * clip_len`` consecutive frames form
    one view, which is the layout the recognizer splits into views.

    Args:
        clip_len (int): Consecutive frames per segment (TDN: 5).
        frame_interval (int): Step between the frames of a snippet.
            Defaults to 1.
        num_clips (int): Segments per view (the backbone's
            ``num_segments``). Defaults to 8.
        num_views (int): Test views (temporal clips). Must be 1 in
            train mode. Defaults to 1.
        out_of_bound_opt (str): How frames past the end are handled;
            ``'repeat_last'`` (default) repeats the last frame, as the
            release does for short videos.
        test_mode (bool): Test/val sampling. Defaults to False.
        **kwargs: Other arguments of ``SampleFrames``.
    """

    def __init__(self,
                 clip_len: int,
                 frame_interval: int = 1,
                 num_clips: int = 8,
                 num_views: int = 1,
                 out_of_bound_opt: str = 'repeat_last',
                 test_mode: bool = False,
                 **kwargs) -> None:
        if kwargs.get('twice_sample'):
            raise ValueError('SegmentSampleFrames: use num_views=2 instead of '
                             'twice_sample.')
        if not isinstance(num_views, int) or num_views < 1:
            raise ValueError('SegmentSampleFrames: num_views must be a '
                             f'positive integer, got {num_views!r}.')
        if num_views > 1 and not test_mode:
            raise ValueError('SegmentSampleFrames: several views are a test '
                             'protocol; set test_mode=True or num_views=1.')
        super().__init__(
            clip_len,
            frame_interval=frame_interval,
            num_clips=num_clips,
            out_of_bound_opt=out_of_bound_opt,
            test_mode=test_mode,
            **kwargs)
        self.num_views = num_views

    def _get_test_clips(self, num_frames: int,
                        ori_clip_len: float) -> np.ndarray:
        """Snippet starts of all views, view-major.

        Args:
            num_frames (int): Frames in the video.
            ori_clip_len (float): Frames one snippet spans.

        Returns:
            np.ndarray: ``num_views * num_clips`` start indices.
        """
        num_starts = num_frames - ori_clip_len + 1
        if num_starts <= self.num_clips:
            # Short video (the release's test: n <= num_clips + clip_len - 1):
            # every segment starts at frame 0, out_of_bound_opt pads.
            return np.zeros(self.num_views * self.num_clips, dtype=np.int64)
        segment = num_starts / float(self.num_clips)
        segments = np.arange(self.num_clips)
        views = [((segments + (view + 0.5) / self.num_views) *
                  segment).astype(np.int64)
                 for view in range(self.num_views)]
        return np.concatenate(views)

    def transform(self, results: dict) -> dict:
        """Sample ``frame_inds`` (see the class docstring)."""
        results = super().transform(results)
        results['num_clips'] = self.num_clips * (
            self.num_views if self.test_mode else 1)
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(clip_len={self.clip_len}, '
                f'frame_interval={self.frame_interval}, '
                f'num_clips={self.num_clips}, num_views={self.num_views}, '
                f'out_of_bound_opt={self.out_of_bound_opt}, '
                f'test_mode={self.test_mode})')
