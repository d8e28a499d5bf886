# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Strict parsing of MMAction2 annotation lists.

MMAction2's ``VideoDataset`` and ``RawframeDataset`` parse their lists with
bare ``int()`` and ``assert``, so a malformed line ends in
``ValueError: invalid literal for int()`` with no file or line, or is
accepted and fails much later (a label out of range crashes the loss on some
batch hours into training). The parsers here accept exactly the formats the
stock datasets accept and reject malformed lines at load time, all of them
at once, each with its file, line number, text and fix.

Formats (fields split by whitespace, or by ``delimiter`` for video lists)::

    video list:     path label            (multi_class: path label label ...)
    rawframe list:  frame_dir total_frames label            (... label ...)
    with_offset:    frame_dir offset total_frames label     (... label ...)

A line without a label is an unlabelled inference list entry for the stock
datasets (label ``-1``); here it is an error unless
``allow_missing_labels=True``, because in training it silently becomes a
wrong target. Blank lines are skipped; a list without any entry is an
error. Lists are read as UTF-8, with or without a byte order mark (which
editors on Windows write and which would otherwise become part of the first
path).
"""
import os
import os.path as osp
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

from mmengine.fileio import exists, get_local_path

# How many malformed lines an AnnotationError lists before "and N more".
NUM_LINES_IN_ERROR = 20

Label = Union[int, List[int]]
# Where num_classes comes from unless the caller says otherwise.
DATASET_NUM_CLASSES = 'num_classes in the dataset config'


class AnnotationError(ValueError):
    """An annotation list has malformed lines (or options that cannot
    parse it)."""


class MalformedLineError(ValueError):
    """One malformed line; the message is the problem and its fix."""


def read_annotation_lines(ann_file: str) -> List[str]:
    """The lines of ``ann_file`` without line ends (any mmengine backend).

    A UTF-8 byte order mark at the start is dropped (``utf-8-sig``).
    """
    with get_local_path(ann_file) as local_path:
        with open(local_path, encoding='utf-8-sig') as f:
            return [line.rstrip('\r\n') for line in f]


def split_fields(line: str, delimiter: Optional[str] = None) -> List[str]:
    """Split one annotation line into fields.

    ``delimiter`` None or ``' '`` splits on any run of whitespace (so tabs
    and double spaces work; the stock parser would make empty fields of
    them); any other delimiter splits exactly on it.
    """
    if delimiter in (None, ' '):
        return line.split()
    return [field.strip() for field in line.strip().split(delimiter)]


def _parse_int(text: str, what: str, fix: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise MalformedLineError(f'{what} {text!r} is not an integer; {fix}') \
            from None


def parse_labels(fields: Sequence[str], multi_class: bool,
                 num_classes: Optional[int],
                 allow_missing_labels: bool,
                 num_classes_key: Optional[str] = None) -> Label:
    """Parse the label fields of one line.

    Args:
        fields (Sequence[str]): The fields after path (and frame counts).
        multi_class (bool): Whether several labels per line are allowed.
        num_classes (int, optional): If given, labels must be in
            ``[0, num_classes)``.
        allow_missing_labels (bool): Whether a line without label is an
            unlabelled entry (label ``-1``, or ``[]`` if ``multi_class``)
            instead of an error.
        num_classes_key (str, optional): Where ``num_classes`` is set, for
            the fix in the error (e.g. ``'model.cls_head.num_classes'``).
            Defaults to the dataset config's ``num_classes``.

    Returns:
        int | list[int]: The label, or the list of labels if
        ``multi_class``.
    """
    if not fields:
        if allow_missing_labels:
            # Stock datasets use -1; a multi-label one-hot gets no positive
            # class ([-1] would mark the last class).
            return [] if multi_class else -1
        raise MalformedLineError(
            'no label; append the class index, or set '
            'allow_missing_labels=True in the dataset config if this is an '
            'unlabelled list for inference')
    if not multi_class and len(fields) > 1:
        raise MalformedLineError(
            f'{len(fields)} labels {list(fields)} but multi_class=False; '
            'keep one label, or set multi_class=True (and num_classes) for '
            'a multi-label list (if a path contains spaces, set `delimiter` '
            'for video lists)')
    labels = [
        _parse_int(field, 'label', 'labels are class indices from 0; map '
                   'class names to indices first') for field in fields
    ]
    key = num_classes_key or DATASET_NUM_CLASSES
    for label in labels:
        if label < 0 or (num_classes is not None and label >= num_classes):
            valid = f'0..{num_classes - 1}' if num_classes else '0 or more'
            raise MalformedLineError(
                f'label {label} is out of range {valid}'
                + (f' for num_classes={num_classes}' if num_classes else '')
                + f'; fix the label, or {key} if the list is right')
    return labels if multi_class else labels[0]


def parse_video_line(line: str, delimiter: Optional[str] = ' ',
                     multi_class: bool = False,
                     num_classes: Optional[int] = None,
                     allow_missing_labels: bool = False,
                     num_classes_key: Optional[str] = None) -> Dict:
    """Parse one line ``path label [label ...]`` of a video list.

    ``num_classes_key``: see :func:`parse_labels`.

    Returns:
        dict: ``filename`` (as written, without data prefix) and ``label``.

    Raises:
        MalformedLineError: The line is malformed; the message says how to
            fix it.
    """
    fields = split_fields(line, delimiter)
    label = parse_labels(fields[1:], multi_class, num_classes,
                         allow_missing_labels, num_classes_key)
    return dict(filename=fields[0], label=label)


def parse_rawframe_line(line: str, with_offset: bool = False,
                        multi_class: bool = False,
                        num_classes: Optional[int] = None,
                        allow_missing_labels: bool = False,
                        num_classes_key: Optional[str] = None) -> Dict:
    """Parse one line ``frame_dir [offset] total_frames label [...]``.

    ``num_classes_key``: see :func:`parse_labels`.

    Returns:
        dict: ``frame_dir`` (without data prefix), ``offset`` (only with
        ``with_offset``), ``total_frames`` and ``label``, as
        ``RawframeDataset`` makes them.

    Raises:
        MalformedLineError: The line is malformed; the message says how to
            fix it.
    """
    fields = split_fields(line)
    counts = ['offset', 'total_frames'] if with_offset else ['total_frames']
    expected = ' '.join(['frame_dir'] + counts + ['label'])
    if len(fields) < 1 + len(counts):
        raise MalformedLineError(f'too few fields; expected `{expected}`')
    info = dict(frame_dir=fields[0])
    for name, text in zip(counts, fields[1:1 + len(counts)]):
        info[name] = _parse_int(
            text, name, f'expected `{expected}` (set with_offset='
            f'{not with_offset} if the list has '
            f'{"no" if with_offset else "an"} offset column)')
    if info['total_frames'] < 1:
        raise MalformedLineError(
            f'total_frames {info["total_frames"]} is not positive; '
            're-extract the frames of this video or drop the line')
    if info.get('offset', 0) < 0:
        raise MalformedLineError(
            f'offset {info["offset"]} is negative; fix or drop the line')
    info['label'] = parse_labels(fields[1 + len(counts):], multi_class,
                                 num_classes, allow_missing_labels,
                                 num_classes_key)
    return info


# Where the data of each dataset of our configs comes from, keyed by a part
# of its annotation path (configs/_base_/datasets/ and MMAction2's
# tools/data/<name>/ layout).
SYNTHETIC_MOTION_DIR = 'synthetic_motion'
PREPARED_DATASETS = ('kinetics400', 'sthv1', 'sthv2', 'ucf101', 'hmdb51')


def missing_data_hint(ann_file: str) -> str:
    """How to get the data of a missing annotation file, as a sentence.

    Args:
        ann_file (str): The annotation list that does not exist.

    Returns:
        str: The command that generates the synthetic quick-start data, or
        where MMAction2 documents preparing a public dataset, or (unknown
        data) which config keys to check.
    """
    parts = ann_file.replace('\\', '/').split('/')
    if SYNTHETIC_MOTION_DIR in parts:
        root = '/'.join(parts[:parts.index(SYNTHETIC_MOTION_DIR) + 1])
        return ('The quick-start data is generated, not downloaded: from '
                'the repository root run `python '
                f'tools/data/generate_synthetic_motion.py {root}`, or `make '
                'demo`, which generates it and trains the quick-start '
                'models. Data elsewhere: point `ann_file` and `data_prefix` '
                'of the dataloaders at it with --cfg-options.')
    text = ann_file.lower()
    for name in PREPARED_DATASETS:
        if name in text:
            folder = 'kinetics' if name.startswith('kinetics') else name
            return (f'Prepare {name} as MMAction2 does (its '
                    f'tools/data/{folder}/README.md: download, extract, '
                    'write the lists), or point `ann_file` and `data_prefix` '
                    'of the dataloaders at your copy with --cfg-options.')
    return ('Check `ann_file` (and `data_root`, `data_prefix`) in the '
            'dataset config.')


def missing_annotation_files(
        cfg, loaders: Sequence[str]) -> List[Tuple[str, str]]:
    """The annotation files of a config's dataloaders that do not exist.

    Looks into dataset wrappers (``dataset``, ``datasets``) and joins
    ``data_root`` as MMEngine's ``BaseDataset`` does.

    Args:
        cfg (Config | dict): A training/testing config.
        loaders (Sequence[str]): Dataloader keys, e.g. ``'train_dataloader'``.

    Returns:
        list[tuple[str, str]]: ``(loader key, ann_file)`` of each missing
        file.
    """
    missing = []

    def visit(key: str, dataset) -> None:
        if not isinstance(dataset, dict):
            return
        ann_file = dataset.get('ann_file')
        if isinstance(ann_file, str) and ann_file:
            data_root = dataset.get('data_root')
            if data_root and not osp.isabs(ann_file):
                ann_file = osp.join(data_root, ann_file)
            if not exists(ann_file):
                missing.append((key, ann_file))
        visit(key, dataset.get('dataset'))
        for inner in dataset.get('datasets') or []:
            visit(key, inner)

    for key in loaders:
        loader = cfg.get(key)
        if isinstance(loader, dict):
            visit(key, loader.get('dataset'))
    return missing


def missing_data_message(missing: Sequence[Tuple[str, str]]) -> str:
    """The error for :func:`missing_annotation_files`: the files, and how
    to get the data (each distinct hint once)."""
    lines = [
        f'The data of this config is missing (cwd {os.getcwd()}); these '
        'annotation files do not exist:'
    ]
    lines += [f'  {key}: {ann_file}' for key, ann_file in missing]
    hints = []
    for _, ann_file in missing:
        hint = missing_data_hint(ann_file)
        if hint not in hints:
            hints.append(hint)
    return '\n'.join(lines + hints)


def check_label_options(multi_class: bool,
                        num_classes: Optional[int]) -> None:
    """Reject dataset options no list can be parsed with."""
    if multi_class and num_classes is None:
        raise AnnotationError(
            'multi_class=True needs num_classes (the length of the one-hot '
            'label); set num_classes in the dataset config')
    if num_classes is not None and num_classes < 1:
        raise AnnotationError(
            f'num_classes={num_classes} must be positive; fix it in the '
            'dataset config')


def parse_annotation_file(ann_file: str, parse_line, fmt: str,
                          **options) -> List[Dict]:
    """Parse every non-blank line of ``ann_file`` with ``parse_line``.

    Args:
        ann_file (str): The annotation list.
        parse_line (callable): :func:`parse_video_line` or
            :func:`parse_rawframe_line`.
        fmt (str): The expected line format, for the error message.
        **options: Passed to ``parse_line``.

    Returns:
        list[dict]: One dict per non-blank line, in file order.

    Raises:
        AnnotationError: Some lines are malformed. Lists up to
            ``NUM_LINES_IN_ERROR`` of them as ``file:line: problem; fix``
            with the line's text. Or the file has no entry.
    """
    entries, problems = [], []
    for lineno, line in enumerate(read_annotation_lines(ann_file), 1):
        if not line.strip():
            continue
        try:
            entries.append(parse_line(line, **options))
        except MalformedLineError as err:
            problems.append(f'  {ann_file}:{lineno}: {err}\n'
                            f'      line: {line!r}')
    if problems:
        shown = problems[:NUM_LINES_IN_ERROR]
        more = len(problems) - len(shown)
        raise AnnotationError(
            f'{len(problems)} malformed line(s) in annotation file '
            f'{ann_file} (expected `{fmt}` per line):\n' + '\n'.join(shown) +
            (f'\n  ... and {more} more' if more else '') +
            '\nFix or delete these lines and start again.')
    if not entries:
        raise AnnotationError(
            f'annotation file {ann_file} has no entries (it is empty or '
            f'only blank lines; expected `{fmt}` per line). Write the list '
            '(MMAction2: tools/data/build_file_list.py), or point `ann_file` '
            'of the dataset config at the right file.')
    return entries


def max_label(labels: Iterable[Label]) -> int:
    """The largest class index of ``labels`` (ints, or lists of ints for
    multi-class lists); -1 if there is none (unlabelled entries)."""
    largest = -1
    for label in labels:
        for value in label if isinstance(label, (list, tuple)) else [label]:
            largest = max(largest, int(value))
    return largest
