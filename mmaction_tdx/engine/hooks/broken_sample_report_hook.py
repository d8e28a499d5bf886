# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Report the broken samples a run skipped, after every epoch, and leave
them out of val/test metrics (saying so)."""
import logging
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence

from mmaction.registry import HOOKS
from mmengine.dist import all_gather_object
from mmengine.evaluator import BaseMetric, DumpResults
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import BaseLoop

from mmaction_tdx.datasets.broken_samples import NUM_PATHS_IN_ERROR
from mmaction_tdx.datasets.robust_video_dataset import (
    LEFT_OUT_KEY,
    BrokenSampleSkipMixin,
)


@HOOKS.register_module()
class BrokenSampleReportHook(Hook):
    """Count broken samples per epoch; stop the run when too many; keep
    broken val/test samples out of the metrics.

    Works with datasets that skip broken samples (``RobustVideoDataset``,
    ``RobustRawframeDataset``, also inside ``ConcatDataset`` or
    ``RepeatDataset``). Before each train/val/test epoch it points their
    shared record of broken samples into the run's log directory (unless the
    config set ``broken_record_file``). After the epoch it logs how many
    loads failed in the epoch (in val/test a run of consecutive broken
    samples fails more than once) and how many distinct broken samples the
    run has met, and raises ``BrokenDataError`` if they exceed the
    dataset's ``max_broken_fraction`` (the dataset raises by itself as soon
    as it notices; this is the end-of-epoch check).

    Before training (train and val datasets) and testing it checks every
    label of the lists against the model's ``cls_head.num_classes``: a label
    out of range stops the run there, naming each line (``file:line``) and
    the fix, instead of an ``IndexError`` mid-epoch (training) or a silent
    miss (testing).

    The per-epoch line is logged only for epochs in which a load failed.

    In val/test a broken sample is replaced by the next one (a batch cannot
    have a hole), marked as a replacement. Before each val/test epoch the
    hook wraps every metric of the loop's evaluator in
    :class:`LeaveOutBrokenSamples`, which drops the marked replacements and
    logs e.g. ``AccMetric over 95 of 100 listed videos; 5 left out: ...``.
    ``DumpResults`` (``tools/test.py --dump``) is not wrapped: the dump keeps
    one entry per listed video, in order, the replacements marked with
    ``replaces_left_out_sample``.

    Every config of mmaction_tdx has it (``configs/_base_/
    default_runtime.py``)::

        default_hooks = dict(
            broken_sample_report=dict(type='BrokenSampleReportHook'))

    Args:
        record_dir (str, optional): Where to keep the record files (one per
            dataset, e.g. ``train.jsonl``). Defaults to None:
            ``<log_dir>/broken_samples``.
    """

    priority = 'LOW'

    def __init__(self, record_dir: Optional[str] = None) -> None:
        self.record_dir = record_dir
        self._events_at_epoch_start: Dict[int, int] = {}
        self._warned_modes = set()

    def before_train(self, runner) -> None:
        self._check_labels(runner, 'train')
        # Built before `before_train` when the config has a val loop.
        if isinstance(getattr(runner, '_val_loop', None), BaseLoop):
            self._check_labels(runner, 'val')

    def before_test(self, runner) -> None:
        self._check_labels(runner, 'test')

    def _check_labels(self, runner, mode: str) -> None:
        """Stop before the loop if a label of ``mode``'s lists is not a
        class of the model's head."""
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        num_classes = getattr(getattr(model, 'cls_head', None),
                              'num_classes', None)
        if not isinstance(num_classes, int):
            return  # no classification head to check against
        for dataset in self._datasets(runner, mode):
            dataset.check_label_range(num_classes,
                                      'model.cls_head.num_classes')

    def before_train_epoch(self, runner) -> None:
        self._before_epoch(runner, 'train')

    def after_train_epoch(self, runner) -> None:
        self._after_epoch(runner, 'train', f'train epoch {runner.epoch + 1}')

    def before_val_epoch(self, runner) -> None:
        if self._before_epoch(runner, 'val'):
            wrap_metrics(runner.val_loop.evaluator, _val_title(runner))

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._after_epoch(runner, 'val', _val_title(runner))

    def before_test_epoch(self, runner) -> None:
        if self._before_epoch(runner, 'test'):
            wrap_metrics(runner.test_loop.evaluator, 'test')

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._after_epoch(runner, 'test', 'test')

    def _datasets(self, runner, mode: str) -> List[BrokenSampleSkipMixin]:
        loop = getattr(runner, f'{mode}_loop')
        dataset = loop.dataloader.dataset
        found = find_broken_sample_datasets(dataset)
        if not found and mode not in self._warned_modes:
            self._warned_modes.add(mode)
            runner.logger.warning(
                f'BrokenSampleReportHook: the {mode} dataset '
                f'({type(dataset).__name__}) does not skip broken samples, '
                'so a broken video stops the run; use RobustVideoDataset or '
                'RobustRawframeDataset.')
        return found

    def _before_epoch(self, runner, mode: str) -> bool:
        """Point the records into the log directory; whether the loop has
        datasets that skip broken samples."""
        datasets = self._datasets(runner, mode)
        record_dir = self.record_dir or osp.join(runner.log_dir,
                                                 'broken_samples')
        for i, dataset in enumerate(datasets):
            # Must happen before the epoch's dataloader workers start, so
            # that they inherit the new file name.
            if dataset.broken_record_file_is_default:
                name = mode if len(datasets) == 1 else f'{mode}_{i}'
                dataset.set_broken_record_file(
                    osp.join(record_dir, f'{name}.jsonl'))
            record = dataset.broken_sample_record.refresh()
            self._events_at_epoch_start[id(dataset)] = record.num_events
        return bool(datasets)

    def _after_epoch(self, runner, mode: str, title: str) -> None:
        what = 'each replaced by another sample' if mode == 'train' else \
            'left out of the metrics'
        for dataset in self._datasets(runner, mode):
            record = dataset.broken_sample_record.refresh()
            hits = record.num_events - self._events_at_epoch_start.get(
                id(dataset), 0)
            num_broken, num_samples = len(record.distinct), len(dataset)
            message = (
                f'Broken samples, {title}: {hits} failed loads, {what}; '
                f'{num_broken} distinct broken of {num_samples} so far '
                f'({num_broken / max(num_samples, 1):.1%}, limit '
                f'{dataset.max_broken_fraction:.1%}) in '
                f'{type(dataset).__name__} {dataset.ann_file}')
            if num_broken:
                message += f'; listed in {record.file}'
            if hits:  # quiet on epochs without failures
                runner.logger.warning(message)
            error = dataset.broken_fraction_error()
            if error is not None:
                raise error


