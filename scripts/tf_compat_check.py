#!/usr/bin/env python
"""Check that mmvsim's TFRecord files and TensorFlow's agree, in both directions, CRCs included.

Run it where TensorFlow is installed; mmvsim itself never depends on TensorFlow. The mmvsim steps run under
`--kit-python` (default: this interpreter), so TensorFlow and mmvsim may live in different environments. From the
repository root:

    python scripts/tf_compat_check.py all --kit-python .venv/bin/python
    python scripts/tf_compat_check.py all --kit-python .venv/bin/python --fixture tests/fixtures   # also regenerate

`all` runs four steps, each also available alone on a directory:

    kit-write DIR   mmvsim writes train.tfrecords (5 videos with tags and category, 1..32 frames) and test.tfrecords
                    (2 videos without either), plus the expected values (expected.json, expected_frames.npz).
    tf-check DIR    TensorFlow reads them with tf.data.TFRecordDataset (which checks both CRCs of every record) and
                    tf.io.parse_single_example with the official baseline's feature spec, decodes frames with
                    tf.io.decode_raw(..., tf.float16) and compares every value bit-exactly; then corrupts one byte
                    (in a length, a payload, a payload CRC) of copies of train.tfrecords and expects DataLossError.
    tf-write DIR    TensorFlow writes tf_written.tfrecords (3 videos, tf.io.TFRecordWriter + tf.train.Example) and
                    tf_written.json with the values it wrote: the fixture of tests/test_tf_compat.py.
    kit-read DIR    mmvsim.records.read_records reads tf_written.tfrecords and compares it with tf_written.json, and
                    must reject the corrupted copies tf-check left in DIR.

Every check prints PASS or FAIL; the exit status is 0 only when all passed.
"""
import argparse, hashlib, json, re, shutil, subprocess, sys, tempfile
from pathlib import Path

import numpy as np

FRAME_DIM = 1536
RESULTS = []
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))                     # mmvsim from this checkout


def report(name, ok, detail=''):
    RESULTS.append(ok)
    print(f"{'PASS' if ok else 'FAIL'}  {name}" + (f'  -- {detail}' if detail else ''), flush=True)


def sha256(b): return hashlib.sha256(b).hexdigest()


def tf_message(err):
    """A TensorFlow error's message without its `{{function_node ...}}` prefix."""
    return re.sub(r'\{\{function_node [^}]*\}\}\s*', '', err.message).strip()


def special_frame():
    """One float16 frame full of edge cases: signed zeros, infinities, NaN payloads, subnormals, extremes."""
    bits = np.arange(FRAME_DIM, dtype=np.uint16) * 43 + 7                       # a spread of bit patterns
    bits[:10] = [0x0000, 0x8000, 0x7C00, 0xFC00, 0x7E00, 0x7E01, 0xFC01, 0x0001, 0x83FF, 0x7BFF]
    bits[-64:] = 0                                                              # trailing zero bytes
    return bits.view(np.float16)


def frames(rng, n, zero_tail=0):
    f = rng.standard_normal((n, FRAME_DIM)).astype(np.float16)
    if zero_tail: f[:, -zero_tail:] = 0
    return f


# ---------------------------------------------------------------- mmvsim writes, TensorFlow reads

def kit_write(d):
    from mmvsim.data.records import make_video, write_records
    rng = np.random.default_rng(0)
    f2 = frames(rng, 7, zero_tail=100)                                          # zero tails and one all-zero frame
    f2[3] = 0
    f3 = frames(rng, 32)
    f3[5] = special_frame()
    train = [
        make_video('2345001', '春节回家的路上，大雪纷飞', '', frames(rng, 1), [12, 57], 3),         # 1 frame, empty asr
        make_video('2345002', '猫咪第一次见到雪 😺 cute', '今天我们带猫咪去看雪', f2, [9999], 0),
        make_video('2345003', '【美食】红烧肉的做法', '先把五花肉切块，冷水下锅焯水' * 20, f3,
                   list(range(100, 120)), 199),
        make_video('2345004', '', '只有语音没有标题', frames(rng, 16, zero_tail=1), [], 7),         # no title, no tags
        make_video('2345005', 'English title', 'asr', frames(rng, 2), [2**40, 1], 12),
    ]
    test = [make_video('9870001', '测试视频：没有标签', '', frames(rng, 1)),
            make_video('9870002', '测试视频二', '语音文字', frames(rng, 5, zero_tail=3))]
    n_train, n_test = write_records(d/'train.tfrecords', train), write_records(d/'test.tfrecords', test)
    report('mmvsim wrote train.tfrecords and test.tfrecords', (n_train, n_test) == (5, 2),
           f'{n_train} + {n_test} records')
    exp, arrs = {}, {}
    for name, vids in (('train', train), ('test', test)):
        exp[name] = [dict(id=v['id'], title=v['title'], asr_text=v['asr_text'], n_frames=len(v['frames']),
                          tag_id=None if v['tag_id'] is None else v['tag_id'].tolist(), category_id=v['category_id'])
                     for v in vids]
        for i, v in enumerate(vids): arrs[f'{name}_{i}'] = v['frames'].view(np.uint16)
    (d/'expected.json').write_text(json.dumps(exp, ensure_ascii=False, indent=1), encoding='utf-8')
    np.savez(d/'expected_frames.npz', **arrs)


