"""The parameterised experiment notebooks run under papermill and leave a complete run directory."""
import json, subprocess, sys
from pathlib import Path
import pytest
from mmvsim.data.synth import generate

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp('data')/'tiny'
    generate(d, 'tiny', progress=False)
    return d


def run_notebook(name, folder, stage=True, **params):
    """Execute `nbs/experiments/<name>.ipynb` with papermill into `folder/<name>.ipynb` (a stage's run directory)."""
    folder.mkdir()
    out = folder/f'{name}.ipynb'
    cmd = [sys.executable, '-m', 'papermill', str(ROOT/f'nbs/experiments/{name}.ipynb'), str(out), '--cwd', str(ROOT)]
    cmd += (['-p', 'run_dir', str(folder)] if stage else []) + [x for k, v in params.items() for x in ('-p', k, str(v))]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return out


def test_pretrain_notebook(tiny, tmp_path):
    run = tmp_path/'run'
    out = run_notebook('pretrain', run, data_dir=tiny, epochs=1, batch_size=16, tasks='vtc,mlm,mfm,itm')
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
    r = subprocess.run([str(Path(sys.executable).parent/'mmvsim'), 'pretrain', '--help'], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and '--model-size' in r.stdout and '--include-test' in r.stdout


def test_finetune_notebook(tiny, tmp_path):
    run = tmp_path/'run'
    out = run_notebook('finetune', run, data_dir=tiny, split='kfold', folds=4, epochs=1, batch_size=16, lr_bert=1e-3,
                       lr_new=1e-3)
    for f in ['config.json', 'model_config.json', 'split.json', 'metrics.jsonl', 'metrics.json', 'model.safetensors',
              'best/model.safetensors', 'valid_predictions.csv', 'loss.png', 'finetune.ipynb']:
        assert (run/f).exists(), f
    cfg = json.loads((run/'config.json').read_text())
    assert (cfg['split'], cfg['folds'], cfg['epochs'], cfg['model_size'],
            cfg['pretrained']) == ('kfold', 4, 1, 'tiny', '')
    m = json.loads((run/'metrics.json').read_text())
    assert m['start'] == 'scratch:tiny' and m['steps'] > 0 and -1 <= m['best_spearman'] <= 1
    split = json.loads((run/'split.json').read_text())
    assert split['method'] == 'kfold' and split['valid'] == m['valid_pairs'] > 0
    nb = json.loads(out.read_text())
    assert any('papermill' in c['metadata'] for c in nb['cells'])   # executed, with papermill's records


def outputs(path):
    """The executed notebook's (figures, error outputs, text)."""
    outs = [o for c in json.loads(Path(path).read_text())['cells'] for o in c.get('outputs', [])]
    figures = sum('image/png' in o.get('data', {}) for o in outs)
    errors = [o for o in outs if o['output_type'] == 'error']
    text = ''.join(''.join(o.get('text', '')) + ''.join(o.get('data', {}).get('text/plain', '')) for o in outs)
    return figures, errors, text


def test_explore_data_notebook(tiny, tmp_path):
    out = run_notebook('explore_data', tmp_path/'explore', stage=False, data_dir=tiny)
    figures, errors, text = outputs(out)
    assert figures == 7 and not errors, (figures, errors)                    # 3 videos shown among them
    assert 'labelled pairs' in text and 'not in tag_list.txt' in text and 'oracle' in text


def test_analyse_run_notebook(tiny, tmp_path):
    from mmvsim.stages.finetune import FinetuneConfig, finetune
    run = tmp_path/'ft'
    finetune(FinetuneConfig(data_dir=str(tiny), run_dir=str(run), model_size='tiny', split='kfold', folds=4, epochs=1,
                            batch_size=16, max_frames=8, max_text_len=16), progress=False)
    for split in ('valid', 'test_a'):
        out = run_notebook('analyse_run', tmp_path/split, stage=False, run=run, split=split, queries=2)
        figures, errors, text = outputs(out)
        assert figures == 4 and not errors, (split, figures, errors)
        assert f'labelled pairs of {split}: Spearman' in text and 'rank_error' in text
