"""Property-based tests: random valid inputs round-trip exactly; random damage is refused with a message that names
the file and the place, never a crash deep inside NumPy or PyTorch. Each test counts the bad-input cases it tried."""
import json, re, tempfile, typing, zipfile
from dataclasses import fields
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st
from mmvsim.core import FRAME_DIM, DataError, KitError
from mmvsim.data.records import make_video, read_labels, read_records, write_labels, write_records, write_tag_list
from mmvsim.data.store import Store, build_store
from mmvsim.evaluation.submit import load_embeddings, score_submission, write_submission
from mmvsim.experiments.grid import load_grid, plan_grid
from mmvsim.stages.finetune import FinetuneConfig
from mmvsim.stages.pretrain import PretrainConfig

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
TRIED = {}

text = st.text(st.characters(codec='utf-8', exclude_categories=('Cs',)), max_size=30)
ids = st.integers(1, 10**18).map(str)


@st.composite
def videos(draw, n_max=5):
    out, seen = [], set()
    for _ in range(draw(st.integers(1, n_max))):
        vid = draw(ids.filter(lambda i: i not in seen))
        seen.add(vid)
        n = draw(st.integers(0, 4))
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        frames = rng.standard_normal((n, FRAME_DIM)).astype(np.float16)
        tags = draw(st.none() | st.lists(st.integers(-2**40, 2**40), max_size=5))
        category = draw(st.integers(-1, 10**6)) if tags is not None else -1
        out.append(make_video(vid, draw(text), draw(text), frames, tags, category))
    return out


def same(a, b):
    assert (a['id'], a['title'], a['asr_text']) == (b['id'], b['title'], b['asr_text'])
    assert a['frames'].tobytes() == b['frames'].tobytes()
    assert (a['tag_id'] is None) == (b['tag_id'] is None)
    if a['tag_id'] is not None:
        assert a['tag_id'].tolist() == b['tag_id'].tolist() and a['category_id'] == b['category_id']


def refused(e: Exception, path, place: str, kind=DataError):
    """A refusal that names the file and the place."""
    assert isinstance(e, kind), f'{type(e).__name__}: {e}'
    assert str(path) in str(e) and re.search(place, str(e)), str(e)


def tried(name):
    """Count a bad-input case as tried (before its refusal is checked)."""
    TRIED.setdefault(name, [0, 0])[0] += 1

def refused_ok(name):
    """Count it as refused with a clear message (after the check passed)."""
    TRIED[name][1] += 1


@SETTINGS
@given(vs=videos())
def test_records_round_trip(vs, tmp_path):
    p = tmp_path/'r.tfrecords'
    write_records(p, vs)
    back = list(read_records(p))
    assert len(back) == len(vs)
    for a, b in zip(vs, back): same(a, b)


@SETTINGS
@given(vs=videos(), data=st.data())
def test_records_damage_refused(vs, data, tmp_path):
    p = tmp_path/'r.tfrecords'
    write_records(p, vs)
    raw = bytearray(p.read_bytes())
    how = data.draw(st.sampled_from(['truncate', 'flip', 'append']))
    if how == 'truncate': raw = raw[:data.draw(st.integers(1, len(raw) - 1))]
    elif how == 'flip':
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] ^= 1 << data.draw(st.integers(0, 7))
    else: raw += bytes(data.draw(st.binary(min_size=1, max_size=20)))
    p.write_bytes(bytes(raw))
    tried('damaged TFRecord files')
    with pytest.raises(Exception) as e: list(read_records(p))
    refused(e.value, p, r'record \d+')
    refused_ok('damaged TFRecord files')


@st.composite
def label_tables(draw):
    n = draw(st.integers(1, 12))
    vids = draw(st.lists(ids, min_size=2, max_size=8, unique=True))
    rows, seen = [], set()
    for _ in range(n):
        a, b = draw(st.sampled_from(vids)), draw(st.sampled_from(vids))
        if a != b and (a, b) not in seen:
            seen.add((a, b))
            rows.append((a, b, draw(st.integers(0, 19)) / 19))
    return pd.DataFrame(rows or [(vids[0], vids[1], 0.5)], columns=['id1', 'id2', 'similarity'])


@SETTINGS
@given(lab=label_tables())
def test_labels_round_trip(lab, tmp_path):
    write_labels(tmp_path/'label.tsv', lab)
    back = read_labels(tmp_path/'label.tsv')
    assert back.id1.tolist() == lab.id1.tolist() and back.id2.tolist() == lab.id2.tolist()
    assert np.allclose(back.similarity, lab.similarity, atol=1e-6)


BAD_LINES = ['{a}\t{b}', '{a}\t{b}\t0.5\t1', '{a}\t{b}\tx', '{a}\t{b}\t1.5', '{a}\t{b}\t-0.1', '\t{b}\t0.5',
             '{a}\t{a}\t0.5', '{a}\t{b}\tnan']


