"""`mmvsim.train.train` on two CPU processes (torchrun, gloo) agrees with itself, with one process, and with a resume.

`accelerate launch --cpu --num_processes 2` starts a single process, so the check uses
`python -m torch.distributed.run --nproc_per_node 2 tests/dist_check.py`. Both runs see the same data in the same
order with the same global batch (2 × 4 and 1 × 8).
"""
import json, os, socket, subprocess, sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT/'tests'/'dist_check.py'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run(args, out):
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')]),
           'OMP_NUM_THREADS': '1', 'CUDA_VISIBLE_DEVICES': ''}
    p = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f'{args} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-6000:]}'


@pytest.fixture(scope='module')
def out(tmp_path_factory):
    d = tmp_path_factory.mktemp('dist')
    run(['-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_addr', '127.0.0.1',
         '--master_port', str(free_port()), str(SCRIPT), str(d), '--batch-size', '4', '--tag', 'ddp', '--resume'], d)
    run([str(SCRIPT), str(d), '--batch-size', '8', '--tag', 'single'], d)
    return d


def info(out, tag, rank): return json.loads((out/f'{tag}_info_rank{rank}.json').read_text())
def weights(out, tag, rank): return load_file(out/f'{tag}_rank{rank}.safetensors')


def test_two_gloo_processes(out):
    for r in (0, 1): assert (info(out, 'ddp', r)['world_size'], info(out, 'ddp', r)['backend']) == (2, 'gloo')
    assert info(out, 'single', 0)['world_size'] == 1
    assert info(out, 'ddp', 0)['summary']['steps'] == info(out, 'single', 0)['summary']['steps'] == 16


def test_ranks_identical(out):
    w0, w1 = weights(out, 'ddp', 0), weights(out, 'ddp', 1)
    assert w0.keys() == w1.keys() and all(torch.equal(w0[k], w1[k]) for k in w0)


def test_matches_single_process(out):
    wd, ws = weights(out, 'ddp', 0), weights(out, 'single', 0)
    assert wd.keys() == ws.keys()
    for k in wd: torch.testing.assert_close(wd[k], ws[k], rtol=1e-4, atol=1e-5)
    ld = [r['loss'] for r in map(json.loads, (out/'ddp'/'metrics.jsonl').read_text().splitlines())]
    ls = [r['loss'] for r in map(json.loads, (out/'single'/'metrics.jsonl').read_text().splitlines())]
    torch.testing.assert_close(torch.tensor(ld), torch.tensor(ls), rtol=1e-4, atol=1e-5)


def test_main_process_writes_once(out):
    steps = [json.loads(l)['step'] for l in (out/'ddp'/'metrics.jsonl').read_text().splitlines()]
    assert steps == [2, 4, 6, 8, 10, 12, 14, 16]               # one line per log step, not one per process
    assert json.loads((out/'ddp'/'checkpoint'/'latest.json').read_text())['path'] == 'step-000016'
    ck = out/'ddp'/'checkpoint'/'step-000016'
    assert {'random_states_0.pkl', 'random_states_1.pkl', 'model.safetensors'} <= {p.name for p in ck.iterdir()}
    assert (out/'ddp'/'best'/'model.safetensors').exists()


def test_resume_exact_under_ddp(out):
    for r in (0, 1):
        a, b = weights(out, 'ddp', r), weights(out, 'ddp-resumed', r)
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert info(out, 'ddp-resumed', 0)['summary']['resumed_from'] == 5
