# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Malformed annotation lines fail at load with file, line and fix; valid
lists load exactly as MMAction2's stock datasets load them."""
# mmaction_tdx first: its compat fixes make `mmaction.datasets` importable.
import mmaction_tdx  # noqa: F401  # isort: skip
import pytest
from mmaction.datasets import RawframeDataset, VideoDataset

from mmaction_tdx.datasets import (
    AnnotationError,
    RobustRawframeDataset,
    RobustVideoDataset,
)


def write(tmp_path, text, name='list.txt'):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def data_list(dataset_cls, ann_file, **options):
    """The parsed list (kept: serialize_data=False), never empty."""
    loaded = dataset_cls(
        ann_file, pipeline=[], serialize_data=False, **options).data_list
    assert loaded
    return loaded


VALID_CASES = [
    # (stock class, ours, list text, options)
    (VideoDataset, RobustVideoDataset, 'a.mp4 0\nsub/b.mp4 2\n',
     dict(data_prefix=dict(video='root'))),
    (VideoDataset, RobustVideoDataset, 'a.mp4 0 3\nb.mp4 1\n',
     dict(multi_class=True, num_classes=4)),
    (VideoDataset, RobustVideoDataset, 'a b.mp4,3\nc.mp4,1\n',
     dict(delimiter=',')),
    (RawframeDataset, RobustRawframeDataset, 'd1 163 1\nd2 122 0\n',
     dict(data_prefix=dict(img='frames'))),
    (RawframeDataset, RobustRawframeDataset, 'd1 12 163 3\nd2 0 5 4\n',
     dict(with_offset=True)),
    (RawframeDataset, RobustRawframeDataset, 'd1 163 1 3 5\nd2 122 2\n',
     dict(multi_class=True, num_classes=6)),
]


@pytest.mark.parametrize('stock_cls,robust_cls,text,options', VALID_CASES)
def test_valid_lists_load_as_the_stock_datasets_load_them(
        tmp_path, stock_cls, robust_cls, text, options):
    ann_file = write(tmp_path, text)
    assert data_list(robust_cls, ann_file, **options) == \
        data_list(stock_cls, ann_file, **options)


def test_unlabelled_list_loads_like_stock_when_allowed(tmp_path):
    ann_file = write(tmp_path, 'a.mp4\nb.mp4\n')
    assert data_list(RobustVideoDataset, ann_file,
                     allow_missing_labels=True) == \
        data_list(VideoDataset, ann_file)


def test_blank_lines_and_runs_of_spaces_are_tolerated(tmp_path):
    ann_file = write(tmp_path, 'a.mp4  1\n\n   \nb.mp4\t0\n')
    assert data_list(RobustVideoDataset, ann_file) == [
        dict(filename='a.mp4', label=1),
        dict(filename='b.mp4', label=0)
    ]


BAD_VIDEO_LINES = [
    # (line, options, words the error must contain)
    ('b.mp4', {}, ['no label', 'allow_missing_labels=True']),
    ('b.mp4 cat', {}, ["label 'cat' is not an integer", 'class indices']),
    ('b.mp4 7', dict(num_classes=5),
     ['label 7 is out of range 0..4 for num_classes=5', 'num_classes']),
    ('b.mp4 -2', {}, ['label -2 is out of range']),
    ('b.mp4 1 2', {}, ['2 labels', 'multi_class=True']),
]


@pytest.mark.parametrize('line,options,words', BAD_VIDEO_LINES)
def test_malformed_video_line_names_file_line_text_and_fix(
        tmp_path, line, options, words):
    ann_file = write(tmp_path, f'a.mp4 0\n{line}\nc.mp4 1\n')

    with pytest.raises(AnnotationError) as error:
        RobustVideoDataset(ann_file, pipeline=[], **options)

    message = str(error.value)
    assert f'{ann_file}:2: ' in message
    assert repr(line) in message
    for word in words:
        assert word in message


BAD_RAWFRAME_LINES = [
    ('d2 12x 1', {}, ["total_frames '12x' is not an integer"]),
    ('d2 0 1', {}, ['total_frames 0 is not positive']),
    ('d2', {}, ['too few fields', '`frame_dir total_frames label`']),
    ('d2 30', {}, ['no label']),
    ('d2 30 9', dict(multi_class=True, num_classes=3),
     ['label 9 is out of range 0..2']),
    ('d2 30 1 2', {}, ['2 labels', 'multi_class=True']),
    ('d2 x 30 1', dict(with_offset=True), ["offset 'x' is not an integer"]),
]