@SETTINGS
@given(lab=label_tables(), bad=st.sampled_from(BAD_LINES), data=st.data())
def test_labels_damage_refused(lab, bad, data, tmp_path):
    p = tmp_path/'label.tsv'
    write_labels(p, lab)
    lines = p.read_text().splitlines()
    at = data.draw(st.integers(0, len(lines)))
    lines.insert(at, bad.format(a=lab.id1.iloc[0], b=lab.id2.iloc[0]))
    p.write_text('\n'.join(lines) + '\n')
    tried('damaged label lines')
    with pytest.raises(Exception) as e: read_labels(p)
    refused(e.value, p, rf'line {at + 1}\b')
    refused_ok('damaged label lines')


@st.composite
def submissions(draw):
    n = draw(st.integers(2, 20))
    vids = [str(10**6 + i) for i in range(n)]
    emb = np.random.default_rng(draw(st.integers(0, 10**6))).standard_normal((n, 256)).astype(np.float32)
    return vids, emb


DEFECTS = ['dim', 'nan', 'inf', 'huge', 'duplicate', 'missing', 'extra', 'int ids']


@SETTINGS
@given(sub=submissions(), defect=st.sampled_from(DEFECTS + ['none']))
def test_submission_validator(sub, defect):
    vids, emb, out = *sub, Path(tempfile.mkdtemp())/'s.zip'     # a folder per example
    expected = list(vids)
    if defect == 'dim': emb = emb[:, :255]
    elif defect == 'nan': emb[0, 3] = np.nan
    elif defect == 'inf': emb[-1, 0] = np.inf
    elif defect == 'huge': emb[1, 1] = 1e6
    elif defect == 'duplicate': vids = vids[:-1] + [vids[0]]
    elif defect == 'missing': vids, emb = vids[1:], emb[1:]
    elif defect == 'extra': vids = vids[:-1] + ['999']
    elif defect == 'int ids': vids = [int(v) for v in vids]
    if defect == 'none':
        z = write_submission(vids, emb, out, expected_ids=expected)
        back_ids, back = load_embeddings(z)
        assert back_ids == vids and np.array_equal(back, emb.astype(np.float16).astype(np.float32))
        return
    tried('bad submissions')
    with pytest.raises(KitError) as e: write_submission(vids, emb, out, expected_ids=expected)
    assert str(e.value).startswith('bad submission: ') and not out.exists()
    if defect in ('dim', 'nan', 'inf', 'huge', 'duplicate', 'int ids'):      # the scorer refuses the same ones
        labels = pd.DataFrame(dict(id1=[expected[0]], id2=[expected[1]], similarity=[0.5]))
        with pytest.raises(KitError): score_submission((vids, emb), labels)
    refused_ok('bad submissions')


def test_not_a_zip(tmp_path):
    p = tmp_path/'s.zip'
    p.write_text('result.json is not here')
    tried('bad submission files')
    tried('bad submission files')
    with pytest.raises(KitError) as e: load_embeddings(p)
    refused(e.value, p, 'not a zip file')
    with zipfile.ZipFile(tmp_path/'t.zip', 'w') as z: z.writestr('result.json', '{"1": [1, 2], "2": "x"}')
    with pytest.raises(KitError) as e: load_embeddings(tmp_path/'t.zip')
    refused(e.value, tmp_path/'t.zip', 'every value must be a list')
    refused_ok('bad submission files')
    refused_ok('bad submission files')


VOCAB = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'] + list('的一是在不了有和人这中大为上个国我以要他时来用们')


@pytest.fixture(scope='module')
def vocab(tmp_path_factory):
    p = tmp_path_factory.mktemp('vocab')/'vocab.txt'
    p.write_text('\n'.join(VOCAB) + '\n', encoding='utf-8')
    return p


def competition(d: Path, pw, pairs, test):
    write_records(d/'pointwise'/'pretrain_0.tfrecords', pw)
    write_records(d/'pairwise'/'pairwise.tfrecords', pairs)
    write_records(d/'test_a'/'test_a.tfrecords', test)
    write_tag_list(d/'tag_list.txt', [1, 2, 3])
    write_labels(d/'pairwise'/'label.tsv', pd.DataFrame([(pairs[0]['id'], pairs[-1]['id'], 0.5)],
                                                        columns=['id1', 'id2', 'similarity']))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(vs=videos(n_max=8), data=st.data())
def test_store_round_trip_and_damage(vs, data, vocab):
    vs = [dict(v, tag_id=np.array([1, 2]), category_id=3) for v in vs]
    with tempfile.TemporaryDirectory() as t:
        d = Path(t)
        pairs = [make_video('p1', 'a'), make_video('p2', 'b')]
        pairs = [dict(v, tag_id=np.array([1]), category_id=1) for v in pairs]
        competition(d/'data', vs, pairs, [make_video('t1', 'c')])
        s = Store(build_store(d/'data', d/'store', vocab, progress=False))
        for v in vs:
            r = s.row_of(v['id'])
            assert s.frames(r).tobytes() == v['frames'].tobytes() and s.split_of(r) == 'pointwise'
        name = data.draw(st.sampled_from(sorted(p.name for p in (d/'store').iterdir() if p.name != 'manifest.json')))
        f = d/'store'/name
        how = data.draw(st.sampled_from(['delete', 'truncate', 'grow']))
        if how == 'delete': f.unlink()
        elif how == 'truncate': f.write_bytes(f.read_bytes()[:-1]) if f.stat().st_size else f.unlink()
        else:
            with open(f, 'ab') as g: g.write(b'\0')
        tried('damaged store files')
        with pytest.raises(Exception) as e: Store(d/'store')
        refused(e.value, f, 'missing|the manifest says')
        refused_ok('damaged store files')