def _val_title(runner) -> str:
    # Distinct titles: MMLogger drops a WARNING equal to an earlier one.
    return f'val (epoch {runner.epoch}, iter {runner.iter})'


def find_broken_sample_datasets(dataset) -> List[BrokenSampleSkipMixin]:
    """The datasets that skip broken samples in ``dataset``, looking inside
    dataset wrappers (``.dataset``) and concatenations (``.datasets``)."""
    if isinstance(dataset, BrokenSampleSkipMixin):
        return [dataset]
    found = []
    for inner in getattr(dataset, 'datasets', None) or []:
        found += find_broken_sample_datasets(inner)
    inner = getattr(dataset, 'dataset', None)
    if inner is not None:
        found += find_broken_sample_datasets(inner)
    return found


def wrap_metrics(evaluator, title: str) -> None:
    """Wrap each metric of ``evaluator`` (an MMEngine ``Evaluator``) in
    :class:`LeaveOutBrokenSamples`, once; ``DumpResults`` stays as is.
    ``title`` names the coming evaluation in the wrappers' messages."""
    evaluator.metrics = [
        metric if isinstance(metric, (LeaveOutBrokenSamples, DumpResults))
        else LeaveOutBrokenSamples(metric) for metric in evaluator.metrics
    ]
    for metric in evaluator.metrics:
        if isinstance(metric, LeaveOutBrokenSamples):
            metric.title = title


class LeaveOutBrokenSamples(BaseMetric):
    """Compute a metric without the replacements of broken samples, and say
    over how many of the listed videos it was computed.

    A val/test dataset that skips broken samples fills the place of a broken
    one with the next sample, marked with ``replaces_left_out_sample`` =
    ``dict(index, path, reason)`` of the broken one. This wrapper passes the
    other samples to the wrapped metric, evaluates it over ``size - left
    out`` samples, and logs which were left out.

    Args:
        metric (BaseMetric): The metric to compute, e.g. ``AccMetric``. Its
            ``process`` receives the full ``data_batch`` but only the kept
            ``data_samples``.
    """

    def __init__(self, metric: BaseMetric) -> None:
        super().__init__(
            collect_device=metric.collect_device, prefix='left_out')
        self.metric = metric
        # Set by the hook before each evaluation, e.g. 'test'.
        self.title = 'evaluation'

    @property
    def dataset_meta(self) -> Optional[dict]:
        return self.metric.dataset_meta

    @dataset_meta.setter
    def dataset_meta(self, dataset_meta: dict) -> None:
        # BaseMetric.__init__ sets None before self.metric exists.
        if 'metric' in self.__dict__:
            self.metric.dataset_meta = dataset_meta

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Hand the samples that are not replacements to the metric; keep
        the left-out ones."""
        kept = []
        for sample in data_samples:
            left_out = sample.get(LEFT_OUT_KEY)
            if left_out is None:
                kept.append(sample)
            else:
                self.results.append(left_out)
        if kept:
            self.metric.process(data_batch, kept)

    def compute_metrics(self, results: list) -> dict:
        raise NotImplementedError('LeaveOutBrokenSamples.evaluate computes '
                                  'the wrapped metric')

    def evaluate(self, size: int) -> Dict[str, Any]:
        """Evaluate the wrapped metric over the ``size`` listed samples
        minus those left out (all ranks); log what was left out.

        Args:
            size (int): Length of the dataset.

        Returns:
            dict: The wrapped metric's results.
        """
        # Distributed samplers pad with repeated indices: count each once.
        left_out = {}
        for part in all_gather_object(self.results):
            for info in part:
                left_out.setdefault(info['index'], info)
        self.results.clear()
        evaluated = size - len(left_out)
        metrics = self.metric.evaluate(evaluated)
        if left_out:
            infos = [left_out[i] for i in sorted(left_out)]
            shown = '; '.join(f'{info["path"]} ({info["reason"]})'
                              for info in infos[:NUM_PATHS_IN_ERROR])
            more = len(infos) - NUM_PATHS_IN_ERROR
            print_log(
                f'{self.title}: {type(self.metric).__name__} over '
                f'{evaluated} of {size} listed videos; {len(infos)} left '
                f'out: {shown}'
                + (f'; ... and {more} more' if more > 0 else ''),
                logger='current',
                level=logging.WARNING)
        return metrics
