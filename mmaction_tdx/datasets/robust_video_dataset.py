# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Video and rawframe datasets that survive bad data.

:class:`RobustVideoDataset` and :class:`RobustRawframeDataset` are MMAction2's
``VideoDataset`` and ``RawframeDataset`` with two additions:

* **Broken samples are skipped.** When the pipeline raises for a sample (a
  truncated, empty, missing or non-video file: decord, OpenCV and file
  system errors alike), the sample is recorded with its path and reason and
  another one is loaded instead: a random one in training (MMEngine's
  refetch), the next index in val/test so results stay reproducible; there
  the replacement is marked so that the metric leaves it out (see
  ``BrokenSampleReportHook``) and says over how many of the listed videos
  it was computed. Each broken path is logged once per run, across
  dataloader workers and epochs, through a shared
  :class:`~.broken_samples.BrokenSampleRecord` file. If the distinct broken
  paths exceed ``max_broken_fraction`` of the dataset, a
  :class:`~.broken_samples.BrokenDataError` stops the run, naming the first
  paths and the fixes; unless samples spread over the list all fail the
  same way, which is the pipeline's fault (or ``data_prefix``'s), not the
  files': then a :class:`~.broken_samples.BrokenPipelineError` names the
  transform and its error. ``MemoryError`` and ``KeyboardInterrupt`` are
  not the sample's fault and propagate. A transform that returns None
  rejects a sample (the stock way to skip one): it is replaced too, but not
  recorded as broken. A path that is not a regular file (a named pipe, a
  device, a directory; for frame folders, a frame that is not) is broken
  without being opened: a decoder would wait on a pipe for ever.
* **Malformed annotation lines fail at load** with file, line number, text
  and fix (:mod:`.annotation_checks`); so does a list without entries.
  Labels are range-checked against ``num_classes`` if the dataset has one,
  and against the model's ``cls_head.num_classes`` by
  ``BrokenSampleReportHook`` before training and testing
  (:meth:`BrokenSampleSkipMixin.check_label_range`).

Videos shorter than a clip are not broken: sample them with
``SampleFrames(..., out_of_bound_opt='repeat_last')`` (TDN's rule: repeat the
last frame).

Every config of mmaction_tdx gets both by inheritance: the dataset bases
(``configs/_base_/datasets/``) set the robust types and
``configs/_base_/default_runtime.py`` adds the hook::

    train_dataloader = dict(
        dataset=dict(type='RobustVideoDataset', ann_file=..., pipeline=...,
                     max_broken_fraction=0.05))
    default_hooks = dict(
        broken_sample_report=dict(type='BrokenSampleReportHook'))