WRONG = st.one_of(st.text(max_size=8),
                  st.sampled_from(['1e-5', ' 20 ', 'no', 'True', '{}', "{'mfm': 0.2}", 'nan', '-3']),
                  st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**6), st.booleans(), st.none(),
                  st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
STAGE_CONFIGS = [PretrainConfig, FinetuneConfig]      # each holds TrainConfig's and StageConfig's fields too


@settings(SETTINGS, max_examples=400)
@given(data=st.data())
def test_config_values(data):
    """Any value for any field of a stage config: converted to the field's type and accepted, or a KitError naming
    the field; never an error of another kind, here or when the run directory is resolved."""
    cls = data.draw(st.sampled_from(STAGE_CONFIGS))
    f, v = data.draw(st.sampled_from(fields(cls))), data.draw(WRONG)
    tried('config values of any type (converted, or refused naming the field)')
    try: cfg = cls(**{f.name: v})
    except KitError as e:
        assert f.name in str(e), f'{cls.__name__}.{f.name}={v!r}: {e}'
    except Exception as e:
        raise AssertionError(f'{cls.__name__}.{f.name}={v!r}: {type(e).__name__}: {e}') from e
    else:
        kind = typing.get_type_hints(cls)[f.name]
        assert isinstance(getattr(cfg, f.name), typing.get_args(kind) or kind), (f.name, v, getattr(cfg, f.name))
        assert cls(**json.loads(json.dumps(cfg.to_dict()))) == cfg                 # and it round-trips as saved
    refused_ok('config values of any type (converted, or refused naming the field)')


GRID = {'name': 'g', 'data': {'dir': 'data/x', 'preset': 'tiny'}, 'seeds': [0], 'test_splits': ['test_a'],
        'pretrain': {'max_steps': 2}, 'finetune': {'max_steps': 2},
        'tables': {'t': {'rows': {'a': {}, 'b': {'pretrain': {'tasks': 'vtc'}, 'original': [0.8, 0.01, 0.03, 0.001]}},
                         'findings': [['a', 'b']]}}}
PLACES = [('name',), ('data',), ('data', 'dir'), ('data', 'preset'), ('data', 'seed'), ('seeds',), ('pretrain_seeds',),
          ('test_splits',), ('threads',), ('jobs',), ('gpu_samples_per_s',), ('blend',), ('blend', 'sizes'),
          ('blend', 'weights'), ('blend', 'original'), ('tables',), ('tables', 't'), ('tables', 't', 'rows'),
          ('tables', 't', 'findings'), ('tables', 't', 'rows', 'a'), ('tables', 't', 'rows', 'b', 'original'),
          *[('tables', 't', 'rows', 'b', k) for k in ('pretrain', 'finetune', 'as')],
          *[(stage, f.name) for stage, cls in (('pretrain', PretrainConfig), ('finetune', FinetuneConfig))
            for f in fields(cls) if f.name not in ('data_dir', 'store_dir', 'run_dir', 'pretrained', 'seed')]]


@settings(SETTINGS, max_examples=300)
@given(data=st.data())
def test_grid_values(data, tmp_path):
    """Any value at any place of a grid file: the grid loads and plans, or one DataError names the file (and the
    table and row of a row's value); never an error of another kind."""
    at, v = data.draw(st.sampled_from(PLACES)), data.draw(WRONG)
    g = json.loads(json.dumps(GRID))
    d = g
    for k in at[:-1]: d = d.setdefault(k, {})
    d[at[-1]] = v
    p = tmp_path/'grid.yaml'
    p.write_text(yaml.safe_dump(g, allow_unicode=True))
    tried('grid file values of any type (accepted, or refused naming the file)')
    try: plan_grid(load_grid(p))
    except DataError as e:
        assert str(p.resolve()) in str(e), f'{at}={v!r}: {e}'
        if at[:3] == ('tables', 't', 'rows') and len(at) > 4: assert "row 'b'" in str(e), f'{at}={v!r}: {e}'
        if at[0] in ('pretrain', 'finetune'): assert f'base {at[0]} settings' in str(e), f'{at}={v!r}: {e}'
    except Exception as e:
        raise AssertionError(f'{at}={v!r}: {type(e).__name__}: {e}') from e
    refused_ok('grid file values of any type (accepted, or refused naming the file)')


def test_zz_report(capsys):
    """How many bad-input cases the properties above tried (each refused with file and place, or a test failed)."""
    total, refused_ = sum(t for t, _ in TRIED.values()), sum(b for _, b in TRIED.values())
    with capsys.disabled():
        print(f'\nbad-input cases tried: {total}, handled (refused naming file and place, or converted): {refused_}')
        for name, (t, b) in sorted(TRIED.items()): print(f'  {name}: {b} of {t}')
    assert total > 0 and refused_ == total
