"""The ablation runner end to end: the quick grid killed with SIGKILL, rerun, rerun again."""
import csv, json, signal, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MMVSIM = str(Path(sys.executable).parent/'mmvsim')


def _completed(runs: Path) -> dict:
    return {p.parent.name: p.stat().st_mtime_ns for p in runs.glob('*/complete.json')}


def _survivors(runs: Path) -> list:
    """Processes still running any run of this grid."""
    out = subprocess.run(['pgrep', '-af', str(runs)], capture_output=True, text=True).stdout
    return [l for l in out.splitlines() if 'pgrep' not in l]


def test_quick_grid_killed_and_rerun(tmp_path):
    runs, data = tmp_path/'runs', tmp_path/'tiny'
    cmd = [MMVSIM, 'ablate', '--quick', '--runs', str(runs), '--data', str(data)]
    t0 = time.time()
    with open(tmp_path/'first.log', 'w') as log:
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        while time.time() - t0 < 300 and len(_completed(runs)) < 2 and p.poll() is None: time.sleep(0.2)
        p.send_signal(signal.SIGKILL)
        p.wait()
    before = _completed(runs)
    assert 2 <= len(before) < 5, (before, (tmp_path/'first.log').read_text()[-2000:])
    time.sleep(3)
    assert _survivors(runs) == []                                      # nothing kept training after the runner died

    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-3000:]       # one row fails on purpose
    assert f'7 runs, {len(before)} complete, {7 - len(before)} to run' in r.stdout, r.stdout
    after = _completed(runs)
    assert {k: after[k] for k in before} == before                      # finished runs were not run again
    assert len(after) == 5
    failed = {p.parent.name: json.loads(p.read_text()) for p in runs.glob('*/failed.json')}
    assert len(failed) == 2, failed
    pre = next(v for k, v in failed.items() if k.startswith('pre-'))
    ft = next(v for k, v in failed.items() if k.startswith('ft-'))
    assert 'no/such/bert-checkpoint' in pre['error'] and 'pretraining run' in ft['error']

    rep = runs/'report'
    for f in ('report.ipynb', 'tables.md', 'results.csv', 'verdicts.csv', 'table_tasks.csv', 'table_beyond.csv',
              'tables.png', 'curves.png', 'best_member.png', 'curve.csv', 'blend.csv'):
        assert (rep/f).exists(), f
    curve = list(csv.DictReader(open(rep/'curve.csv')))
    assert [c['size'] for c in curve] == ['1', '2', '3'] and float(curve[0]['gain']) == 0   # three runs finished
    rows = list(csv.DictReader(open(rep/'table_tasks.csv')))
    assert [r['row'] for r in rows] == ['VTC', 'VTC + MLM + MFM'] and all(r['seeds'] == '1' for r in rows)
    assert all(-1 <= float(r['test_spearman']) <= 1 for r in rows)
    verdicts = list(csv.DictReader(open(rep/'verdicts.csv')))
    assert {v['verdict'] for v in verdicts} <= {'reproduced', 'reversed', 'not resolved'} and len(verdicts) == 4
    beyond = {r['row']: r for r in csv.DictReader(open(rep/'table_beyond.csv'))}
    assert beyond['broken on purpose']['seeds'] == '0' and float(beyond['oracle (true latents)']['test_spearman']) > 0.5

    again = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert '7 runs, 5 complete, 2 to run' in again.stdout, again.stdout
    assert _completed(runs) == after                                    # skipped: only the failed ones run again
    print(f'quick grid: {time.time() - t0:.0f} s for the killed run and two reruns')