"""
import logging
import os
import os.path as osp
import tempfile
import uuid
from collections import OrderedDict
from typing import Any, Callable, List, Optional, Tuple, Union

import numpy as np
from mmaction.datasets import RawframeDataset, VideoDataset
from mmaction.registry import DATASETS
from mmengine.fileio import exists
from mmengine.logging import print_log

from .annotation_checks import (
    check_label_options,
    max_label,
    missing_data_hint,
    parse_annotation_file,
    parse_rawframe_line,
    parse_video_line,
)
from .broken_samples import (
    NUM_SAMPLES_TO_DIAGNOSE,
    BrokenDataError,
    BrokenPipelineError,
    BrokenSampleRecord,
    common_failure,
    describe_failure,
    fraction_exceeded,
    pipeline_failure_message,
    too_many_broken_message,
    wrong_file_type,
)

# Metainfo key of a val/test sample that stands in for a broken one: the
# broken sample's dict(index, path, reason).
LEFT_OUT_KEY = 'replaces_left_out_sample'


class BrokenSampleSkipMixin:
    """Skip, record and limit broken samples of an MMEngine dataset.

    Put it before the dataset class in the bases; its ``__init__`` takes
    the options below and passes the rest to the dataset's. Subclasses set
    :attr:`path_key`, the ``data_info`` key naming a sample's file or
    directory, and :meth:`_parse_list`.

    Args:
        ann_file (str): The annotation list.
        pipeline (list[dict | callable]): Data transforms.
        max_broken_fraction (float): Largest fraction of distinct broken
            samples tolerated before :class:`BrokenDataError` stops the
            run. Defaults to 0.05.
        broken_record_file (str, optional): JSON-lines file shared by all
            workers that records broken samples. Defaults to None: a
            temporary file, which ``BrokenSampleReportHook`` moves into the
            run's log directory.
        allow_missing_labels (bool): Accept lines without label (unlabelled
            inference lists; label -1) instead of failing. Defaults to False.
        **kwargs: Arguments of the dataset class (``data_prefix``,
            ``multi_class``, ``num_classes``, ``test_mode``, ...). Give
            ``num_classes`` to have labels range-checked at load;
            ``BrokenSampleReportHook`` checks them against the model's
            ``cls_head.num_classes`` before training and testing anyway.
    """

    path_key = 'filename'
    # What path_key names: 'file' (a video) or 'dir' (a frame folder).
    path_kind = 'file'
    # The data_prefix key of the dataset, for the fix suggested in errors.
    prefix_key = 'video'
    # Whether this process said that replacements cannot be marked.
    _warned_unmarkable = False

    def __init__(self,
                 ann_file: str,
                 pipeline: List[Union[dict, Callable]],
                 max_broken_fraction: float = 0.05,
                 broken_record_file: Optional[str] = None,
                 allow_missing_labels: bool = False,
                 **kwargs) -> None:
        self.allow_missing_labels = allow_missing_labels
        self._init_broken_sample_skip(max_broken_fraction, broken_record_file)
        super().__init__(ann_file, pipeline, **kwargs)

    def _init_broken_sample_skip(self, max_broken_fraction: float,
                                 broken_record_file: Optional[str]) -> None:
        if not 0 <= max_broken_fraction <= 1:
            raise ValueError(
                f'max_broken_fraction={max_broken_fraction} must be in '
                '[0, 1] (0: stop at the first broken sample, 1: never stop)')
        self.max_broken_fraction = max_broken_fraction
        # Without a file from the config or the hook, use a fresh temporary
        # name. It is fixed here, in the main process, so that all workers
        # share it; the file itself appears only if a sample is broken.
        self.broken_record_file_is_default = broken_record_file is None
        if broken_record_file is None:
            broken_record_file = osp.join(
                tempfile.gettempdir(),
                f'mmaction_tdx_broken_samples_{uuid.uuid4().hex}.jsonl')
        self.broken_sample_record = BrokenSampleRecord(broken_record_file)

    def load_data_list(self) -> List[dict]:
        """Load the list; raise ``AnnotationError`` naming file and line of
        every malformed line, or the file if it has no entry."""
        _check_ann_file_exists(self.ann_file)
        check_label_options(self.multi_class, self.num_classes)
        data_list = self._parse_list(self.num_classes)
        # Kept for check_label_range: MMEngine serializes the list and
        # empties data_list.
        self.max_label = max_label(info['label'] for info in data_list)
        return data_list

    def _parse_list(self, num_classes: Optional[int],
                    num_classes_key: Optional[str] = None) -> List[dict]:
        """Parse ``ann_file`` with labels checked against ``num_classes``
        (None: not checked); ``num_classes_key`` names where that number
        comes from, for the fix in the error."""
        raise NotImplementedError

    def check_label_range(self, num_classes: int,
                          num_classes_key: str) -> None:
        """Raise ``AnnotationError`` if a label is not in
        ``[0, num_classes)``, naming each such line of the list.

        Cheap when the labels are fine (a scan of the loaded list); only
        then is the list parsed again, for the line numbers.

        Args:
            num_classes (int): The classes the model scores, e.g. its
                ``cls_head.num_classes``.
            num_classes_key (str): Where ``num_classes`` is set, for the
                fix in the error, e.g. ``'model.cls_head.num_classes'``.
        """
        if not self._fully_initialized:
            self.full_init()
        if self.max_label >= num_classes:
            self._parse_list(num_classes, num_classes_key)

    def set_broken_record_file(self, file: str) -> None:
        """Record broken samples in ``file`` from now on.

        ``BrokenSampleReportHook`` calls this before an epoch's workers start
        to put the record in the run's log directory. Workers already running
        (``persistent_workers=True``) keep the old file.
        """
        self.broken_sample_record = BrokenSampleRecord(file)
        self.broken_record_file_is_default = False

    def prepare_data(self, idx: int) -> Any:
        """Run the pipeline on sample ``idx``; None if the sample is broken
        or a transform rejected it (MMEngine's contract)."""
        return self._load(idx)[0]

    def _load(self, idx: int,
              record: bool = True) -> Tuple[Any, Optional[dict]]:
        """Run the pipeline on sample ``idx``.

        Same as ``Compose.__call__`` but catches what a transform raises, so
        that the reason can name the transform; and before any transform,
        refuses a path that is not a regular file (a video) or directory
        (frames): a decoder opening a named pipe waits for ever.

        Args:
            idx (int): The sample.
            record (bool): Whether to record (and log) a broken sample.
                False while diagnosing, which must not recurse.

        Returns:
            tuple: ``(data, None)`` if the sample loaded, else ``(None,
            failure)`` with ``failure = dict(index, path, reason)``. A
            broken sample (a transform raised) is recorded as such; a sample
            a transform rejected (returned None, the stock way to skip one)
            is not: its file is fine.
        """
        data = self.get_data_info(idx)
        path = data.get(self.path_key)
        wrong_type = wrong_file_type(str(path), self.path_kind) \
            if path is not None else None
        for transform in self.pipeline.transforms:
            step = getattr(transform, '__name__', type(transform).__name__)
            wrong_type = wrong_type or _wrong_frame_type(step, data)
            if wrong_type:
                reason = f'{wrong_type}; not opened (reading it could ' \
                    'block for ever)'
                if record:
                    self._on_broken_sample(path, reason)
                return None, dict(index=idx, path=str(path), reason=reason)
            try:
                data = transform(data)
            except MemoryError:  # the machine's problem, not the sample's
                raise
            except Exception as exc:  # KeyboardInterrupt is not one
                reason = describe_failure(path, exc, step, self.path_kind)
                if record:
                    self._on_broken_sample(path, reason)
                return None, dict(index=idx, path=str(path), reason=reason)
            if data is None:
                return None, dict(
                    index=idx,
                    path=str(path),
                    reason=f'rejected by {step} (returned None)')
        return data, None

    def __getitem__(self, idx: int) -> Any:
        """Load sample ``idx``, or a replacement if it is broken.

        Training replaces with a random sample (as MMEngine does). Val and
        test replace with the next index, so that results are reproducible
        (MMEngine would raise in test mode), and mark the replacement with
        ``LEFT_OUT_KEY`` in its data sample's metainfo: the metric wrapper
        of ``BrokenSampleReportHook`` leaves it out of the metric instead
        of counting the next sample twice.
        """
        if not self._fully_initialized:
            self.full_init()
        first_failure = None
        for _ in range(self.max_refetch + 1):
            data, failure = self._load(idx)
            if failure is None:
                if self.test_mode and first_failure is not None:
                    self._mark_as_replacement(data, first_failure)
                return data
            first_failure = first_failure or failure
            idx = (idx + 1) % len(self) if self.test_mode else \
                self._rand_another()
        in_a_row = (f'{self.max_refetch + 1} samples in a row of '
                    f'{self._describe()} could not be loaded. ')
        error = self.pipeline_error()
        if error is not None:
            raise BrokenPipelineError(in_a_row + str(error))
        raise BrokenDataError(
            in_a_row + f'The first: {first_failure["path"]} '
            f'({first_failure["reason"]}); broken ones are listed in '
            f'{self.broken_sample_record.file}. Run '
            'tools/analysis/check_videos.py on the annotation file, or '
            'check the pipeline config.')

    def pipeline_error(self) -> Optional[BrokenPipelineError]:
        """The error to stop with if the pipeline (or the paths), not the
        files, make samples fail.

        Tries to load ``NUM_SAMPLES_TO_DIAGNOSE`` samples spread over the
        list (without recording them); if none loads and most fail the same
        way (:func:`~.broken_samples.common_failure`), the data is not to
        blame. Called only when the run is about to stop.

        Returns:
            BrokenPipelineError | None: None if the failures look like the
            files' (some sample loads, or they fail in different ways).
        """
        num = len(self)
        if num == 0:
            return None
        tried = sorted({
            round(i * (num - 1) / max(NUM_SAMPLES_TO_DIAGNOSE - 1, 1))
            for i in range(NUM_SAMPLES_TO_DIAGNOSE)
        })
        failures = []
        for idx in tried:
            data, failure = self._load(idx, record=False)
            if failure is None:
                return None
            if data is None and failure['reason'].startswith('rejected by'):
                return None  # a transform's choice, not an error
            failures.append((failure['path'], failure['reason']))
        common = common_failure(failures, len(tried))
        if common is None:
            return None
        path, reason, count = common
        return BrokenPipelineError(
            pipeline_failure_message(
                path, reason, count, len(tried),
                dataset=self._describe(),
                data_prefix=(self.data_prefix or {}).get(self.prefix_key),
                record_file=self.broken_sample_record.file))

    def _mark_as_replacement(self, data: Any, failure: dict) -> None:
        samples = data.get('data_samples') if isinstance(data, dict) \
            else None
        if hasattr(samples, 'set_metainfo'):
            samples.set_metainfo({LEFT_OUT_KEY: failure})
        elif not self._warned_unmarkable:
            self._warned_unmarkable = True
            print_log(
                f'{self._describe()}: the pipeline does not end in '
                'PackActionInputs, so a replacement for a broken sample '
                'cannot be marked and is evaluated in its place (the next '
                'sample counts twice in the metric).',
                logger='current',
                level=logging.WARNING)

    def _on_broken_sample(self, path: Optional[str], reason: str) -> None:
        record = self.broken_sample_record
        if not record.add(str(path), reason):
            return  # logged already, by this or another process
        fate = 'it is left out of the metrics (BrokenSampleReportHook)' \
            if self.test_mode else 'another sample replaces it'
        print_log(
            f'Skipped broken sample {path} ({reason}); {fate}. Each broken '
            f'sample is logged once; all are listed in {record.file}',
            logger='current',
            level=logging.WARNING)
        error = self.broken_fraction_error()
        if error is not None:
            raise error

    def broken_fraction_error(self) -> Optional[BrokenDataError]:
        """The error to stop the run with if too many samples are broken.

        Counts distinct broken paths recorded by all processes so far. Over
        the limit, tells a wrong pipeline from broken files first
        (:meth:`pipeline_error`).

        Returns:
            BrokenDataError | None: None while within
            ``max_broken_fraction``; a :class:`BrokenPipelineError` if every
            sample tried fails the same way.
        """
        broken = self.broken_sample_record.refresh().distinct
        if not fraction_exceeded(len(broken), len(self),
                                 self.max_broken_fraction):
            return None
        error = self.pipeline_error()
        if error is not None:
            return error
        return BrokenDataError(
            too_many_broken_message(
                broken,
                num_samples=len(self),
                max_fraction=self.max_broken_fraction,
                dataset=self._describe(),
                record_file=self.broken_sample_record.file,
                ann_file=self.ann_file,
                data_prefix=(self.data_prefix or {}).get(self.prefix_key),
                check_options=self._check_videos_options()))

    def _check_videos_options(self) -> str:
        """Options of ``tools/analysis/check_videos.py`` for this list."""
        return ''

    @property
    def broken_samples(self) -> 'OrderedDict[str, str]':
        """Distinct broken paths met so far by all processes -> reason."""
        return self.broken_sample_record.refresh().distinct

    def _describe(self) -> str:
        return f'{type(self).__name__} {self.ann_file}'


def _wrong_frame_type(step: str, data: Any) -> Optional[str]:
    """Before ``RawFrameDecode`` opens the frames it was given: the first
    that is not a regular file, e.g. ``'frame img_00005.jpg: not a regular
    file (a named pipe)'``; None if all are (or it is another step)."""
    if step != 'RawFrameDecode' or not isinstance(data, dict) or \
            data.get('modality', 'RGB') != 'RGB' or 'frame_inds' not in data:
        return None
    offset = data.get('offset', 0)
    for index in np.unique(np.ravel(data['frame_inds'])):
        name = data['filename_tmpl'].format(int(index) + offset)
        wrong = wrong_file_type(osp.join(data['frame_dir'], name))
        if wrong:
            return f'frame {name}: {wrong}'
    return None


def _check_ann_file_exists(ann_file: str) -> None:
    if not exists(ann_file):
        raise FileNotFoundError(f'annotation file {ann_file} not found '
                                f'(cwd {os.getcwd()}). '
                                f'{missing_data_hint(ann_file)}')


@DATASETS.register_module()
class RobustVideoDataset(BrokenSampleSkipMixin, VideoDataset):
    """``VideoDataset`` that skips broken videos and checks its list.

    Args:
        ann_file (str): Video list, ``path label`` per line (``path label
            label ...`` with ``multi_class``).
        pipeline (list[dict | callable]): Data transforms.
        max_broken_fraction (float): See :class:`BrokenSampleSkipMixin`.
        broken_record_file (str, optional): See
            :class:`BrokenSampleSkipMixin`.
        allow_missing_labels (bool): See :class:`BrokenSampleSkipMixin`.
        **kwargs: ``VideoDataset`` arguments (``data_prefix``,
            ``multi_class``, ``num_classes``, ``delimiter``, ``test_mode``,
            ...). Give ``num_classes`` to have labels range-checked.
    """

    def _parse_list(self, num_classes: Optional[int],
                    num_classes_key: Optional[str] = None) -> List[dict]:
        data_list = parse_annotation_file(
            self.ann_file,
            parse_video_line,
            fmt='path label' + (' [label ...]' if self.multi_class else ''),
            delimiter=self.delimiter,
            multi_class=self.multi_class,
            num_classes=num_classes,
            num_classes_key=num_classes_key,
            allow_missing_labels=self.allow_missing_labels)
        prefix = self.data_prefix['video']
        if prefix is not None:
            for info in data_list:
                info['filename'] = osp.join(prefix, info['filename'])
        return data_list


@DATASETS.register_module()
class RobustRawframeDataset(BrokenSampleSkipMixin, RawframeDataset):
    """``RawframeDataset`` that skips broken samples and checks its list.

    Args:
        ann_file (str): Rawframe list, ``frame_dir total_frames label`` per
            line (``frame_dir offset total_frames label`` with
            ``with_offset``; more labels with ``multi_class``).
        pipeline (list[dict | callable]): Data transforms.
        max_broken_fraction (float): See :class:`BrokenSampleSkipMixin`.
        broken_record_file (str, optional): See
            :class:`BrokenSampleSkipMixin`.
        allow_missing_labels (bool): See :class:`BrokenSampleSkipMixin`.
        **kwargs: ``RawframeDataset`` arguments (``data_prefix``,
            ``filename_tmpl``, ``with_offset``, ``multi_class``,
            ``num_classes``, ``test_mode``, ...).
    """

    path_key = 'frame_dir'
    path_kind = 'dir'
    prefix_key = 'img'

    def _check_videos_options(self) -> str:
        options = f" --rawframes --filename-tmpl '{self.filename_tmpl}'"
        if self.start_index != 1:
            options += f' --start-index {self.start_index}'
        return options + (' --with-offset' if self.with_offset else '')

    def _parse_list(self, num_classes: Optional[int],
                    num_classes_key: Optional[str] = None) -> List[dict]:
        counts = 'offset total_frames' if self.with_offset else 'total_frames'
        data_list = parse_annotation_file(
            self.ann_file,
            parse_rawframe_line,
            fmt=f'frame_dir {counts} label' +
            (' [label ...]' if self.multi_class else ''),
            with_offset=self.with_offset,
            multi_class=self.multi_class,
            num_classes=num_classes,
            num_classes_key=num_classes_key,
            allow_missing_labels=self.allow_missing_labels)
        prefix = self.data_prefix['img']
        if prefix is not None:
            for info in data_list:
                info['frame_dir'] = osp.join(prefix, info['frame_dir'])
        return data_list
