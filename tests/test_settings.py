"""Every setting of the training loop reaches it from each stage: config, command line and experiment notebook."""
import dataclasses, json
from pathlib import Path
import pytest
from mmvsim.training.core import TrainConfig
from mmvsim.stages.pretrain import PretrainConfig
from mmvsim.stages.finetune import FinetuneConfig
from mmvsim.cli import parser, config_from_args

ROOT = Path(__file__).resolve().parents[1]

# a valid value other than the default, for every TrainConfig field
NON_DEFAULT = dict(epochs=3, max_steps=7, batch_size=5, grad_accum=2, lr_bert=3e-5, lr_new=4e-4, weight_decay=0.02,
                   warmup_ratio=0.1, schedule='linear', max_grad_norm=0.5, mixed_precision='no', ema_decay=0.9,
                   compile=True, compile_mode='reduce-overhead', seed=4, shuffle=False, group_by_length=True,
                   num_workers=1, drop_last=False, find_unused_parameters=True, log_every=3, eval_every=2,
                   save_every=5, best_metric='mse', greater_is_better=False, plot=False)
# settings a stage decides itself, with the reason
EXCLUDED = {'pretrain': {'best_metric': 'pretraining has no validation to keep a best by (PretrainConfig refuses one)',
                         'greater_is_better': 'the direction of best_metric, which pretraining does not have'},
            'finetune': {}}
STAGES = {'pretrain': PretrainConfig, 'finetune': FinetuneConfig}


def overrides(stage):
    return {k: v for k, v in NON_DEFAULT.items() if k not in EXCLUDED[stage]}


def test_every_field_listed():
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    assert names == set(NON_DEFAULT), f'give a non-default value for {sorted(names - set(NON_DEFAULT))}'
    for stage, cls in STAGES.items():
        assert set(EXCLUDED[stage]) <= names
        for k, v in NON_DEFAULT.items():
            assert v != getattr(cls, k, None) or k in EXCLUDED[stage], (stage, k)


@pytest.mark.parametrize('stage', STAGES)
def test_reachable_from_config(stage):
    cfg = STAGES[stage](**overrides(stage), model_size='tiny')
    tc = cfg.train_config()
    for k, v in overrides(stage).items(): assert getattr(tc, k) == v, k


def _argv(over):
    out = []
    for k, v in over.items():
        opt = '--' + k.replace('_', '-')
        out += [opt if v else '--no-' + k.replace('_', '-')] if isinstance(v, bool) else [opt, str(v)]
    return out


@pytest.mark.parametrize('stage', STAGES)
def test_reachable_from_cli(stage):
    a = parser().parse_args([stage, '--model-size', 'tiny', *_argv(overrides(stage))])
    tc = config_from_args(STAGES[stage], a).train_config()
    for k, v in overrides(stage).items(): assert getattr(tc, k) == v, k


@pytest.mark.parametrize('stage', STAGES)
def test_reachable_from_notebook(stage):
    """The notebook's cells up to its config, with the overrides injected after the parameters as papermill does."""
    nb = json.loads((ROOT/f'nbs/experiments/{stage}.ipynb').read_text())
    cells = [c for c in nb['cells'] if c['cell_type'] == 'code']
    src = [''.join(c['source']) for c in cells]
    i = next(k for k, c in enumerate(cells) if 'parameters' in c['metadata'].get('tags', []))
    j = next(k for k, s in enumerate(src) if 'from_params' in s)
    ns = {}
    exec(src[i], ns)
    for k, v in overrides(stage).items(): ns[k] = v                   # papermill's injected cell
    for s in src[i + 1:j + 1]: exec(s, ns)
    tc = ns['cfg'].train_config()
    for k, v in overrides(stage).items(): assert getattr(tc, k) == v, k


@pytest.mark.parametrize('name', ['pretrain', 'finetune', 'report'])
def test_papermill_reads_every_parameter(name, caplog):
    """papermill parses every line of a parameters cell (a quote in a comment makes it skip the line silently)."""
    import ast, papermill as pm
    nb = ROOT/f'nbs/experiments/{name}.ipynb'
    cell = next(c for c in json.loads(nb.read_text())['cells'] if 'parameters' in c['metadata'].get('tags', []))
    names = [t.id for s in ast.parse(''.join(cell['source'])).body for t in s.targets]
    with caplog.at_level('WARNING'): params = pm.inspect_notebook(str(nb))
    assert list(params) == names and 'Unable to parse' not in caplog.text
