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
# the tricks, set together (adversarial training refuses `compile`, so these go without it); finetuning's own too
TRICKS = dict(swa_last=2, adversarial='pgd', adv_eps=0.5, adv_steps=2, report_to='tensorboard', ema_decay=0.99)
STAGE_TRICKS = {'pretrain': {}, 'finetune': {'target': 'bin'}}
# settings a stage decides itself, with the reason
EXCLUDED = {'pretrain': {'best_metric': 'pretraining has no validation to keep a best by (PretrainConfig refuses one)',
                         'greater_is_better': 'the direction of best_metric, which pretraining does not have'},
            'finetune': {}}
STAGES = {'pretrain': PretrainConfig, 'finetune': FinetuneConfig}


def overrides(stage, tricks=False):
    """Non-default values of the loop's settings (and with `tricks`, of the tricks' and the stage's own)."""
    if tricks: return {**TRICKS, **STAGE_TRICKS[stage]}
    return {k: v for k, v in NON_DEFAULT.items() if k not in EXCLUDED[stage]}


def settings_of(cfg, stage, tricks):
    """The values `cfg` holds for the overridden names: the loop's through `train_config`, the stage's its own."""
    tc = cfg.train_config()
    return {k: getattr(tc if k in NON_DEFAULT or k in TRICKS else cfg, k) for k in overrides(stage, tricks)}


def test_every_field_listed():
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    given = set(NON_DEFAULT) | set(TRICKS)
    assert names == given, f'give a non-default value for {sorted(names - given)}'
    for stage, cls in STAGES.items():
        assert set(EXCLUDED[stage]) <= names
        for k, v in NON_DEFAULT.items():
            assert v != getattr(cls, k, None) or k in EXCLUDED[stage], (stage, k)


@pytest.mark.parametrize('tricks', [False, True])
@pytest.mark.parametrize('stage', STAGES)
def test_reachable_from_config(stage, tricks):
    cfg = STAGES[stage](**overrides(stage, tricks), model_size='tiny')
    assert settings_of(cfg, stage, tricks) == overrides(stage, tricks)


def _argv(over):
    out = []
    for k, v in over.items():
        opt = '--' + k.replace('_', '-')
        out += [opt if v else '--no-' + k.replace('_', '-')] if isinstance(v, bool) else [opt, str(v)]
    return out


@pytest.mark.parametrize('tricks', [False, True])
@pytest.mark.parametrize('stage', STAGES)
def test_reachable_from_cli(stage, tricks):
    a = parser().parse_args([stage, '--model-size', 'tiny', *_argv(overrides(stage, tricks))])
    assert settings_of(config_from_args(STAGES[stage], a), stage, tricks) == overrides(stage, tricks)


@pytest.mark.parametrize('tricks', [False, True])
@pytest.mark.parametrize('stage', STAGES)
def test_reachable_from_notebook(stage, tricks):
    """The notebook's cells up to its config, with the overrides injected after the parameters as papermill does."""
    nb = json.loads((ROOT/f'nbs/experiments/{stage}.ipynb').read_text())
    cells = [c for c in nb['cells'] if c['cell_type'] == 'code']
    src = [''.join(c['source']) for c in cells]
    i = next(k for k, c in enumerate(cells) if 'parameters' in c['metadata'].get('tags', []))
    j = next(k for k, s in enumerate(src) if 'from_params' in s)
    ns = {}
    exec(src[i], ns)
    for k, v in overrides(stage, tricks).items(): ns[k] = v           # papermill's injected cell
    for s in src[i + 1:j + 1]: exec(s, ns)
    assert settings_of(ns['cfg'], stage, tricks) == overrides(stage, tricks)


@pytest.mark.parametrize('name', ['pretrain', 'finetune', 'report'])
def test_papermill_reads_every_parameter(name, caplog):
    """papermill parses every line of a parameters cell (a quote in a comment makes it skip the line silently)."""
    import ast, papermill as pm
    nb = ROOT/f'nbs/experiments/{name}.ipynb'
    cell = next(c for c in json.loads(nb.read_text())['cells'] if 'parameters' in c['metadata'].get('tags', []))
    names = [t.id for s in ast.parse(''.join(cell['source'])).body for t in s.targets]
    with caplog.at_level('WARNING'): params = pm.inspect_notebook(str(nb))
    assert list(params) == names and 'Unable to parse' not in caplog.text
