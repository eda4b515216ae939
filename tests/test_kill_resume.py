"""Every stage that writes, killed with SIGKILL at a random point and run again with the same command, ends with the
same files as an uninterrupted run: synth, store, pretrain, finetune and ensemble (the ablation grid: test_ablate)."""
import hashlib, json, os, random, signal, subprocess, sys, time, zipfile
from pathlib import Path
import pytest
from safetensors.torch import load_file
import torch
from mmvsim.data.synth import generate

ROOT = Path(__file__).resolve().parents[1]
MMVSIM = str(Path(sys.executable).parent/'mmvsim')
ENV = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', TQDM_DISABLE='1')   # deterministic, one core each


def run(args, kill_after=None):
    """Run `mmvsim args`; with `kill_after` seconds, SIGKILL it then (if still running). Returns the exit code."""
    p = subprocess.Popen([MMVSIM, *map(str, args)], env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    if kill_after is None:
        err = p.communicate(timeout=600)[1]
        assert p.returncode == 0, err.decode()[-3000:]
        return 0
    try: p.wait(timeout=kill_after)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGKILL)
        p.wait()
    return p.returncode


def killed_then_rerun(args, seconds, rng):
    """Kill the command at a random moment of a run of about `seconds`, then run it again to the end."""
    code = run(args, kill_after=rng.uniform(0.3, seconds))
    run(args)
    return code


def files(d: Path, skip=()) -> dict:
    """Every file under `d` by relative path, with its content hash (leaving out `skip` names)."""
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob('*'))
            if p.is_file() and p.name not in skip}


def same_weights(a: Path, b: Path):
    wa, wb = load_file(a), load_file(b)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def log(run_dir: Path) -> list:
    return [{k: v for k, v in json.loads(line).items() if k != 'samples_per_s'}
            for line in (run_dir/'metrics.jsonl').read_text().splitlines()]


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp('kill')
    generate(d/'tiny', 'tiny', progress=False)
    return d


@pytest.fixture
def rng(request):
    seed = random.randrange(10**6)
    print(f'{request.node.name}: kill times drawn with seed {seed}')
    return random.Random(seed)


def test_synth(tiny, rng):
    run(['synth', '--preset', 'tiny', '--out', tiny/'ref', '--seed', 3])
    args = ['synth', '--preset', 'tiny', '--out', tiny/'again', '--seed', 3, '--overwrite']
    killed_then_rerun(args, 8, rng)
    assert files(tiny/'again', skip={'meta.json'}) == files(tiny/'ref', skip={'meta.json'})
    assert not (tiny/'again.partial').exists() and not (tiny/'again.replaced').exists()


def test_store(tiny, rng):
    run(['store', '--data', tiny/'tiny', '--out', tiny/'store_ref'])
    killed_then_rerun(['store', '--data', tiny/'tiny', '--out', tiny/'store_again'], 8, rng)
    strip = lambda fs: {k: v for k, v in fs.items() if k != 'manifest.json'}
    assert strip(files(tiny/'store_again')) == strip(files(tiny/'store_ref'))
    assert not list(tiny.glob('.store_again.*.tmp'))


STAGE = ['--data-dir', None, '--store-dir', None, '--max-frames', 8, '--max-text-len', 16, '--batch-size', 16,
         '--log-every', 1, '--save-every', 2, '--no-plot']


def stage_args(tiny, *more):
    a = list(STAGE)
    a[1], a[3] = tiny/'tiny', tiny/'store_ref'
    return a + list(more)


def test_pretrain(tiny, rng):
    args = stage_args(tiny, '--max-steps', 14, '--lr-bert', 2e-3, '--lr-new', 2e-3)
    run(['pretrain', *args, '--run-dir', tiny/'pre_ref'])
    killed_then_rerun(['pretrain', *args, '--run-dir', tiny/'pre_again'], 20, rng)
    same_weights(tiny/'pre_again'/'model.safetensors', tiny/'pre_ref'/'model.safetensors')
    assert log(tiny/'pre_again') == log(tiny/'pre_ref')


def test_finetune(tiny, rng):
    args = stage_args(tiny, '--model-size', 'tiny', '--split', 'kfold', '--folds', 4, '--max-steps', 12,
                      '--eval-every', 4, '--lr-bert', 1e-3, '--lr-new', 1e-3)
    run(['finetune', *args, '--run-dir', tiny/'ft_ref'])
    killed_then_rerun(['finetune', *args, '--run-dir', tiny/'ft_again'], 20, rng)
    for f in ('model.safetensors', 'best/model.safetensors'):
        same_weights(tiny/'ft_again'/f, tiny/'ft_ref'/f)
    assert log(tiny/'ft_again') == log(tiny/'ft_ref')
    assert (tiny/'ft_again'/'valid_predictions.csv').read_text() == (tiny/'ft_ref'/'valid_predictions.csv').read_text()


def test_finetune_tricks(tiny, rng):
    """With PGD, the EMA and SWA on, a killed run resumes exactly too: the averages and their counts are saved."""
    args = stage_args(tiny, '--model-size', 'tiny', '--split', 'kfold', '--folds', 4, '--epochs', 3, '--eval-every', 4,
                      '--lr-bert', 1e-3, '--lr-new', 1e-3, '--adversarial', 'pgd', '--adv-steps', 2,
                      '--ema-decay', 0.8, '--swa-last', 2)
    t0 = time.monotonic()
    run(['finetune', *args, '--run-dir', tiny/'trick_ref'])
    killed_then_rerun(['finetune', *args, '--run-dir', tiny/'trick_again'], time.monotonic() - t0, rng)
    for f in ('model.safetensors', 'best/model.safetensors', 'model_ema.safetensors', 'model_swa.safetensors'):
        same_weights(tiny/'trick_again'/f, tiny/'trick_ref'/f)
    assert log(tiny/'trick_again') == log(tiny/'trick_ref')