@pytest.mark.parametrize('line,options,words', BAD_RAWFRAME_LINES)
def test_malformed_rawframe_line_names_file_line_text_and_fix(
        tmp_path, line, options, words):
    first = 'd1 0 10 1' if options.get('with_offset') else 'd1 10 1'
    ann_file = write(tmp_path, f'{first}\n{line}\n')

    with pytest.raises(AnnotationError) as error:
        RobustRawframeDataset(ann_file, pipeline=[], **options)

    message = str(error.value)
    assert f'{ann_file}:2: ' in message
    assert repr(line) in message
    for word in words:
        assert word in message


def test_all_malformed_lines_are_listed_at_once(tmp_path):
    lines = ['a.mp4 0', 'b.mp4', 'c.mp4 0', 'd.mp4 x', 'e.mp4 9']
    ann_file = write(tmp_path, '\n'.join(lines) + '\n')

    with pytest.raises(AnnotationError) as error:
        RobustVideoDataset(ann_file, pipeline=[], num_classes=5)

    message = str(error.value)
    assert message.startswith(f'3 malformed line(s) in annotation file '
                              f'{ann_file}')
    for lineno in (2, 4, 5):
        assert f'{ann_file}:{lineno}: ' in message
    assert f'{ann_file}:1: ' not in message


def test_multi_class_needs_num_classes(tmp_path):
    ann_file = write(tmp_path, 'a.mp4 0 1\n')
    with pytest.raises(AnnotationError, match='set num_classes'):
        RobustVideoDataset(ann_file, pipeline=[], multi_class=True)


def test_missing_annotation_file_says_which_and_what_to_check(tmp_path):
    missing = str(tmp_path / 'nope.txt')
    with pytest.raises(FileNotFoundError, match='nope.txt not found'):
        RobustVideoDataset(missing, pipeline=[])


@pytest.mark.parametrize('robust_cls', [RobustVideoDataset,
                                        RobustRawframeDataset])
@pytest.mark.parametrize('text', ['', '\n  \n\n'])
def test_a_list_without_entries_names_the_file(tmp_path, robust_cls, text):
    ann_file = write(tmp_path, text)

    with pytest.raises(AnnotationError) as error:
        robust_cls(ann_file, pipeline=[])

    assert str(error.value).startswith(
        f'annotation file {ann_file} has no entries')
    assert 'point `ann_file`' in str(error.value)


@pytest.mark.parametrize('stock_cls,robust_cls,text,options', VALID_CASES)
def test_a_byte_order_mark_keeps_the_first_entry(
        tmp_path, stock_cls, robust_cls, text, options):
    """Windows editors start UTF-8 files with a BOM; read as plain UTF-8 it
    would be part of the first path (or make its line malformed)."""
    plain = data_list(robust_cls, write(tmp_path, text), **options)
    path = tmp_path / 'bom.txt'
    path.write_bytes(b'\xef\xbb\xbf' + text.encode('utf-8'))

    assert data_list(robust_cls, str(path), **options) == plain


@pytest.mark.parametrize('robust_cls,text,bad_line', [
    (RobustVideoDataset, 'a.mp4 0\nb.mp4 9\n\nc.mp4 99\n', 4),
    (RobustRawframeDataset, 'd1 8 9\nd2 8 10\n', 2),
])
def test_labels_are_checked_against_the_model_classes(
        tmp_path, robust_cls, text, bad_line):
    ann_file = write(tmp_path, text)
    dataset = robust_cls(ann_file, pipeline=[])  # no num_classes: loads

    dataset.check_label_range(100 if bad_line == 4 else 11, 'the head')
    with pytest.raises(AnnotationError) as error:
        dataset.check_label_range(10, 'model.cls_head.num_classes')

    message = str(error.value)
    assert f'{ann_file}:{bad_line}: label ' in message
    assert 'is out of range 0..9 for num_classes=10; fix the label, or ' \
        'model.cls_head.num_classes if the list is right' in message
    assert f'{ann_file}:1: ' not in message
