# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Report the broken samples a run skipped, after every epoch."""
import os.path as osp
from typing import Dict, List, Optional

from mmaction.registry import HOOKS
from mmengine.hooks import Hook

from mmaction_tdx.datasets.robust_video_dataset import BrokenSampleSkipMixin


@HOOKS.register_module()
class BrokenSampleReportHook(Hook):
    """Count broken samples per epoch; stop the run when too many.

    Works with datasets that skip broken samples (``RobustVideoDataset``,
    ``RobustRawframeDataset``, also inside ``ConcatDataset`` or
    ``RepeatDataset``). Before each train/val/test epoch it points their
    shared record of broken samples into the run's log directory (unless the
    config set ``broken_record_file``). After the epoch it logs how many
    loads failed in the epoch (each was replaced by another sample; in
    val/test a run of consecutive broken samples fails more than once) and
    how many distinct broken samples the run has met, and raises
    ``BrokenDataError`` if they
    exceed the dataset's ``max_broken_fraction`` (the dataset raises by
    itself as soon as it notices; this is the end-of-epoch check).

    Config::

        custom_hooks = [dict(type='BrokenSampleReportHook')]

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

    def before_train_epoch(self, runner) -> None:
        self._before_epoch(runner, 'train')

    def after_train_epoch(self, runner) -> None:
        self._after_epoch(runner, 'train', f'train epoch {runner.epoch + 1}')

    def before_val_epoch(self, runner) -> None:
        self._before_epoch(runner, 'val')

    def after_val_epoch(self, runner, metrics=None) -> None:
        # Distinct titles: MMLogger drops a WARNING equal to an earlier one.
        self._after_epoch(runner, 'val',
                          f'val (epoch {runner.epoch}, iter {runner.iter})')

    def before_test_epoch(self, runner) -> None:
        self._before_epoch(runner, 'test')

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

    def _before_epoch(self, runner, mode: str) -> None:
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

    def _after_epoch(self, runner, mode: str, title: str) -> None:
        for dataset in self._datasets(runner, mode):
            record = dataset.broken_sample_record.refresh()
            hits = record.num_events - self._events_at_epoch_start.get(
                id(dataset), 0)
            num_broken, num_samples = len(record.distinct), len(dataset)
            message = (
                f'Broken samples, {title}: {hits} failed loads, each '
                'replaced by another sample; '
                f'{num_broken} distinct broken of {num_samples} so far '
                f'({num_broken / max(num_samples, 1):.1%}, limit '
                f'{dataset.max_broken_fraction:.1%}) in '
                f'{type(dataset).__name__} {dataset.ann_file}')
            if num_broken:
                message += f'; listed in {record.file}'
            if hits:
                runner.logger.warning(message)
            else:
                runner.logger.info(message)
            error = dataset.broken_fraction_error()
            if error is not None:
                raise error


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