def official_spec(tf, with_labels):
    """The feature spec of the competition's official baseline."""
    spec = {'id': tf.io.FixedLenFeature([], tf.string), 'title': tf.io.FixedLenFeature([], tf.string),
            'asr_text': tf.io.FixedLenFeature([], tf.string), 'frame_feature': tf.io.VarLenFeature(tf.string)}
    if with_labels:
        spec['tag_id'] = tf.io.VarLenFeature(tf.int64)
        spec['category_id'] = tf.io.FixedLenFeature([], tf.int64)
    return spec


def read_all(tf, path):
    return [r.numpy() for r in tf.data.TFRecordDataset(str(path))]


def tf_check(d):
    import tensorflow as tf
    exp, arrs = json.loads((d/'expected.json').read_text(encoding='utf-8')), np.load(d/'expected_frames.npz')
    for name in ('train', 'test'):
        path, with_labels = d/f'{name}.tfrecords', name == 'train'
        try: recs = read_all(tf, path)
        except Exception as e:
            report(f'TFRecordDataset reads {path.name} (CRCs checked)', False, f'{type(e).__name__}: {e}')
            continue
        report(f'TFRecordDataset reads {path.name} (CRCs checked)', len(recs) == len(exp[name]), f'{len(recs)} records')
        spec = official_spec(tf, with_labels)
        for i, (rec, e) in enumerate(zip(recs, exp[name])):
            label = f'{name}[{i}] id={e["id"]} ({e["n_frames"]} frames)'
            try:
                p = tf.io.parse_single_example(rec, spec)
                fr = tf.io.decode_raw(p['frame_feature'].values, tf.float16).numpy()   # (n, 1536)
            except Exception as err:
                report(f'parse_single_example {label}', False, f'{type(err).__name__}: {err}')
                continue
            bad = []
            if p['id'].numpy().decode() != e['id']: bad.append('id')
            if p['title'].numpy().decode('utf-8') != e['title']: bad.append('title')
            if p['asr_text'].numpy().decode('utf-8') != e['asr_text']: bad.append('asr_text')
            want = arrs[f'{name}_{i}']
            if fr.shape != want.shape or not np.array_equal(fr.view(np.uint16), want): bad.append(f'frames {fr.shape}')
            if with_labels:
                if p['tag_id'].values.numpy().tolist() != e['tag_id']: bad.append('tag_id')
                if int(p['category_id'].numpy()) != e['category_id']: bad.append('category_id')
            report(f'parse_single_example {label}: all fields equal, frames bit-exact', not bad,
                   'mismatch: ' + ', '.join(bad) if bad else '')
        if not with_labels:
            try:
                tf.io.parse_single_example(recs[0], official_spec(tf, True))
                ok, why = False, 'parsed'
            except tf.errors.InvalidArgumentError as err: ok, why = True, tf_message(err)
            report('test record has no category_id (train spec refuses it)', ok, why)
    # Corrupt one byte of copies of train.tfrecords: TensorFlow must notice, so the CRCs it accepted above are real.
    raw = (d/'train.tfrecords').read_bytes()
    n0 = int.from_bytes(raw[:8], 'little')
    second = 16 + n0
    for tag, off in (('length', 1), ('payload', 12 + n0 // 2), ('payload_crc', 12 + n0 + 1),
                     ('record1_payload', second + 12 + 40)):
        bad = bytearray(raw)
        bad[off] ^= 0x5A
        p = d/f'corrupt_{tag}.tfrecords'
        p.write_bytes(bytes(bad))
        try:
            read_all(tf, p)
            ok, why = False, 'read without error'
        except tf.errors.DataLossError as err: ok, why = True, f'DataLossError: {tf_message(err)}'
        except Exception as err: ok, why = False, f'{type(err).__name__}: {err}'
        report(f'one byte flipped at {off} ({tag}) -> TensorFlow reports data loss', ok, why)


# ---------------------------------------------------------------- TensorFlow writes, mmvsim reads

def tf_write(d):
    import tensorflow as tf
    rng = np.random.default_rng(1)
    f2 = frames(rng, 2, zero_tail=8)
    f2[1] = special_frame()
    vids = [dict(id='5550001', title='腾讯视频：夏日海边', asr_text='', frames=frames(rng, 1),
                 tag_id=[3], category_id=5),
            dict(id='5550002', title='零食测评 2021', asr_text='大家好，欢迎来到我的频道', frames=f2,
                 tag_id=[10, 20, 9998], category_id=0),
            dict(id='5550003', title='篮球 highlights', asr_text='进球了！', frames=frames(rng, 3, zero_tail=1536 // 2),
                 tag_id=[], category_id=42)]
    by = lambda *v: tf.train.Feature(bytes_list=tf.train.BytesList(value=list(v)))
    ints = lambda v: tf.train.Feature(int64_list=tf.train.Int64List(value=list(v)))
    path = d/'tf_written.tfrecords'
    with tf.io.TFRecordWriter(str(path)) as w:
        for v in vids:
            feats = {'id': by(v['id'].encode()), 'title': by(v['title'].encode('utf-8')),
                     'asr_text': by(v['asr_text'].encode('utf-8')),
                     'frame_feature': by(*(f.tobytes() for f in v['frames'])),
                     'tag_id': ints(v['tag_id']), 'category_id': ints([v['category_id']])}
            w.write(tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString())
    meta = dict(written_by=f'tensorflow {tf.__version__} (tf.io.TFRecordWriter, tf.train.Example)',
                file_sha256=sha256(path.read_bytes()),
                videos=[dict(id=v['id'], title=v['title'], asr_text=v['asr_text'], tag_id=v['tag_id'],
                             category_id=v['category_id'], n_frames=len(v['frames']),
                             frames_sha256=sha256(np.ascontiguousarray(v['frames']).tobytes())) for v in vids])
    (d/'tf_written.json').write_text(json.dumps(meta, ensure_ascii=False, indent=1) + '\n', encoding='utf-8')
    back = [tf.io.parse_single_example(r, official_spec(tf, True)) for r in read_all(tf, path)]
    report(f'TensorFlow wrote {path.name} ({path.stat().st_size} bytes) and reads it back', len(back) == 3)


def kit_read(d):
    from mmvsim.core import DataError
    from mmvsim.data.records import read_records
    path, meta = d/'tf_written.tfrecords', json.loads((d/'tf_written.json').read_text(encoding='utf-8'))
    report('tf_written.tfrecords matches the sha256 in tf_written.json',
           sha256(path.read_bytes()) == meta['file_sha256'])
    for verify in (True, False):
        try: got = list(read_records(path, verify=verify))
        except Exception as e:
            report(f'mmvsim read_records(verify={verify}) on the TensorFlow-written file', False,
                   f'{type(e).__name__}: {e}')
            continue
        bad = [] if len(got) == len(meta['videos']) else [f'{len(got)} videos']
        for g, e in zip(got, meta['videos']):
            for k in ('id', 'title', 'asr_text', 'category_id'):
                if g[k] != e[k]: bad.append(f'{e["id"]}.{k}')
            if g['tag_id'] is None or g['tag_id'].tolist() != e['tag_id']: bad.append(f'{e["id"]}.tag_id')
            if g['frames'].dtype != np.float16 or g['frames'].shape != (e['n_frames'], FRAME_DIM):
                bad.append(f'{e["id"]}.frames shape')
            if sha256(g['frames'].tobytes()) != e['frames_sha256']: bad.append(f'{e["id"]}.frames bytes')
        report(f'mmvsim read_records(verify={verify}) decodes the TensorFlow-written file exactly', not bad,
               'mismatch: ' + ', '.join(bad) if bad else f'{len(got)} videos')
    for p in sorted(d.glob('corrupt_*.tfrecords')):
        try:
            list(read_records(p))
            ok, why = False, 'read without error'
        except DataError as e: ok, why = True, str(e)
        report(f'mmvsim rejects {p.name}', ok, why)


# ---------------------------------------------------------------- driver

STEPS = {'kit-write': kit_write, 'tf-check': tf_check, 'tf-write': tf_write, 'kit-read': kit_read}


def run_all(args):
    work = Path(args.workdir or tempfile.mkdtemp(prefix='tf_compat_'))
    work.mkdir(parents=True, exist_ok=True)
    print(f'working in {work}', flush=True)
    ok = True
    for step, py in (('kit-write', args.kit_python), ('tf-check', sys.executable), ('tf-write', sys.executable),
                     ('kit-read', args.kit_python)):
        print(f'== {step} ({py})', flush=True)
        ok &= subprocess.run([py, __file__, step, str(work)]).returncode == 0
    if args.fixture and ok:
        fx = Path(args.fixture)
        fx.mkdir(parents=True, exist_ok=True)
        for n in ('tf_written.tfrecords', 'tf_written.json'): shutil.copyfile(work/n, fx/n)
        print(f'fixture written to {fx}')
    print('ALL CHECKS PASSED' if ok else 'SOME CHECKS FAILED')
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('step', choices=['all', *STEPS])
    ap.add_argument('dir', nargs='?', help='working directory of a single step')
    ap.add_argument('--kit-python', default=sys.executable, help='interpreter that can import mmvsim (all)')
    ap.add_argument('--workdir', help='where `all` writes its files (default: a new temporary directory)')
    ap.add_argument('--fixture', help='also copy tf_written.{tfrecords,json} into this directory (all)')
    args = ap.parse_args()
    if args.step == 'all': return run_all(args)
    if not args.dir: ap.error(f'{args.step} needs a directory')
    d = Path(args.dir)
    d.mkdir(parents=True, exist_ok=True)
    STEPS[args.step](d)
    return 0 if all(RESULTS) else 1


if __name__ == '__main__':
    sys.exit(main())
