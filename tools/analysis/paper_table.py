# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Check every paper row of the metafiles against its config.

Builds the config(s) of every model in the metafiles that
``model-index.yml`` imports, counts one test view's FLOPs at 224x224 with
MMEngine's ``FlopAnalyzer`` and the parameters, and prints one Markdown
table per paper table (row, config, views, paper and measured GFLOPs,
difference, parameters) and a summary line. Exits 1 if a row's FLOPs
differ from the paper's by more than the tolerance, or a row's config is
missing or does not build, or its Parameters/Frames do not match the
config.

Examples::

    python tools/analysis/paper_table.py
    python tools/analysis/paper_table.py --out docs/paper_tables.md
    python tools/analysis/paper_table.py --tables "TDRL Table 1" \\
        "TDN Table 1(f)"

Every model entry of ``configs/*/metafile.yml`` is one row of a table of
the TDN or TDRL paper (``Metadata``: ``Paper Table``, ``Paper Row``). For
each row :func:`check_rows` builds its config(s), counts the FLOPs of one
test view with MMEngine's ``FlopAnalyzer`` (``tools/analysis/flops.py``)
and the parameters, and compares them with the metafile:

* ``FLOPs`` is the paper's number in G (multiply-adds) for the row's whole
  test protocol, e.g. ``1080`` for Table 3's "36x30". Both papers count
  one view at 224x224 (also when the 3-crop test uses 256x256 crops), so
  the measured number is one 224x224 view times ``Views`` (``"clips x
  crops"``, e.g. ``10x3``), summed over the members of an ensemble
  (``Ensemble``: the configs whose scores are fused, e.g. "8+16"). A row
  whose measured FLOPs differ from the paper's by more than the tolerance
  (3 %) fails; rows for which the paper prints no FLOPs are measured but
  not checked.
* ``Parameters`` must be the measured count (``"24.38M"``; for an
  ensemble ``"24.38M + 24.38M"``), ``Frames`` the segments per view
  (``"8+16"`` for an ensemble), and every config must exist and build.

:func:`render_markdown` prints one table per paper table; :func:`main` is
the command line. Developer tooling (it reads the repository's ``configs/`` and
``model-index.yml``), not part of the installed library; tests import it
from this file.
"""
import argparse
import copy
import json
import os.path as osp
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import yaml

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

TOLERANCE = 0.03
RESOLUTION = 224
# Backbone arguments that do not change the test-time network: weight
# sources, and TDRL's choice of which features feed the training-only TD
# loss. Backbones differing only in these share one FLOPs count.
COUNT_IRRELEVANT_KEYS = ('pretrained', 'pretrained2d', 'init_cfg',
                         'td_blocks', 'td_position')


class MetafileError(ValueError):
    """A metafile entry lacks what the checked table needs."""


@dataclass(frozen=True)
class PaperRow:
    """One row of a paper table, as a metafile entry states it.

    Attributes:
        name (str): Model name in the metafile.
        metafile (str): The metafile, relative to the repository root.
        table (str): ``Paper Table``, e.g. ``'TDN Table 2'``.
        row (str): ``Paper Row``, the row's label as printed.
        configs (tuple[str]): The config, or an ensemble's configs, relative
            to the repository root.
        views (tuple[int, int]): Test clips and crops per config.
        paper_flops (float, optional): The paper's GFLOPs for all views
            (and members); None where the paper prints none.
        parameters (str, optional): ``Parameters`` as stated.
        frames (str): ``Frames`` as stated.
    """

    name: str
    metafile: str
    table: str
    row: str
    configs: Tuple[str, ...]
    views: Tuple[int, int]
    paper_flops: Optional[float]
    parameters: Optional[str]
    frames: str

    @property
    def num_views(self) -> int:
        return self.views[0] * self.views[1]

    @property
    def is_ensemble(self) -> bool:
        return len(self.configs) > 1


def parse_views(text) -> Tuple[int, int]:
    """``'10x3'`` -> ``(10, 3)`` (clips, crops)."""
    match = re.fullmatch(r'\s*(\d+)\s*[x×]\s*(\d+)\s*', str(text))
    if not match or '0' in (match.group(1), match.group(2)):
        raise MetafileError(
            f'Views must be "<clips>x<crops>" with positive numbers, e.g. '
            f'"1x1" or "10x3"; got {text!r}.')
    return int(match.group(1)), int(match.group(2))


def _row_from_entry(entry: dict, metafile: str) -> PaperRow:
    name = entry.get('Name', '<unnamed>')
    meta = entry.get('Metadata') or {}

    def need(key, where=meta):
        if key not in where or where[key] in (None, ''):
            raise MetafileError(f'{metafile}: model {name} has no {key}.')
        return where[key]

    config = need('Config', entry)
    members = meta.get('Ensemble') or [config]
    if isinstance(members, str):
        members = [members]
    if members[0] != config:
        raise MetafileError(
            f'{metafile}: model {name}: Config must be the first Ensemble '
            f'member ({members[0]}), got {config}.')
    flops = meta.get('FLOPs')
    return PaperRow(
        name=name,
        metafile=metafile,
        table=str(need('Paper Table')),
        row=str(need('Paper Row')),
        configs=tuple(members),
        views=parse_views(need('Views')),
        paper_flops=None if flops is None else float(flops),
        parameters=meta.get('Parameters'),
        frames=str(need('Frames')))


def load_metafile(path: str, root: str = '.') -> List[PaperRow]:
    """The rows of one metafile (``path`` relative to ``root``)."""
    with open(osp.join(root, path)) as f:
        content = yaml.safe_load(f) or {}
    return [_row_from_entry(entry, path) for entry in content.get('Models')
            or []]


def metafiles_of_index(index: str = 'model-index.yml',
                       root: str = '.') -> List[str]:
    """The metafiles a model index imports, relative to ``root``."""
    with open(osp.join(root, index)) as f:
        content = yaml.safe_load(f) or {}
    base = osp.dirname(index)
    return [osp.normpath(osp.join(base, path))
            for path in content.get('Import') or []]


def table_sort_key(table: str) -> tuple:
    """Paper, then table number, then sub-table: 'TDN Table 1(b)'."""
    match = re.fullmatch(r'(\S+) Table (\d+)(?:\((\w)\))?', table)
    if not match:
        return (table, 0, '')
    return (match.group(1), int(match.group(2)), match.group(3) or '')


@dataclass
class ConfigCost:
    """What one config costs per test view.

    Attributes:
        config (str): The config path.
        segments (int): Segments per view.
        frames (int): Frames per view (segments x frames per segment).
        flops (int): FLOPs of one view at the counting resolution.
        params (int): Parameters of the recognizer.
    """

    config: str
    segments: int
    frames: int
    flops: int
    params: int


def format_params(params: int) -> str:
    """``24381918`` -> ``'24.38M'`` (the metafiles' form)."""
    return f'{params / 1e6:.2f}M'


def _strip(cfg, keys: Sequence[str]):
    """``cfg`` as plain data without ``keys`` at any depth."""
    if hasattr(cfg, 'items'):
        return {k: _strip(v, keys) for k, v in cfg.items() if k not in keys}
    if isinstance(cfg, (list, tuple)):
        return [_strip(v, keys) for v in cfg]
    return cfg


class CostMeter:
    """Measures configs: one test view's FLOPs and the parameters.

    Models whose backbones differ only in :data:`COUNT_IRRELEVANT_KEYS`
    and see the same input share one backbone count; their heads are
    counted each.

    Args:
        root (str): Repository root; config paths are relative to it.
        resolution (int): Square input size of a view. Defaults to 224.
        shape_only (bool): Count with
            :func:`flops.shape_only_layers`. Defaults
            to True.
    """

    def __init__(self,
                 root: str = '.',
                 resolution: int = RESOLUTION,
                 shape_only: bool = True) -> None:
        self.root = root
        self.resolution = resolution
        self.shape_only = shape_only
        self._costs: Dict[str, ConfigCost] = {}
        self._backbones: Dict[str, tuple] = {}

    def measure(self, config: str) -> ConfigCost:
        """Build ``config`` and measure it (cached per config)."""
        if config not in self._costs:
            self._costs[config] = self._measure(config)
        return self._costs[config]

    def _measure(self, config: str) -> ConfigCost:
        from mmaction.registry import MODELS
        from mmengine.config import Config
        from mmengine.registry import init_default_scope

        # flops.py is this tool's sibling in tools/analysis (developer
        # tooling, not library code).
        sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
        from flops import RecognizerFlops, head_flops

        import mmaction_tdx  # noqa: F401  (registers our modules)

        path = osp.join(self.root, config)
        if not osp.isfile(path):
            raise FileNotFoundError(f'no such config: {config}')
        cfg = Config.fromfile(path)
        init_default_scope(cfg.get('default_scope', 'mmaction'))
        model_cfg = copy.deepcopy(cfg.model)
        # Build without ImageNet/checkpoint sources: weights do not count.
        if 'pretrained' in model_cfg.get('backbone', {}):
            model_cfg.backbone.pretrained = None
        model = MODELS.build(model_cfg)
        params = sum(p.numel() for p in model.parameters())

        # One view, as the sampling contract defines it (the same rule as
        # the runner's SamplingCheckHook).
        from mmaction_tdx.datasets.sampling_contract import (
            SAMPLERS,
            backbone_sampling,
            clip_sampling,
            pipeline_problems,
        )
        pipeline = cfg.val_dataloader.dataset.pipeline
        sampling = clip_sampling(pipeline)
        if sampling is None:
            raise ValueError(f'{config}: the val pipeline has no frame '
                             f'sampler (one of {", ".join(SAMPLERS)})')
        reads = backbone_sampling(model)
        problems = pipeline_problems(pipeline, reads, 'val', model.cls_head,
                                     'the val pipeline')
        if problems:
            raise ValueError(f'{config}: ' + ' '.join(problems))
        segments = reads.num_segments or sampling.num_clips
        frames = segments * sampling.clip_len

        key = json.dumps([
            cfg.model.type,
            _strip(cfg.model.backbone, COUNT_IRRELEVANT_KEYS), frames,
            self.resolution
        ], sort_keys=True, default=str)
        if key in self._backbones:
            backbone_flops, feature_shape, num_segs = self._backbones[key]
            flops = backbone_flops + head_flops(model.cls_head, feature_shape,
                                                num_segs)
        else:
            counted = RecognizerFlops(model, frames, self.resolution,
                                      self.shape_only)
            self._backbones[key] = (counted.backbone, counted.feature_shape,
                                    counted.num_segs)
            flops = counted.total
        return ConfigCost(config, segments, frames, flops, params)


@dataclass
class RowResult:
    """A paper row with its measurements and what is wrong with it.

    Attributes:
        row (PaperRow): The row.
        costs (list[ConfigCost]): One per config (ensemble member).
        problems (list[str]): Failed checks; empty if the row is fine.
    """

    row: PaperRow
    costs: List[ConfigCost] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def measured_per_view(self) -> Optional[float]:
        """GFLOPs of one view of every member, summed."""
        if len(self.costs) != len(self.row.configs):
            return None
        return sum(cost.flops for cost in self.costs) / 1e9

    @property
    def measured_flops(self) -> Optional[float]:
        """GFLOPs of the row's whole protocol."""
        per_view = self.measured_per_view
        return None if per_view is None else per_view * self.row.num_views

    @property
    def deviation(self) -> Optional[float]:
        """``measured / paper - 1``; None if either is unknown."""
        if self.row.paper_flops is None or self.measured_flops is None:
            return None
        return self.measured_flops / self.row.paper_flops - 1

    @property
    def checked(self) -> bool:
        return self.deviation is not None

    @property
    def measured_params(self) -> str:
        return ' + '.join(format_params(cost.params) for cost in self.costs)


def check_row(row: PaperRow, meter: CostMeter,
              tolerance: float = TOLERANCE) -> RowResult:
    """Measure ``row``'s configs and check it against the metafile."""
    result = RowResult(row)
    for config in row.configs:
        try:
            result.costs.append(meter.measure(config))
        except Exception as err:  # report every row, not the first error
            result.problems.append(f'{config}: {type(err).__name__}: {err}')
    if result.problems:
        return result
    if result.deviation is not None and abs(result.deviation) > tolerance:
        result.problems.append(
            f'FLOPs: measured {result.measured_flops:.1f}G, paper '
            f'{row.paper_flops:g}G ({result.deviation:+.1%}, tolerance '
            f'{tolerance:.0%})')
    if row.parameters is None:
        result.problems.append(
            f'Parameters missing: set it to {result.measured_params}')
    elif str(row.parameters) != result.measured_params:
        result.problems.append(
            f'Parameters: metafile {row.parameters}, measured '
            f'{result.measured_params}')
    segments = '+'.join(str(cost.segments) for cost in result.costs)
    if row.frames != segments:
        result.problems.append(
            f'Frames: metafile {row.frames}, the configs sample {segments} '
            'segments per view')
    return result


def check_rows(rows: Sequence[PaperRow],
               meter: CostMeter,
               tolerance: float = TOLERANCE,
               progress: bool = True) -> List[RowResult]:
    """:func:`check_row` for every row, with a progress bar on stderr."""
    bar = None
    if progress and rows:
        from mmengine.utils import ProgressBar
        bar = ProgressBar(len(rows), file=sys.stderr)
    results = []
    for row in rows:
        results.append(check_row(row, meter, tolerance))
        if bar is not None:
            bar.update()
    if bar is not None:
        sys.stderr.write('\n')
    return results


def duplicate_names(rows: Iterable[PaperRow]) -> List[str]:
    """Model names used more than once (they must be unique)."""
    seen, duplicates = set(), []
    for row in rows:
        if row.name in seen:
            duplicates.append(row.name)
        seen.add(row.name)
    return duplicates


def _flops_cell(per_view: Optional[float], views: int, spec: str) -> str:
    """``per_view`` (or ``per_view×views = total``) formatted by ``spec``."""
    if per_view is None:
        return '—'
    if views == 1:
        return format(per_view, spec)
    return (f'{format(per_view, spec)}×{views} = '
            f'{format(per_view * views, spec)}')


def _config_cell(row: PaperRow) -> str:
    """The configs as code, relative to ``configs/`` and without ``.py``."""
    return ' + '.join(
        f'`{osp.splitext(osp.relpath(config, "configs"))[0]}`'
        for config in row.configs)


def render_markdown(results: Sequence[RowResult],
                    tolerance: float = TOLERANCE) -> str:
    """One Markdown table per paper table, in paper order."""
    tables: Dict[str, List[RowResult]] = {}
    for result in results:
        tables.setdefault(result.row.table, []).append(result)
    lines = []
    for table in sorted(tables, key=table_sort_key):
        lines += [
            f'## {table}', '',
            '| Row | Config | Views | Paper GFLOPs | Measured GFLOPs | '
            'Difference | Params |', '|---|---|---|---|---|---|---|'
        ]
        for result in tables[table]:
            row = result.row
            paper_per_view = (None if row.paper_flops is None else
                              row.paper_flops / row.num_views)
            # The paper's numbers as printed (36, 35.9), ours to 0.01 G.
            paper = _flops_cell(paper_per_view, row.num_views, 'g')
            measured = _flops_cell(result.measured_per_view, row.num_views,
                                   '.2f')
            if result.deviation is None:
                difference = 'not in paper' if row.paper_flops is None \
                    else '—'
            else:
                mark = '' if abs(result.deviation) <= tolerance else ' ✗'
                difference = f'{result.deviation:+.1%}{mark}'
            views = f'{row.views[0]}×{row.views[1]}'
            label = row.row.replace('|', '\\|')
            lines.append(
                f'| {label} | {_config_cell(row)} | {views} | {paper} | '
                f'{measured} | {difference} | {result.measured_params} |')
        lines.append('')
    return '\n'.join(lines)


def summary_line(results: Sequence[RowResult],
                 tolerance: float = TOLERANCE) -> str:
    """One line: rows, tables, how many checked and within tolerance."""
    with_paper = [r for r in results if r.row.paper_flops is not None]
    checked = [r for r in with_paper if r.checked]
    within = [r for r in checked if abs(r.deviation) <= tolerance]
    failed = [r for r in results if not r.ok]
    tables = {r.row.table for r in results}
    text = (f'{len(results)} rows in {len(tables)} tables: '
            f'{len(within)}/{len(with_paper)} with paper FLOPs within '
            f'{tolerance:.0%}')
    if checked:
        worst = max(checked, key=lambda r: abs(r.deviation))
        text += (f' (largest difference {worst.deviation:+.1%}: '
                 f'{worst.row.table}, "{worst.row.row}")')
    text += (f', {len(results) - len(with_paper)} without paper FLOPs; '
             f'{len(failed)} failed.')
    return text


def failures(results: Sequence[RowResult]) -> List[str]:
    """``'<name> (<table>): <problem>'`` for every problem."""
    return [
        f'{r.row.name} ({r.row.table}, "{r.row.row}"): {problem}'
        for r in results for problem in r.problems
    ]


DOC_HEADER = """# Paper tables: FLOPs and parameters of our configs

Generated by `python tools/analysis/paper_table.py --out
docs/paper_tables.md`; `tests/test_tools/test_paper_table.py` checks that
it is current. One table per table of the TDN (CVPR 2021) and TDRL
(ECCV 2020) papers, one line per row of it that is the papers' own model,
ablation or baseline (the entries of `configs/tdn/metafile.yml` and
`configs/tdrl/metafile.yml`).

* **Paper GFLOPs**: as printed, in multiply-adds; `36×30 = 1080` is one
  view times the row's views (clips × crops), `—` where the paper prints no
  FLOPs. Both papers count a view at 224×224, also for 3-crop tests whose
  crops are 256×256 (which cost (256/224)² = 1.31× more), so we do too.
* **Measured GFLOPs**: MMEngine's `FlopAnalyzer` on the recognizer
  (backbone and head) for one view of the config at 224×224, times the
  views; for an ensemble ("8+16") the sum over its configs.
* **Difference**: measured / paper − 1; a row fails beyond ±3 %.
* **Params**: measured, with the config's number of classes.
* Accuracies are in the metafiles and the READMEs (the papers' numbers).

"""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Check the FLOPs and parameters of every paper row in '
        'the metafiles against its config.')
    parser.add_argument(
        '--model-index',
        default='model-index.yml',
        help='model index whose metafiles are checked (relative to the '
        'repository root)')
    parser.add_argument(
        '--tables',
        nargs='+',
        help='only these paper tables, e.g. "TDN Table 2" "TDRL Table 1"')
    parser.add_argument(
        '--tolerance',
        type=float,
        default=0.03,
        help='largest accepted relative FLOPs difference (default 0.03)')
    parser.add_argument(
        '--out', help='also write the tables as Markdown to this file')
    parser.add_argument(
        '--full-trace',
        action='store_true',
        help='trace with full arithmetic instead of shape-only '
        'convolutions/batch norms (same counts, several times slower)')
    parser.add_argument(
        '--no-progress', action='store_true', help='no progress bar')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    # Works from a checkout without installing: the package beside us.
    sys.path.insert(0, REPO_ROOT)
    rows = []
    for metafile in metafiles_of_index(args.model_index, REPO_ROOT):
        rows += load_metafile(metafile, REPO_ROOT)
    duplicates = duplicate_names(rows)
    if args.tables:
        unknown = set(args.tables) - {row.table for row in rows}
        if unknown:
            print(f'error: no rows of {sorted(unknown)} in the metafiles',
                  file=sys.stderr)
            return 2
        rows = [row for row in rows if row.table in args.tables]

    start = time.time()
    meter = CostMeter(REPO_ROOT, shape_only=not args.full_trace)
    results = check_rows(
        rows, meter, args.tolerance, progress=not args.no_progress)
    markdown = render_markdown(results, args.tolerance)
    print(markdown)
    problems = failures(results) + [
        f'{name}: model name used more than once' for name in duplicates
    ]
    for problem in problems:
        print(f'FAILED {problem}')
    print(summary_line(results, args.tolerance) +
          f' ({time.time() - start:.0f} s)')
    if args.out:
        with open(args.out, 'w') as f:
            f.write(DOC_HEADER + markdown.rstrip('\n') + '\n')
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
