"""The parameterised experiment notebooks run under papermill and leave a complete run directory."""
import json, subprocess, sys
from pathlib import Path
import pytest
from mmvsim.synth import generate

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp('data')/'tiny'
    generate(d, 'tiny', progress=False)
    return d


def test_pretrain_notebook(tiny, tmp_path):
    run = tmp_path/'run'
    out = run/'pretrain.ipynb'
    run.mkdir()
    cmd = [sys.executable, '-m', 'papermill', str(ROOT/'nbs/experiments/pretrain.ipynb'), str(out), '--cwd', str(ROOT),
           '-p', 'data_dir', str(tiny), '-p', 'run_dir', str(run), '-p', 'epochs', '1', '-p', 'batch_size', '16',
           '-p', 'tasks', 'vtc,mlm,mfm,itm']
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    for f in ['config.json', 'model_config.json', 'metrics.jsonl', 'metrics.json', 'model.safetensors', 'loss.png',
              'pretrain.ipynb']:
        assert (run/f).exists(), f
    cfg = json.loads((run/'config.json').read_text())
    assert cfg['tasks'] == 'vtc,mlm,mfm,itm' and cfg['epochs'] == 1
    m = json.loads((run/'metrics.json').read_text())
    assert set(m['last']) == {'loss', 'vtc', 'mlm', 'mfm', 'itm'} and m['steps'] > 0
    nb = json.loads(out.read_text())
    assert any('papermill' in c['metadata'] for c in nb['cells'])   # executed, with papermill's records


def test_cli_help():
    r = subprocess.run([str(Path(sys.executable).parent/'mmvsim'), 'pretrain', '--help'], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and '--model-size' in r.stdout and '--include-test' in r.stdout


def test_finetune_notebook(tiny, tmp_path):
    run = tmp_path/'run'
    out = run/'finetune.ipynb'
    run.mkdir()
    cmd = [sys.executable, '-m', 'papermill', str(ROOT/'nbs/experiments/finetune.ipynb'), str(out), '--cwd', str(ROOT),
           '-p', 'data_dir', str(tiny), '-p', 'run_dir', str(run), '-p', 'split', 'kfold', '-p', 'folds', '4',
           '-p', 'epochs', '1', '-p', 'batch_size', '16', '-p', 'lr_bert', '1e-3', '-p', 'lr_new', '1e-3']
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    for f in ['config.json', 'model_config.json', 'split.json', 'metrics.jsonl', 'metrics.json', 'model.safetensors',
              'best/model.safetensors', 'valid_predictions.csv', 'loss.png', 'finetune.ipynb']:
        assert (run/f).exists(), f
    cfg = json.loads((run/'config.json').read_text())
    assert (cfg['split'], cfg['folds'], cfg['epochs'], cfg['model_size'], cfg['pretrained']) == ('kfold', 4, 1, 'tiny', '')
    m = json.loads((run/'metrics.json').read_text())
    assert m['start'] == 'scratch:tiny' and m['steps'] > 0 and -1 <= m['best_spearman'] <= 1
    split = json.loads((run/'split.json').read_text())
    assert split['method'] == 'kfold' and split['valid'] == m['valid_pairs'] > 0
    nb = json.loads(out.read_text())
    assert any('papermill' in c['metadata'] for c in nb['cells'])   # executed, with papermill's records

