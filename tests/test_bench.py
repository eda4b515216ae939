"""`scripts/bench.py --quick` runs every section end to end and writes figures that make sense (about a minute)."""
import json, math, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ('train', 'data', 'padding', 'inference', 'scale')


@pytest.fixture(scope='module')
def quick(tmp_path_factory):
    """The printed output and the JSON of one quick run."""
    out = tmp_path_factory.mktemp('bench')/'r.json'
    p = subprocess.run([sys.executable, str(ROOT/'scripts'/'bench.py'), '--quick', '--out', str(out)], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return p.stdout, json.loads(out.read_text())


def test_every_section_has_rows(quick):
    printed, res = quick
    for s in SECTIONS:
        assert res[s], f'{s}: no rows'
        assert f'## {s}' in printed
    assert res['machine']['cores'] >= 1 and res['machine']['torch']
    assert set(SECTIONS) <= set(res['seconds']) and res['seconds']['total'] > 0


def test_train_times_and_ratios(quick):
    rows = quick[1]['train']
    assert rows[0]['loop'].startswith('reference') and rows[0]['vs_reference'] == 1
    assert any(r['loop'].startswith('kit') for r in rows)
    for r in rows:
        assert math.isfinite(r['step_ms']) and 0 < r['best_ms'] <= r['step_ms']
        assert math.isfinite(r['vs_reference']) and r['vs_reference'] > 0


def test_longest_pads_less_than_max(quick):
    share = {r['padding']: r['padded_share'] for r in quick[1]['padding']}
    assert 0 <= share['longest'] < share['max'] < 1


def test_scale_measures_memory_and_counts(quick):
    gen, build = quick[1]['scale'][:2]
    assert gen['pointwise'] == gen['videos_asked'] == 2000
    assert gen['peak_rss_mb'] > 0 and build['peak_rss_mb'] > 0
    assert build['videos'] >= gen['videos_asked']