def test_ensemble(tiny, rng):
    for k in ('a', 'b'):
        run(['finetune', *stage_args(tiny, '--model-size', 'tiny', '--max-steps', 2, '--seed', 1 if k == 'a' else 2),
             '--run-dir', tiny/f'm_{k}', '--split', 'kfold', '--folds', 4])
        run(['embed', '--run', tiny/f'm_{k}', '--data', tiny/'tiny', '--store', tiny/'store_ref', '--split', 'test_a',
             '--out', tiny/f'm_{k}'/'test_a.npz'])
    args = ['ensemble', '--members', tiny/'m_a'/'test_a.npz', tiny/'m_b'/'test_a.npz', '--weights', '1,2',
            '--data', tiny/'tiny', '--store', tiny/'store_ref']
    run([*args, '--out', tiny/'ens_ref'/'e.zip'])
    killed_then_rerun([*args, '--out', tiny/'ens_again'/'e.zip'], 8, rng)
    result = lambda d: zipfile.ZipFile(d/'e.zip').read('result.json')
    assert result(tiny/'ens_again') == result(tiny/'ens_ref')
    for f in ('e.csv', 'e.md'): assert (tiny/'ens_again'/f).read_text() == (tiny/'ens_ref'/f).read_text()
    assert not [p for p in (tiny/'ens_again').iterdir() if p.name.endswith('.tmp')]


CALLBACK_RUN = '''
import sys, torch
from torch import nn
import mmvsim

class RampLoss(mmvsim.Callback):
    """Scale the loss by k / n over the first n micro-batches: a callback whose state decides the weights."""
    def __init__(self, n): self.n, self.k = n, 0
    def after_loss(self, r, st):
        self.k += 1
        r.out['loss'] = r.out['loss'] * min(1.0, self.k / self.n)
    def state_dict(self): return {'k': self.k}
    def load_state_dict(self, state): self.k = state['k']

class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 32), nn.Tanh(), nn.Dropout(0.2), nn.Linear(32, 1))
    def forward(self, b): return {'loss': nn.functional.mse_loss(self.net(b['x']).squeeze(-1), b['y'])}

g = torch.Generator().manual_seed(0)
x = torch.randn(256, 6, generator=g)
data = [{'x': x[i], 'y': torch.tanh(x[i].sum())} for i in range(len(x))]
torch.manual_seed(0)
cfg = mmvsim.TrainConfig(epochs=40, batch_size=8, lr_new=1e-2, save_every=7, log_every=5, plot=False,
                         mixed_precision='no')
mmvsim.train(Toy(), data, cfg, sys.argv[1], callbacks=[RampLoss(300)])
'''


def test_callback_state(tiny, rng):
    """A training run with a stateful callback, killed at a random moment and rerun, ends with the same weights."""
    script = tiny/'callback_run.py'
    script.write_text(CALLBACK_RUN)
    go = lambda d, **kw: subprocess.Popen([sys.executable, str(script), str(d)], env=ENV, cwd=ROOT,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)
    ref = go(tiny/'cb_ref')
    assert ref.wait(timeout=600) == 0, ref.stderr.read().decode()[-3000:]
    p = go(tiny/'cb_again')
    while not (tiny/'cb_again'/'checkpoint'/'latest.json').exists() and p.poll() is None: time.sleep(0.05)
    time.sleep(rng.uniform(0, 2))                # somewhere after the first checkpoint
    p.send_signal(signal.SIGKILL)
    assert p.wait() == -signal.SIGKILL, 'the run ended before it could be killed'
    again = go(tiny/'cb_again')
    assert again.wait(timeout=600) == 0, again.stderr.read().decode()[-3000:]
    assert json.loads((tiny/'cb_again'/'train_summary.json').read_text())['resumed_from'] > 0
    same_weights(tiny/'cb_again'/'model.safetensors', tiny/'cb_ref'/'model.safetensors')
    assert log(tiny/'cb_again') == log(tiny/'cb_ref')


def test_one_writer_per_run(tiny):
    """While a stage writes a run directory, a second stage on it stops at once naming the holder (same or other
    settings), and readers of the run (embed, finetune from it) are refused; the holder's files are untouched."""
    busy = tiny/'busy'
    args = ['pretrain', *stage_args(tiny, '--max-steps', 2000, '--run-dir', busy)]
    first = subprocess.Popen([MMVSIM, *map(str, args)], env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    try:
        while not (busy/'checkpoint'/'latest.json').exists() and first.poll() is None: time.sleep(0.05)
        config = (busy/'config.json').read_text()
        for cmd in (['pretrain', *stage_args(tiny, '--max-steps', 3, '--run-dir', busy)], args,
                    ['embed', '--run', busy, '--data', tiny/'tiny', '--store', tiny/'store_ref', '--split', 'test_a',
                     '--out', tiny/'busy.npz'],
                    ['finetune', *stage_args(tiny, '--pretrained', busy, '--max-steps', 1, '--split', 'kfold',
                                             '--folds', 4, '--run-dir', tiny/'ft_busy')]):
            p = subprocess.run([MMVSIM, *map(str, cmd)], env=ENV, cwd=ROOT, capture_output=True, text=True,
                               timeout=300)
            assert p.returncode == 2 and f'run {busy} is in use by pid {first.pid} (' in p.stderr, p.stderr[-2000:]
            assert first.poll() is None, 'the first run ended before the others were tried'
        assert (busy/'config.json').read_text() == config and not (tiny/'busy.npz').exists()
    finally:
        first.kill()
        first.wait()
