#!/usr/bin/env bash
# Mutation testing of the core modules with mutmut (not in CI: slow).
#
#   tools/dev/mutation.sh                  # every core module below
#   tools/dev/mutation.sh losses/temporal_diversity_loss.py ...
#   make mutation MUTATE="heads/view_consensus.py"
#
# A module is given relative to mmaction_tdx/models/ or to the repository
# root (e.g. mmaction_tdx/compat/safe_checkpoint.py). mutmut 3 rewrites the
# code it mutates, so each module runs on a COPY of the tree under
# $MUTATION_DIR (default /tmp/mmaction_tdx-mutation/<module>): the checkout
# is never changed. Each module runs with its own test file only
# (TESTS_<name> below), `-x`, OMP_NUM_THREADS=1. The survivors are printed
# and kept in $MUTATION_DIR/<module>/survivors.txt; inspect one with
#   (cd $MUTATION_DIR/<module> && mutmut show <mutant name>)
# Scores and the equivalent survivors: docs/dev/testing.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
MUTMUT="$(dirname "$PY")/mutmut"
BASE="${MUTATION_DIR:-/tmp/mmaction_tdx-mutation}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
MAX_CHILDREN="${MAX_CHILDREN:-1}"

# module (under mmaction_tdx/) -> its targeted tests (under tests/)
declare -A TESTS=(
  [models/losses/temporal_diversity_loss.py]="test_models/test_losses/test_temporal_diversity_loss.py"
  [models/heads/view_consensus.py]="test_models/test_heads/test_view_consensus.py"
  [models/heads/tsn_td_head.py]="test_models/test_heads/test_tsn_td_head.py"
  [models/common/progressive_enhancement.py]="test_models/test_common/test_progressive_enhancement.py"
  [models/common/short_term_tdm.py]="test_models/test_common/test_short_term_tdm.py"
  [models/common/long_term_tdm.py]="test_models/test_common/test_long_term_tdm.py"
  [models/utils/tdn_checkpoint.py]="test_models/test_utils/test_tdn_checkpoint.py"
  [models/utils/tdn_class_orders.py]="test_models/test_utils/test_tdn_checkpoint.py"
  [datasets/robust_video_dataset.py]="test_datasets/test_robust_video_dataset.py"
  [compat/safe_checkpoint.py]="test_compat/test_safe_checkpoint.py"
)
# The order of a full run: small, central modules first.
ORDER=(
  models/losses/temporal_diversity_loss.py
  models/heads/view_consensus.py
  models/common/progressive_enhancement.py
  models/common/short_term_tdm.py
  models/common/long_term_tdm.py
  models/heads/tsn_td_head.py
  models/utils/tdn_class_orders.py
  models/utils/tdn_checkpoint.py
  datasets/robust_video_dataset.py
  compat/safe_checkpoint.py
)

modules=("$@")
[ ${#modules[@]} -eq 0 ] && modules=("${ORDER[@]}")

status=0
for arg in "${modules[@]}"; do
  mod="${arg#mmaction_tdx/}"
  [ -n "${TESTS[$mod]+x}" ] || mod="models/$mod"
  if [ -z "${TESTS[$mod]+x}" ]; then
    echo "error: no targeted tests known for '$arg'; add it to TESTS in" \
      "$0 (known: ${!TESTS[*]})" >&2
    exit 2
  fi
  tests=()
  for t in ${TESTS[$mod]}; do
    [ -f "$ROOT/tests/$t" ] || { echo "error: tests/$t is missing" >&2; exit 2; }
    tests+=("tests/$t")
  done
  work="$BASE/$(echo "$mod" | tr '/' '_' | sed 's/\.py$//')"
  echo "== $mod  (tests: ${tests[*]}; copy in $work)"
  rm -rf "$work" && mkdir -p "$work"
  (cd "$ROOT" && cp -r mmaction_tdx tests configs tools model-index.yml \
    pyproject.toml \
    _mmaction_tdx_config_scope.py "$work/")
  find "$work" -name __pycache__ -prune -exec rm -rf {} +
  # tests/conftest.py finds the shared data next to the repository root.
  ln -sfn "$(dirname "$ROOT")/shared" "$BASE/shared"
  ln -sfn "$(dirname "$ROOT")/shared" "$work/shared"
  # mutmut reads a list as one entry per line.
  {
    echo "[mutmut]"
    echo "source_paths = mmaction_tdx"
    echo "only_mutate = mmaction_tdx/$mod"
    printf 'also_copy =\n    configs\n    tools\n    _mmaction_tdx_config_scope.py\n'
    printf 'pytest_add_cli_args =\n    -x\n    -q\n'
    echo "pytest_add_cli_args_test_selection ="
    printf '    %s\n' "${tests[@]}"
  } > "$work/setup.cfg"
  # mutmut puts mutants/ first on sys.path (before the installed checkout).
  (cd "$work" && "$MUTMUT" run --max-children "$MAX_CHILDREN" \
    > mutmut.log 2>&1) || status=$?
  (cd "$work" && "$MUTMUT" results --all true > results.txt 2>&1 || true
   grep -E ': (survived|timeout|suspicious|no tests)' results.txt \
     > survivors.txt || true)
  echo "-- $mod: $(grep -c ': killed' "$work/results.txt" || true) killed," \
    "$(grep -c ': survived' "$work/results.txt" || true) survived," \
    "$(grep -c ': timeout' "$work/results.txt" || true) timeout," \
    "$(grep -c ': no tests' "$work/results.txt" || true) not covered"
  cat "$work/survivors.txt"
done
exit $status
